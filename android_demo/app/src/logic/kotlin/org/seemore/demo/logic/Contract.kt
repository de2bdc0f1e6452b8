package org.seemore.demo.logic

// The artifact contract (the `<artifact>.json` an exporter writes beside each artifact, format
// seemore-mobile/contract version 3) as far as the app needs it. Every key is read here and only
// here, each with one string / int / intList call on the parsed document whose one argument is the
// dotted path as a literal: exactly the keys of seemore.apps.rules.CONTRACT_KEYS, which a test
// checks against this file.

/** The contract format this app reads. */
const val CONTRACT_FORMAT: String = "seemore-mobile/contract"

/** The contract version this app reads. */
const val CONTRACT_VERSION: Int = 3

/** Backends of ExecuTorch programs that run on Android. */
val ANDROID_BACKENDS: List<String> = listOf("xnnpack", "vulkan")

/**
 * A parsed and checked contract; throws [AppRuleException] (one line) when the text is not JSON,
 * a key is missing or has another type, or the values contradict each other.
 */
class Contract(text: String) {
    private val json: Json = parseContract(text)

    val format: String = read { json.string("format") }
    val version: Int = read { json.int("version") }
    val kind: String = read { json.string("kind") }

    /** The artifact's file, relative to the contract's folder. */
    val artifactPath: String = read { json.string("artifact.path") }

    /** SHA-256 (hex) of the artifact file: the app checks the file against it. */
    val artifactSha256: String = read { json.string("artifact.sha256") }

    val backend: String = read { json.string("spec.backend") }
    val runtime: String = read { json.string("spec.runtime") }
    val precision: String = read { json.string("spec.precision") }
    val height: Int = read { json.int("spec.height") }
    val width: Int = read { json.int("spec.width") }
    val scale: Int = read { json.int("spec.scale") }
    val layout: String = read { json.string("spec.layout") }
    val io: String = read { json.string("spec.io") }
    val ioDtype: String = read { json.string("spec.io_dtype") }
    val inputName: String = read { json.string("inputs.0.name") }
    val inputShape: List<Int> = read { json.intList("inputs.0.shape") }
    val outputName: String = read { json.string("outputs.0.name") }
    val outputShape: List<Int> = read { json.intList("outputs.0.shape") }
    val tile: List<Int> = read { json.intList("tiling.tile") }
    val overlap: Int = read { json.int("tiling.overlap") }

    /** The model the artifact was exported from, e.g. seemore_t_x4. */
    val model: String = read { json.string("source.model") }

    /** The tiling the app follows for this artifact. */
    val tiling: AppTiling

    init {
        if (format != CONTRACT_FORMAT) {
            throw AppRuleException("not a $CONTRACT_FORMAT file (format '$format')")
        }
        if (version != CONTRACT_VERSION) {
            throw AppRuleException("contract version $version; this app reads version $CONTRACT_VERSION")
        }
        if (kind != "runtime") {
            throw AppRuleException("contract kind '$kind' is not a runtime artifact")
        }
        if (artifactPath.length == 0) {
            throw AppRuleException("contract names no artifact file (artifact.path is empty)")
        }
        if (artifactSha256.length != 64 || !artifactSha256.all { it in '0'..'9' || it in 'a'..'f' }) {
            throw AppRuleException("artifact.sha256 '$artifactSha256' is not a SHA-256 hex digest")
        }
        if (tile.size != 2) {
            throw AppRuleException("tiling.tile $tile is not [height, width]")
        }
        if (tile[0] != height || tile[1] != width) {
            throw AppRuleException("tiling.tile $tile is not the spec's input size [$height, $width]")
        }
        val tilingRead = AppTiling(tile[0], tile[1], overlap, scale, layout)
        tilingRead.check()
        tiling = tilingRead
        val wantIn = shapeFor(layout, height, width)
        if (inputShape != wantIn) {
            throw AppRuleException("input '$inputName' has shape $inputShape, not $wantIn ($layout ${height}x$width)")
        }
        val wantOut = shapeFor(layout, height * scale, width * scale)
        if (outputShape != wantOut) {
            throw AppRuleException("output '$outputName' has shape $outputShape, not $wantOut (x$scale of the input)")
        }
    }

    /** Number of floats of one input tile. */
    val inputSize: Int
        get() = 3 * height * width

    /** Number of floats of one output tile. */
    val outputSize: Int
        get() = 3 * height * scale * width * scale

    /** Short description for the UI, e.g. "seemore_t_x4 · xnnpack fp32 · tile 180x320 · x4". */
    val title: String
        get() = "$model · $backend $precision · tile ${height}x$width · x$scale"

    /**
     * Why this app cannot run the artifact (one line), or null when it can: an ExecuTorch program
     * with float32 tensor I/O, delegated to a backend that exists on Android.
     */
    fun runProblem(): String? {
        if (runtime != "executorch") {
            return "$model ($backend $precision) is a $runtime artifact; this app runs ExecuTorch .pte files only"
        }
        if (io != "tensor") {
            return "$model ($backend $precision) has $io I/O; this app feeds float32 tensors only"
        }
        if (ioDtype != "float32") {
            return "$model ($backend $precision) takes $ioDtype tensors; this app feeds float32 only"
        }
        if (backend !in ANDROID_BACKENDS) {
            return "$model is delegated to $backend, which does not run on Android (xnnpack or vulkan do)"
        }
        return null
    }

    private inline fun <T> read(block: () -> T): T {
        try {
            return block()
        } catch (e: JsonException) {
            throw AppRuleException("contract: ${e.message}")
        }
    }

    companion object {
        /** The input (or output) tensor shape of a batch-1 RGB image of [h] x [w] in [layout]. */
        fun shapeFor(layout: String, h: Int, w: Int): List<Int> =
            if (layout == "NHWC") listOf(1, h, w, 3) else listOf(1, 3, h, w)

        private fun parseContract(text: String): Json {
            try {
                return Json.parse(text)
            } catch (e: JsonException) {
                throw AppRuleException("contract is not valid JSON: ${e.message}")
            }
        }
    }
}
