package org.seemore.demo.logic

// The memory rule of seemore.apps.rules (memory_bytes, check_fits): the streamed working set of
// one photo, and the one-line message the app shows when it does not fit.

/** Bytes per pixel of the 8-bit ARGB images the app holds (Android ARGB_8888). */
const val RGBA_BYTES: Long = 4L

/** Bytes per float of the band and tile buffers. */
const val FLOAT_BYTES: Long = 4L

/** Bytes of the 8-bit input and output images of an h x w photo (the first term of [memoryBytes]). */
fun imageBytes(height: Int, width: Int, scale: Int): Long {
    val h = height.toLong()
    val w = width.toLong()
    val s = scale.toLong()
    return RGBA_BYTES * (h * w + h * s * w * s)
}

/**
 * Peak bytes of the streamed working set for an h x w photo: the 8-bit input and output images,
 * one float band of output rows (3 channels, padded output width), one tile's input and output
 * float buffers. The artifact's own memory is not included (the app measures it after loading).
 */
fun memoryBytes(height: Int, width: Int, tiling: AppTiling): Long {
    val plan = tilePlan(height, width, tiling)
    val s = tiling.scale.toLong()
    val images = imageBytes(height, width, tiling.scale)
    val band = FLOAT_BYTES * 3L * bandRows(plan, tiling.scale).toLong() * plan.paddedW.toLong() * s
    val tile = FLOAT_BYTES * 3L * tiling.tileH.toLong() * tiling.tileW.toLong() * (1L + s * s)
    return images + band + tile
}

/** Throws [AppRuleException] (the message the app shows) when the photo needs more than the budget. */
fun checkFits(height: Int, width: Int, tiling: AppTiling, budgetBytes: Long) {
    val need = memoryBytes(height, width, tiling)
    if (need > budgetBytes) {
        val s = tiling.scale
        throw AppRuleException(
            "${width}x$height -> ${width.toLong() * s}x${height.toLong() * s} needs ${mib(need)} MiB, more than the " +
                "${mib(budgetBytes)} MiB this device allows; pick a smaller photo"
        )
    }
}

/** Whole MiB, rounded up (rules._mib). */
fun mib(n: Long): Long = -Math.floorDiv(-n, 1L shl 20)
