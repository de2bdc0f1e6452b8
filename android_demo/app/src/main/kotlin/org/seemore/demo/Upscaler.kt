package org.seemore.demo

import java.io.Closeable
import java.io.File
import org.pytorch.executorch.EValue
import org.pytorch.executorch.ExecuTorchRuntime
import org.pytorch.executorch.ExecutorchRuntimeException
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.seemore.demo.logic.AppRuleException
import org.seemore.demo.logic.Contract

/** A loaded model with what loading it cost and which backends it really runs on. */
class LoadedModel(
    val upscaler: Upscaler,
    val loadMs: Double,
    val warmupMs: Double,
    /** Backends the forward method is delegated to (MethodMetadata.backends). */
    val methodBackends: List<String>,
    /** Backends compiled into this app's ExecuTorch library. */
    val registeredBackends: List<String>,
)

/**
 * One ExecuTorch [Module] for one artifact, run one tile at a time.
 *
 * [run] is blocking and must be called off the main thread; calls are serialized (an ExecuTorch
 * Module is not thread-safe). [close] hands the native module back once no tile is running.
 */
class Upscaler private constructor(private val module: Module, val contract: Contract) : Closeable {

    private val lock = Any()

    @Volatile
    private var closed = false

    private val inputShape: LongArray = contract.inputShape.map { it.toLong() }.toLongArray()

    /** Runs one tile: [input] is the packed tile (contract.inputSize floats); returns its output. */
    fun run(input: FloatArray): FloatArray = synchronized(lock) {
        check(!closed) { "the model was closed" }
        if (input.size != contract.inputSize) {
            throw AppRuleException("tile has ${input.size} floats, the model takes ${contract.inputSize}")
        }
        val outputs = module.forward(EValue.from(Tensor.fromBlob(input, inputShape)))
        if (outputs.isEmpty()) {
            throw AppRuleException("${contract.model} returned no output")
        }
        val tensor = outputs[0].toTensor()
        val shape = tensor.shape().map { it.toInt() }
        if (shape != contract.outputShape) {
            throw AppRuleException(
                "${contract.model} returned shape $shape, its contract says ${contract.outputShape}",
            )
        }
        val data = tensor.dataAsFloatArray
        if (data.size != contract.outputSize) {
            throw AppRuleException("${contract.model} returned ${data.size} floats, expected ${contract.outputSize}")
        }
        data
    }

    /** Destroys the native module, after the tile that may be running now. */
    override fun close() {
        if (closed) return
        closed = true
        Thread({ synchronized(lock) { runCatching { module.destroy() } } }, "seemore-module-destroy").start()
    }

    companion object {
        /**
         * Loads [file] (already checked against [contract]'s sha256), pre-loads `forward` and runs
         * one warm-up inference on a zero tile, so that the first photo does not pay for it.
         * Throws [AppRuleException] with a one-line message on any failure.
         */
        fun load(file: File, contract: Contract): LoadedModel {
            val registered = try {
                ExecuTorchRuntime.getRegisteredBackends().toList()
            } catch (e: LinkageError) {
                throw AppRuleException(
                    "the ExecuTorch native library does not load on this device (it ships for arm64-v8a " +
                        "and x86_64 only): ${e.javaClass.simpleName}",
                )
            }
            if (contract.backend == "vulkan" && registered.none { it.startsWith("Vulkan") }) {
                throw AppRuleException(
                    "${contract.model} needs the Vulkan backend, but this app was built with the " +
                        "${BuildConfig.EXECUTORCH_FLAVOR} ExecuTorch library: rebuild with -Pseemore.executorch=vulkan",
                )
            }
            var module: Module? = null
            try {
                val start = System.nanoTime()
                module = Module.load(file.absolutePath, Module.LOAD_MODE_MMAP)
                module.loadMethod("forward")
                val loaded = System.nanoTime()
                val backends = module.getMethodMetadata("forward").backends.toList()
                val upscaler = Upscaler(module, contract)
                upscaler.run(FloatArray(contract.inputSize))
                val warm = System.nanoTime()
                return LoadedModel(
                    upscaler,
                    (loaded - start) / 1e6,
                    (warm - loaded) / 1e6,
                    backends,
                    registered,
                )
            } catch (e: Throwable) {
                module?.let { m -> runCatching { m.destroy() } }
                throw AppRuleException(describeLoadError(contract, e))
            }
        }

        /** One line for the UI from whatever loading or the warm-up run threw. */
        fun describeLoadError(contract: Contract, e: Throwable): String {
            val what = "cannot load ${contract.model} (${contract.backend} ${contract.precision})"
            return when (e) {
                is AppRuleException -> "$what: ${e.message}"
                is ExecutorchRuntimeException -> "$what: ${reason(e.errorCode)} [ExecuTorch error 0x${Integer.toHexString(e.errorCode)}]"
                is IllegalArgumentException -> "$what: ${firstLine(e.message)}"
                is OutOfMemoryError -> "$what: out of memory"
                is LinkageError -> "$what: the ExecuTorch native library does not load here (${e.javaClass.simpleName})"
                else -> "$what: ${e.javaClass.simpleName}: ${firstLine(e.message)}"
            }
        }

        /** What an ExecuTorch error code (runtime/core/error.h) means for someone loading a .pte. */
        fun reason(code: Int): String = when (code) {
            0x12 -> "invalid argument: the program does not fit this runtime (export it with executorch 1.5.1, the version of this app)"
            0x14 -> "an operator of the program is missing from this ExecuTorch library (export and app versions differ?)"
            0x20 -> "not found: a backend or method of the program is not in this app (Vulkan models need -Pseemore.executorch=vulkan)"
            0x21 -> "memory allocation failed: not enough memory for the model"
            0x22 -> "access failed: the model file cannot be read"
            0x23 -> "invalid program: the file is not a complete .pte of this ExecuTorch version (copy it again?)"
            0x30 -> "the delegate rejected the program on this device or runtime version (delegate invalid compatibility)"
            else -> "ExecuTorch error"
        }

        private fun firstLine(message: String?): String = message?.lineSequence()?.firstOrNull()?.trim().orEmpty()
    }
}
