package org.seemore.demo.logic

// The blend and the streamed stitching of seemore.apps.rules (ramp, axis_weights, band_rows,
// RowStitcher): float32 in the same order of operations, so the 8-bit rows are bit-equal to the
// Python reference (and to seemore.tiling.run_fixed_tiles followed by to_byte).

/**
 * Weight rising from 0 to 1 across [centre - half, centre + half) LR px, at HR pixel [position]'s
 * centre. Float (float32) throughout, in this order of operations.
 */
fun ramp(position: Int, centre: Int, half: Int, scale: Int): Float {
    if (half == 0) {
        return if (position >= centre * scale) 1.0f else 0.0f
    }
    val p = position.toFloat()
    val value = (p + 0.5f - ((centre - half) * scale).toFloat()) / (2 * half * scale).toFloat()
    // min(max(value, 0), 1) with Python's builtin semantics (the first argument wins ties).
    val low = if (0.0f > value) 0.0f else value
    return if (1.0f < low) 1.0f else low
}

/** HR range [start, stop) a window adds to along one axis, and its float weights there. */
class AxisWeights(val start: Int, val stop: Int, val weights: FloatArray)

/** rules.axis_weights: the HR range a window adds to along one axis and its weights. */
fun axisWeights(span: Span, size: Int, half: Int?, scale: Int): AxisWeights {
    val lohi = reach(span, size, half)
    val lo = lohi[0]
    val hi = lohi[1]
    val weights = FloatArray((hi - lo) * scale) { 1.0f }
    if (half == null) {
        return AxisWeights(lo * scale, hi * scale, weights)
    }
    for (k in 0 until (hi - lo) * scale) {
        val position = lo * scale + k
        var weight = 1.0f
        if (span.coreStart != 0) {
            weight = weight * ramp(position, span.coreStart, half, scale)
        }
        if (span.coreStop != size) {
            weight = weight * (1.0f - ramp(position, span.coreStop, half, scale))
        }
        weights[k] = weight
    }
    return AxisWeights(lo * scale, hi * scale, weights)
}

/** Tallest float band (HR rows) the stitcher holds: the largest HR row range one row span writes. */
fun bandRows(plan: TilePlan, scale: Int): Int {
    var tallest = 0
    for (window in plan.windows) {
        val lohi = reach(window.rows, plan.paddedH, plan.fadeHalf)
        tallest = maxOf(tallest, (lohi[1] - lohi[0]) * scale)
    }
    return tallest
}

/**
 * Finished output rows: [rowCount] rows of [width] opaque ARGB pixels (alpha 0xFF) from HR row
 * [firstRow] on, row-major in [pixels] (what Bitmap.setPixels takes with stride [width]).
 */
class FinishedRows(val firstRow: Int, val rowCount: Int, val width: Int, val pixels: IntArray)

/**
 * Adds tile outputs into a float band and hands out finished 8-bit rows, top to bottom
 * (rules.RowStitcher). Windows must come in plan order (row-major). After the last window of a
 * row span the rows above the next span's reach are final: they are converted with [toByte],
 * cropped to the image's own width and height and returned by [add]; the rest of the band moves
 * up. Only the band ([bandHeight] x padded output width x 3 floats) is ever held as floats.
 */
class RowStitcher(private val plan: TilePlan, private val tiling: AppTiling) {
    private val s = tiling.scale

    /** Output width (HR px): the image's own, without padding. */
    val outW: Int = plan.width * s

    /** Output rows (HR px) in all. */
    val rowsTotal: Int = plan.height * s

    /** Rows of the float band: [bandRows]. */
    val bandHeight: Int = bandRows(plan, s)

    private val bandW = plan.paddedW * s
    private val band = FloatArray(bandHeight * bandW * 3)
    private var bandTop = 0 // HR row of band row 0
    private var emitted = 0 // HR rows handed out so far
    private var nextIndex = 0

    /** The highest band row (0-based, relative to the band's top) any window has written, or -1. */
    var deepestBandRow: Int = -1
        private set

    /**
     * Called, when set, with each finished band's first HR row and its float values (RGB
     * interleaved, before [toByte]): the JVM checker compares them bit for bit with the Python
     * reference, which the 8-bit output alone would not (a blend rounded differently can still
     * give the same bytes). The app leaves it null.
     */
    var floatSink: ((Int, FloatArray) -> Unit)? = null

    /** HR rows handed out so far. */
    val rowsEmitted: Int
        get() = emitted

    /** Windows placed so far. */
    val windowsDone: Int
        get() = nextIndex

    /** Place the next window's flat float output; returns the rows it finished (possibly none). */
    fun add(output: FloatArray): FinishedRows {
        if (nextIndex >= plan.windows.size) {
            throw AppRuleException("all ${plan.windows.size} windows were already placed")
        }
        val window = plan.windows[nextIndex]
        nextIndex += 1
        val th = tiling.tileH * s
        val tw = tiling.tileW * s
        if (output.size != th * tw * 3) {
            throw AppRuleException("tile output holds ${output.size} floats, not ${th * tw * 3} (3x${th}x$tw)")
        }
        val nhwc = tiling.layout == "NHWC"
        if (plan.windows.size == 1) {
            // band[:th, :tw] = tile[:band rows]
            val rows = minOf(th, bandHeight)
            for (y in 0 until rows) {
                for (x in 0 until minOf(tw, bandW)) {
                    val o = (y * bandW + x) * 3
                    for (c in 0 until 3) {
                        band[o + c] = output[tileIndex(c, y, x, th, tw, nhwc)]
                    }
                }
            }
            deepestBandRow = maxOf(deepestBandRow, rows - 1)
        } else {
            val wy = axisWeights(window.rows, plan.paddedH, plan.fadeHalf, s)
            val wx = axisWeights(window.cols, plan.paddedW, plan.fadeHalf, s)
            val y0 = wy.start
            val y1 = wy.stop
            val x0 = wx.start
            val x1 = wx.stop
            if (y0 - bandTop < 0 || y1 - bandTop > bandHeight || x0 < 0 || x1 > bandW) {
                throw IllegalStateException(
                    "window $window writes HR rows [$y0, $y1) outside the band [$bandTop, ${bandTop + bandHeight})"
                )
            }
            val rowOffset = window.rows.start * s
            val colOffset = window.cols.start * s
            val copy = plan.fadeHalf == null
            for (y in y0 until y1) {
                val ty = y - rowOffset
                val by = y - bandTop
                val weightY = wy.weights[y - y0]
                for (x in x0 until x1) {
                    val tx = x - colOffset
                    val o = (by * bandW + x) * 3
                    if (copy) {
                        for (c in 0 until 3) {
                            band[o + c] = output[tileIndex(c, ty, tx, th, tw, nhwc)]
                        }
                    } else {
                        val weight = weightY * wx.weights[x - x0]
                        for (c in 0 until 3) {
                            val part = output[tileIndex(c, ty, tx, th, tw, nhwc)]
                            band[o + c] = band[o + c] + part * weight
                        }
                    }
                }
            }
            if (y1 > y0) {
                deepestBandRow = maxOf(deepestBandRow, y1 - 1 - bandTop)
            }
        }
        val lastOfSpan = nextIndex == plan.windows.size || plan.windows[nextIndex].rows != window.rows
        if (!lastOfSpan) {
            return FinishedRows(emitted, 0, outW, IntArray(0))
        }
        val finalRow: Int
        if (nextIndex == plan.windows.size) {
            finalRow = rowsTotal
        } else {
            finalRow = minOf(rowsTotal, reach(plan.windows[nextIndex].rows, plan.paddedH, plan.fadeHalf)[0] * s)
        }
        // band[emitted - bandTop : finalRow - bandTop, :outW] converted to bytes
        val from = emitted - bandTop
        val until = minOf(finalRow - bandTop, bandHeight)
        if (from < 0 || until < 0) {
            throw IllegalStateException("rows [$emitted, $finalRow) are not in the band from $bandTop")
        }
        val count = maxOf(0, until - from)
        val pixels = IntArray(count * outW)
        for (r in 0 until count) {
            val bandRow = (from + r) * bandW
            for (x in 0 until outW) {
                val o = (bandRow + x) * 3
                pixels[r * outW + x] = argbOf(toByte(band[o]), toByte(band[o + 1]), toByte(band[o + 2]))
            }
        }
        val sink = floatSink
        if (sink != null) {
            val values = FloatArray(count * outW * 3)
            for (r in 0 until count) {
                System.arraycopy(band, (from + r) * bandW * 3, values, r * outW * 3, outW * 3)
            }
            sink(emitted, values)
        }
        val done = FinishedRows(emitted, count, outW, pixels)
        emitted = maxOf(emitted, finalRow)
        val shift = emitted - bandTop
        if (shift > 0 && nextIndex < plan.windows.size) {
            // band[:-shift] = band[shift:]; band[-shift:] = 0
            val keep = maxOf(0, bandHeight - shift)
            if (keep > 0) {
                System.arraycopy(band, shift * bandW * 3, band, 0, keep * bandW * 3)
            }
            java.util.Arrays.fill(band, keep * bandW * 3, band.size, 0.0f)
            bandTop = emitted
        }
        return done
    }

    private fun tileIndex(channel: Int, y: Int, x: Int, th: Int, tw: Int, nhwc: Boolean): Int =
        if (nhwc) (y * tw + x) * 3 + channel else (channel * th + y) * tw + x
}
