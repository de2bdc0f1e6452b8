package org.seemore.demo

import android.content.Context
import java.io.File
import java.io.IOException
import java.io.InputStream
import java.security.MessageDigest
import org.seemore.demo.logic.AppRuleException
import org.seemore.demo.logic.Contract

/**
 * One model found in the models folder: `<name>.pte` with its contract `<name>.pte.json`.
 * [problem] says in one line why it cannot be used (null: it can).
 */
class ModelEntry(
    val name: String,
    val contract: Contract?,
    val artifact: File?,
    val problem: String?,
) {
    /** What the model menu shows. */
    val label: String
        get() = contract?.title ?: name
}

/**
 * The app's models: `filesDir/models/`, holding `<name>.pte` and `<name>.pte.json` pairs.
 *
 * Filled by `adb push` + `adb shell run-as org.seemore.demo cp ...` (README.md), or from files
 * bundled under `app/src/main/assets/models/`, copied here on launch when missing or when their
 * SHA-256 differs. A model is only ever trusted by its contract's `artifact.sha256`, never by
 * its file name.
 */
class ModelStore(private val context: Context) {

    val modelsDir: File = File(context.filesDir, MODELS)

    /** Copies the bundled models that are missing or different; returns the names copied. */
    fun installBundled(): List<String> {
        if (!modelsDir.isDirectory && !modelsDir.mkdirs()) {
            throw IOException("cannot create ${modelsDir.path}")
        }
        val names = context.assets.list(MODELS)?.filter { !it.startsWith(".") }.orEmpty()
        val copied = ArrayList<String>()
        for (name in names.sorted()) {
            val assetPath = "$MODELS/$name"
            val wanted = context.assets.open(assetPath).use { sha256(it) }
            val target = File(modelsDir, name)
            if (target.isFile && sha256(target) == wanted) {
                continue
            }
            val partial = File(modelsDir, "$name.partial")
            context.assets.open(assetPath).use { input ->
                partial.outputStream().use { output -> input.copyTo(output, BUFFER) }
            }
            if (sha256(partial) != wanted) {
                partial.delete()
                throw IOException("copy of bundled $name is corrupt")
            }
            if (target.exists() && !target.delete()) {
                partial.delete()
                throw IOException("cannot replace ${target.path}")
            }
            if (!partial.renameTo(target)) {
                partial.delete()
                throw IOException("cannot move $name into ${modelsDir.path}")
            }
            copied.add(name)
        }
        return copied
    }

    /** Every model of the folder, sorted by name, each with its contract or its problem. */
    fun list(): List<ModelEntry> {
        val files = modelsDir.listFiles()?.filter { it.isFile }.orEmpty()
        val entries = ArrayList<ModelEntry>()
        val described = HashSet<String>() // .pte files some contract names (or would name)
        for (file in files.filter { it.name.endsWith(CONTRACT_SUFFIX) }.sortedBy { it.name }) {
            val name = file.name.removeSuffix(CONTRACT_SUFFIX)
            val entry = read(name, file)
            entries.add(entry)
            described.add("$name.pte")
            entry.contract?.let { described.add(File(it.artifactPath).name) }
        }
        for (file in files.filter { it.name.endsWith(".pte") }.sortedBy { it.name }) {
            val name = file.name.removeSuffix(".pte")
            if (file.name !in described) {
                entries.add(
                    ModelEntry(
                        name, null, file,
                        "${file.name} has no contract: copy ${file.name}.json beside it (the exporter writes it)",
                    ),
                )
            }
        }
        return entries
    }

    private fun read(name: String, contractFile: File): ModelEntry {
        val contract = try {
            if (contractFile.length() > MAX_CONTRACT_BYTES) {
                throw AppRuleException("${contractFile.name} is ${contractFile.length()} bytes, too large for a contract")
            }
            Contract(contractFile.readText())
        } catch (e: AppRuleException) {
            return ModelEntry(name, null, null, "${contractFile.name}: ${e.message}")
        } catch (e: IOException) {
            return ModelEntry(name, null, null, "cannot read ${contractFile.name}: ${e.message}")
        }
        contract.runProblem()?.let { return ModelEntry(name, contract, null, it) }
        // The artifact lies beside its contract (artifact.path is relative to the contract's folder;
        // only its file name is used, so a contract cannot point outside the models folder).
        val artifact = File(modelsDir, File(contract.artifactPath).name)
        if (!artifact.isFile) {
            return ModelEntry(
                name, contract, null,
                "model file ${artifact.name} is missing: copy it beside ${contractFile.name}",
            )
        }
        return ModelEntry(name, contract, artifact, null)
    }

    /** Throws [AppRuleException] when the entry's file is not the one its contract describes. */
    fun verify(entry: ModelEntry) {
        val contract = entry.contract ?: throw AppRuleException(entry.problem ?: "${entry.name} has no contract")
        val artifact = entry.artifact ?: throw AppRuleException(entry.problem ?: "${entry.name} has no model file")
        val actual = sha256(artifact)
        if (actual != contract.artifactSha256) {
            throw AppRuleException(
                "${artifact.name} does not match its contract (sha256 ${actual.take(12)}..., contract says " +
                    "${contract.artifactSha256.take(12)}...): copy the .pte and its .pte.json from the same export",
            )
        }
    }

    companion object {
        const val MODELS = "models"
        const val CONTRACT_SUFFIX = ".pte.json"
        private const val BUFFER = 1 shl 20
        private const val MAX_CONTRACT_BYTES = 4L shl 20

        fun sha256(file: File): String = file.inputStream().use { sha256(it) }

        fun sha256(input: InputStream): String {
            val digest = MessageDigest.getInstance("SHA-256")
            val buffer = ByteArray(BUFFER)
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                digest.update(buffer, 0, n)
            }
            return digest.digest().joinToString("") { "%02x".format(it) }
        }
    }
}
