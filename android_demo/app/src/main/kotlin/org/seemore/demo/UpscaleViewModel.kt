package org.seemore.demo

import android.app.ActivityManager
import android.app.Application
import android.graphics.Bitmap
import android.net.Uri
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import java.io.IOException
import java.text.SimpleDateFormat
import java.util.Date
import java.util.Locale
import kotlin.math.max
import kotlin.math.min
import kotlin.math.sqrt
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.pytorch.executorch.ExecutorchRuntimeException
import org.seemore.demo.logic.AppRuleException
import org.seemore.demo.logic.AppTiling
import org.seemore.demo.logic.RGBA_BYTES
import org.seemore.demo.logic.RowStitcher
import org.seemore.demo.logic.checkFits
import org.seemore.demo.logic.imageBytes
import org.seemore.demo.logic.packTileInto
import org.seemore.demo.logic.sourceRegion
import org.seemore.demo.logic.tilePlan

/** Everything the screen shows; one immutable snapshot per change. */
data class UiState(
    val models: List<ModelEntry> = emptyList(),
    val selected: Int = -1,
    /** Model name, backend, precision, tile and scale from the contract. */
    val modelTitle: String? = null,
    /** True while a model is being checked, loaded and warmed up. */
    val loading: Boolean = false,
    /** "load N ms + warm-up M ms" once a model is ready. */
    val loadInfo: String? = null,
    /** Backends the forward method runs on, and those in this build. */
    val backends: String? = null,
    /** The photo (upright ARGB_8888) and its size line. */
    val photo: Bitmap? = null,
    val photoInfo: String? = null,
    /** The full-size result, and what the compare view draws (the result, or a smaller copy). */
    val result: Bitmap? = null,
    val preview: Bitmap? = null,
    val previewNote: String? = null,
    val running: Boolean = false,
    val status: String? = null,
    val tilesDone: Int = 0,
    val tilesTotal: Int = 0,
    /** Per-tile median and total latency of the last run. */
    val latency: String? = null,
    val saving: Boolean = false,
    /** A photo was picked, so "Run again" can repeat it (with another model, say). */
    val canRerun: Boolean = false,
    /** One line: what went wrong. */
    val error: String? = null,
    /** One line: what went right (saved where). */
    val notice: String? = null,
) {
    val busy: Boolean
        get() = loading || running
}

/**
 * The app's state and work: models (find, check, load, warm up), photos (decode, memory check,
 * tile, run, stitch) and saving. All heavy work runs off the main thread; one model, one run at
 * a time.
 */
class UpscaleViewModel(application: Application) : AndroidViewModel(application) {

    private val app = application
    private val store = ModelStore(application)
    private val _state = MutableStateFlow(UiState())
    val state: StateFlow<UiState> = _state.asStateFlow()

    private val modelLock = Any()
    private var loaded: LoadedModel? = null // guarded by modelLock
    private var cleared = false // guarded by modelLock
    private var lastPhoto: Uri? = null

    init {
        refreshModels(installBundled = true)
    }

    /** Looks for models again (after an adb push, say); loads the first one that can run. */
    fun refreshModels(installBundled: Boolean = false) {
        if (_state.value.busy) return
        release()
        _state.update {
            it.copy(
                loading = true, status = "Looking for models…", error = null, notice = null,
                modelTitle = null, loadInfo = null, backends = null,
            )
        }
        viewModelScope.launch {
            var problem: String? = null
            val models = try {
                withContext(Dispatchers.IO) {
                    if (installBundled) {
                        try {
                            store.installBundled()
                        } catch (e: IOException) {
                            problem = "Could not copy the bundled models: ${oneLine(e)}"
                        }
                    }
                    store.list()
                }
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                problem = "Could not read ${store.modelsDir.path}: ${oneLine(e)}"
                emptyList()
            }
            _state.update {
                it.copy(
                    models = models,
                    selected = -1,
                    loading = false,
                    status = null,
                    error = problem ?: if (models.isEmpty()) noModelsMessage() else null,
                )
            }
            val first = models.indexOfFirst { it.problem == null }
            when {
                first >= 0 -> loadModel(first)
                models.isNotEmpty() -> _state.update { it.copy(selected = 0, modelTitle = models[0].label, error = models[0].problem) }
            }
        }
    }

    /** Chooses another model from the menu. */
    fun selectModel(index: Int) {
        val current = _state.value
        if (current.busy || (index == current.selected && current.loadInfo != null)) return
        viewModelScope.launch { loadModel(index) }
    }

    private suspend fun loadModel(index: Int) {
        val entry = _state.value.models.getOrNull(index) ?: return
        release()
        _state.update {
            it.copy(
                selected = index, modelTitle = entry.label, loading = entry.problem == null,
                status = if (entry.problem == null) "Checking and loading ${entry.name}…" else null,
                loadInfo = null, backends = null, error = entry.problem, notice = null,
                result = null, preview = null, previewNote = null, latency = null,
            )
        }
        if (entry.problem != null) return
        try {
            withContext(Dispatchers.IO) { store.verify(entry) }
            val model = withContext(Dispatchers.Default) {
                val fresh = Upscaler.load(entry.artifact!!, entry.contract!!)
                adopt(fresh)
                fresh
            }
            val runsOn = model.methodBackends.ifEmpty { listOf("portable CPU kernels (no delegate)") }
            _state.update {
                it.copy(
                    loading = false, status = null,
                    loadInfo = "load ${ms(model.loadMs)} + warm-up ${ms(model.warmupMs)}",
                    backends = "runs on ${runsOn.joinToString()} · ExecuTorch ${BuildConfig.EXECUTORCH_VERSION} " +
                        "${BuildConfig.EXECUTORCH_FLAVOR} build with ${model.registeredBackends.joinToString()}",
                )
            }
        } catch (e: CancellationException) {
            throw e
        } catch (e: AppRuleException) {
            _state.update { it.copy(loading = false, status = null, error = e.message) }
        } catch (e: Exception) {
            _state.update { it.copy(loading = false, status = null, error = "Cannot load ${entry.name}: ${oneLine(e)}") }
        }
    }

    /** Keeps a freshly loaded model, or closes it when the screen is gone already. */
    private fun adopt(model: LoadedModel) {
        synchronized(modelLock) {
            if (cleared) {
                model.upscaler.close()
                throw CancellationException("the screen was closed while the model loaded")
            }
            loaded = model
        }
    }

    private fun release() {
        synchronized(modelLock) {
            loaded?.upscaler?.close()
            loaded = null
        }
    }

    /** The system photo picker returned [uri] (null: nothing picked). */
    fun onPhotoPicked(uri: Uri?) {
        if (uri == null || _state.value.busy) return
        lastPhoto = uri
        _state.update { it.copy(canRerun = true) }
        upscale(uri)
    }

    /** Runs the last photo again (after choosing another model, say). */
    fun rerun() {
        lastPhoto?.let { upscale(it) }
    }

    private fun upscale(uri: Uri) {
        if (_state.value.busy) return
        val model = synchronized(modelLock) { loaded }
        if (model == null) {
            _state.update { it.copy(error = it.error ?: "Choose a model that loads first") }
            return
        }
        val contract = model.upscaler.contract
        val tiling = contract.tiling
        _state.update {
            it.copy(
                running = true, status = "Reading the photo…", error = null, notice = null,
                photo = null, photoInfo = null, result = null, preview = null, previewNote = null,
                latency = null, tilesDone = 0, tilesTotal = 0,
            )
        }
        viewModelScope.launch {
            try {
                var checked = Pair(0, 0)
                val photo = withContext(Dispatchers.IO) {
                    PhotoIO.decode(app.contentResolver, uri) { h, w ->
                        checkFits(h, w, tiling, budgetBytes(h, w, tiling.scale, 0L))
                        checked = Pair(h, w)
                    }
                }
                val h = photo.height
                val w = photo.width
                if (checked != Pair(h, w)) {
                    // The decoder's header disagreed with its pixels: check the real size, with the
                    // photo itself already held.
                    checkFits(h, w, tiling, budgetBytes(h, w, tiling.scale, photo.allocationByteCount.toLong()))
                }
                val s = tiling.scale
                _state.update {
                    it.copy(photo = photo, photoInfo = "${w}x$h → ${w * s}x${h * s}", status = "Upscaling…")
                }
                val run = withContext(Dispatchers.Default) { runTiles(photo, model, tiling) }
                _state.update {
                    it.copy(
                        running = false, status = null, result = run.output, preview = run.preview,
                        previewNote = run.previewNote, latency = run.latency,
                    )
                }
            } catch (e: CancellationException) {
                throw e
            } catch (e: AppRuleException) {
                _state.update { it.copy(running = false, status = null, error = e.message) }
            } catch (e: OutOfMemoryError) {
                _state.update {
                    it.copy(running = false, status = null, error = "Ran out of memory on this photo; pick a smaller one")
                }
            } catch (e: ExecutorchRuntimeException) {
                _state.update {
                    it.copy(
                        running = false, status = null,
                        error = "Inference failed: ${Upscaler.reason(e.errorCode)} [ExecuTorch error 0x${Integer.toHexString(e.errorCode)}]",
                    )
                }
            } catch (e: Exception) {
                _state.update { it.copy(running = false, status = null, error = "Upscaling failed: ${oneLine(e)}") }
            }
        }
    }

    private class RunResult(val output: Bitmap, val preview: Bitmap, val previewNote: String?, val latency: String)

    /**
     * Tiles, runs and stitches one photo: per window, its source pixels are read from the bitmap,
     * packed, run, and added to the stitcher's float band; finished rows go straight into the
     * output bitmap. Nothing but one tile and one band is ever held as floats.
     */
    private suspend fun runTiles(photo: Bitmap, model: LoadedModel, tiling: AppTiling): RunResult {
        val h = photo.height
        val w = photo.width
        val s = tiling.scale
        val plan = tilePlan(h, w, tiling)
        val total = plan.windows.size
        _state.update { it.copy(tilesDone = 0, tilesTotal = total) }
        val stitcher = RowStitcher(plan, tiling)
        val output = Bitmap.createBitmap(w * s, h * s, Bitmap.Config.ARGB_8888)
        val input = FloatArray(model.upscaler.contract.inputSize)
        val region = IntArray(tiling.tileH * tiling.tileW)
        val tileMs = DoubleArray(total)
        val start = System.nanoTime()
        for ((k, window) in plan.windows.withIndex()) {
            currentCoroutineContext().ensureActive()
            val r = sourceRegion(window, h, w) // top, left, rows, cols
            photo.getPixels(region, 0, r[3], r[1], r[0], r[3], r[2])
            packTileInto(region, r[0], r[1], r[3], h, w, window, tiling, input)
            val t0 = System.nanoTime()
            val out = model.upscaler.run(input)
            tileMs[k] = (System.nanoTime() - t0) / 1e6
            val rows = stitcher.add(out)
            if (rows.rowCount > 0) {
                output.setPixels(rows.pixels, 0, rows.width, 0, rows.firstRow, rows.width, rows.rowCount)
            }
            _state.update { it.copy(tilesDone = k + 1) }
        }
        if (stitcher.rowsEmitted != h * s) {
            throw AppRuleException("stitched ${stitcher.rowsEmitted} of ${h * s} rows")
        }
        val totalMs = (System.nanoTime() - start) / 1e6
        val sorted = tileMs.sorted()
        val median = if (total % 2 == 1) sorted[total / 2] else (sorted[total / 2 - 1] + sorted[total / 2]) / 2
        val latency = "$total tile${if (total == 1) "" else "s"} · median ${ms(median)} per tile · total ${ms(totalMs)}"
        val preview = previewOf(output)
        val note = if (preview === output) null else
            "preview ${preview.width}x${preview.height}; the saved PNG is ${output.width}x${output.height}"
        return RunResult(output, preview, note, latency)
    }

    /** Saves the result as PNG into Pictures/SeemoRe. */
    fun save() {
        val current = _state.value
        val result = current.result ?: return
        if (current.saving) return
        val model = synchronized(modelLock) { loaded }?.upscaler?.contract?.model ?: "seemore"
        val stamp = SimpleDateFormat("yyyyMMdd_HHmmss", Locale.US).format(Date())
        val name = "${model}_${result.width}x${result.height}_$stamp.png"
        _state.update { it.copy(saving = true, notice = null, error = null) }
        viewModelScope.launch {
            try {
                val where = withContext(Dispatchers.IO) { PhotoIO.savePng(app, result, name) }
                _state.update { it.copy(saving = false, notice = "Saved to $where") }
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                _state.update { it.copy(saving = false, error = "Could not save: ${oneLine(e)}") }
            }
        }
    }

    /** Shows a one-line error from the screen (a permission refused, say). */
    fun showError(message: String) {
        _state.update { it.copy(error = message) }
    }

    /**
     * The memory budget for an h x w photo (bytes), for checkFits: what the system can still give
     * (available RAM above its low-memory threshold), and no more than the Java heap allows for the
     * float band and tile buffers (bitmaps live outside the heap since Android 8; a quarter of the
     * free heap stays for the finished rows handed to the bitmap and the rest of the app). When the
     * result is too large to draw, a preview copy of at most [PREVIEW_MAX_BYTES] is reserved too.
     * [held] is memory the photo already takes (counted in the rule but allocated already).
     */
    private fun budgetBytes(height: Int, width: Int, scale: Int, held: Long): Long {
        val manager = app.getSystemService(ActivityManager::class.java)
        val system = if (manager == null) {
            Long.MAX_VALUE
        } else {
            val info = ActivityManager.MemoryInfo()
            manager.getMemoryInfo(info)
            info.availMem - info.threshold
        }
        val runtime = Runtime.getRuntime()
        val heapFree = runtime.maxMemory() - (runtime.totalMemory() - runtime.freeMemory())
        val heap = heapFree / 4 * 3 + imageBytes(height, width, scale)
        val outBytes = RGBA_BYTES * height.toLong() * scale * width.toLong() * scale
        val preview = if (outBytes > PREVIEW_MAX_BYTES) PREVIEW_MAX_BYTES else 0L
        return max(0L, min(system, heap) - preview + held)
    }

    /** The result itself when it can be drawn, else a smaller copy (a Canvas refuses bitmaps over 100 MiB). */
    private fun previewOf(output: Bitmap): Bitmap {
        val bytes = output.allocationByteCount.toDouble()
        val side = max(output.width, output.height).toDouble()
        val factor = min(sqrt(PREVIEW_MAX_BYTES / bytes), PREVIEW_MAX_SIDE / side)
        if (factor >= 1.0) return output
        val pw = max(1, (output.width * factor).toInt())
        val ph = max(1, (output.height * factor).toInt())
        return Bitmap.createScaledBitmap(output, pw, ph, true)
    }

    override fun onCleared() {
        synchronized(modelLock) {
            cleared = true
            loaded?.upscaler?.close()
            loaded = null
        }
    }

    private fun noModelsMessage(): String =
        "No models in ${store.modelsDir.path}: push <name>.pte and <name>.pte.json there (README.md), then Refresh"

    companion object {
        /** Largest bitmap the compare view draws (bytes); larger results are shown as a smaller copy. */
        const val PREVIEW_MAX_BYTES: Long = 64L shl 20

        /** Largest side the compare view draws (px), within every GPU's texture limit. */
        const val PREVIEW_MAX_SIDE: Double = 4096.0

        private fun ms(value: Double): String =
            if (value >= 1000.0) String.format(Locale.US, "%.2f s", value / 1000.0) else String.format(Locale.US, "%.1f ms", value)

        private fun oneLine(e: Throwable): String {
            val message = e.message?.lineSequence()?.firstOrNull()?.trim()
            return if (message.isNullOrEmpty()) e.javaClass.simpleName else message
        }
    }
}
