package org.seemore.demo.logic

// Pixel packing and 8-bit output, as seemore.apps.rules.pack_tile and to_byte. Pixels are
// Android's ARGB ints (0xAARRGGBB, what Bitmap.getPixels returns: straight, not premultiplied,
// 8-bit RGB); alpha is ignored.

/** value / 255 in float32 for every 8-bit value: the same division rules.pack_tile does. */
private val UNIT: FloatArray = FloatArray(256) { it.toFloat() / 255f }

/**
 * The part of the photo a window reads: rows [top, top + rows) and columns [left, left + cols).
 * Returned as intArrayOf(top, left, rows, cols). An image larger than a tile along an axis has
 * windows inside it; a padded axis has one window from 0 whose mirrored positions all fall
 * inside [0, size). So the app can fetch only this part of the photo (Bitmap.getPixels).
 */
fun sourceRegion(window: Window, height: Int, width: Int): IntArray {
    val top = minOf(window.rows.start, height - 1)
    val left = minOf(window.cols.start, width - 1)
    val bottom = minOf(window.rows.stop, height)
    val right = minOf(window.cols.stop, width)
    return intArrayOf(top, left, bottom - top, right - left)
}

/**
 * The artifact's input for one window: a flat float buffer, value / 255, RGB, alpha ignored,
 * NCHW or NHWC per the tiling; padded positions read [mirrorIndex].
 *
 * [argb] is the whole photo, [height] x [width], row stride [width].
 */
fun packTile(argb: IntArray, height: Int, width: Int, window: Window, tiling: AppTiling): FloatArray {
    val out = FloatArray(3 * tiling.tileH * tiling.tileW)
    packTileInto(argb, 0, 0, width, height, width, window, tiling, out)
    return out
}

/**
 * [packTile] from a part of the photo: [region] holds photo rows from [top] and columns from
 * [left] with row stride [stride] (for example the [sourceRegion] of the window, read with
 * Bitmap.getPixels). [height] x [width] is the whole photo's size. Writes into [out].
 */
fun packTileInto(
    region: IntArray,
    top: Int,
    left: Int,
    stride: Int,
    height: Int,
    width: Int,
    window: Window,
    tiling: AppTiling,
    out: FloatArray
) {
    val th = tiling.tileH
    val tw = tiling.tileW
    if (window.rows.stop - window.rows.start != th || window.cols.stop - window.cols.start != tw) {
        throw AppRuleException("window $window is not a ${th}x$tw tile")
    }
    if (out.size != 3 * th * tw) {
        throw AppRuleException("tile buffer holds ${out.size} floats, not ${3 * th * tw}")
    }
    val nhwc = tiling.layout == "NHWC"
    val cols = IntArray(tw)
    for (x in 0 until tw) {
        cols[x] = mirrorIndex(window.cols.start + x, width) - left
    }
    for (y in 0 until th) {
        val row = (mirrorIndex(window.rows.start + y, height) - top) * stride
        for (x in 0 until tw) {
            val p = region[row + cols[x]]
            val r = UNIT[(p shr 16) and 0xFF]
            val g = UNIT[(p shr 8) and 0xFF]
            val b = UNIT[p and 0xFF]
            if (nhwc) {
                val o = (y * tw + x) * 3
                out[o] = r
                out[o + 1] = g
                out[o + 2] = b
            } else {
                out[packIndex(0, y, x, th, tw, "NCHW")] = r
                out[packIndex(1, y, x, th, tw, "NCHW")] = g
                out[packIndex(2, y, x, th, tw, "NCHW")] = b
            }
        }
    }
}

/** 8-bit output of a float value: clamp to [0, 1], x 255 in float32, round half to even (NaN: 0). */
fun toByte(value: Float): Int {
    val clamped = if (value < 0f) 0f else if (value > 1f) 1f else value
    val scaled = clamped * 255f
    if (scaled != scaled) {
        return 0
    }
    return Math.rint(scaled.toDouble()).toInt()
}

/** An opaque ARGB pixel (alpha 0xFF) from three 8-bit values. */
fun argbOf(r: Int, g: Int, b: Int): Int = (0xFF shl 24) or (r shl 16) or (g shl 8) or b
