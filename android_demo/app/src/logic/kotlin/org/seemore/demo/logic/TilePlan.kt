package org.seemore.demo.logic

// The tile plan of a fixed-shape artifact: seemore.tiling.plan_axis / plan_tiles with exact=True
// and align=1, and seemore.apps.rules (tile_plan, fade_half, mirror_index, pack_index, reach),
// line for line with the same names in camelCase. Plain Kotlin: no Android imports, so that the
// JVM checker (src/logicCheck) runs this very code against the Python goldens.

/** Layouts an artifact's input and output tensors may have (rules.LAYOUTS). */
val LAYOUTS: List<String> = listOf("NCHW", "NHWC")

/** Overlap cap of fixed-shape artifact tiles, LR px (seemore.tiling.MAX_FIXED_OVERLAP). */
const val MAX_FIXED_OVERLAP: Int = 16

/** A contract or image the app rules cannot handle; the message is one line (rules.AppRuleError). */
class AppRuleException(message: String) : IllegalArgumentException(message)

/** One window along one axis (LR px): the network sees [start, stop), owns [coreStart, coreStop). */
data class Span(val start: Int, val stop: Int, val coreStart: Int, val coreStop: Int)

/** One 2-D window: a row span and a column span. */
data class Window(val rows: Span, val cols: Span)

/** What the app takes from an artifact's contract to tile a photo (rules.AppTiling). */
data class AppTiling(val tileH: Int, val tileW: Int, val overlap: Int, val scale: Int, val layout: String) {

    /** Throws [AppRuleException] when the values cannot come from an exporter. */
    fun check() {
        if (minOf(tileH, tileW, scale) < 1 || overlap < 0) {
            throw AppRuleException("bad tiling $this")
        }
        if (overlap != fixedTileOverlap(tileH, tileW)) {
            throw AppRuleException("overlap $overlap is not the fixed-tile overlap of ${tileH}x$tileW")
        }
        if (layout !in LAYOUTS) {
            throw AppRuleException("unknown layout '$layout'")
        }
    }
}

/** Where the windows of one photo are: padded size, windows (row-major), fade half-width (null: none). */
class TilePlan(
    val height: Int,
    val width: Int,
    val paddedH: Int,
    val paddedW: Int,
    val windows: List<Window>,
    val fadeHalf: Int?
)

/** The overlap (LR px) used with a fixed-shape artifact: 16, or a quarter of a small tile. */
fun fixedTileOverlap(tileH: Int, tileW: Int): Int = minOf(MAX_FIXED_OVERLAP, tileH / 4, tileW / 4)

private fun ceilDiv(a: Int, b: Int): Int = -Math.floorDiv(-a, b)

/**
 * seemore.tiling.plan_axis(size, tile, overlap, align=1, exact=True): every window exactly [tile]
 * wide, starts every tile - 2 * overlap pixels, the last one flush with the edge; a size no larger
 * than the tile is one window reaching past the edge (the caller pads).
 */
fun planAxis(size: Int, tile: Int, overlap: Int): List<Span> {
    if (size <= tile) {
        return listOf(Span(0, tile, 0, size))
    }
    val align = 1
    val width = tile
    val stride = Math.floorDiv(width - 2 * overlap, align) * align
    if (overlap < 0 || stride < align) {
        val need = ceilDiv(2 * maxOf(overlap, 0) + align, align) * align
        throw AppRuleException("tile $tile is too small for overlap $overlap: need tile >= $need")
    }
    val starts = ArrayList<Int>()
    var s = 0
    while (s < size - width) {
        starts.add(s)
        s += stride
    }
    val last = size - width
    if (starts.isNotEmpty() && starts[starts.size - 1] == last) {
        starts.removeAt(starts.size - 1)
    }
    starts.add(last)
    val stops = ArrayList<Int>()
    for (i in 0 until starts.size - 1) {
        stops.add(starts[i] + width)
    }
    stops.add(size)
    val bounds = ArrayList<Int>()
    bounds.add(0)
    for (i in 0 until starts.size - 1) {
        bounds.add(Math.floorDiv(stops[i] + starts[i + 1], 2))
    }
    bounds.add(size)
    val spans = ArrayList<Span>()
    for (i in starts.indices) {
        spans.add(Span(starts[i], stops[i], bounds[i], bounds[i + 1]))
    }
    return spans
}

/** seemore.tiling.plan_tiles(height, width, (tileH, tileW), overlap, 1, exact=True): row-major windows. */
fun planTiles(height: Int, width: Int, tileH: Int, tileW: Int, overlap: Int): List<Window> {
    val windows = ArrayList<Window>()
    val colSpans = planAxis(width, tileW, overlap)
    for (r in planAxis(height, tileH, overlap)) {
        for (c in colSpans) {
            windows.add(Window(r, c))
        }
    }
    return windows
}

/**
 * Half-width (LR px) of the cross-fade, as seemore.tiling.run_fixed_tiles uses it; null when there
 * is one window (its output is cropped, not blended) or the overlap is 0 (cores copied).
 */
fun fadeHalf(overlap: Int, windows: List<Window>): Int? {
    if (windows.size == 1 || overlap == 0) {
        return null
    }
    var smallest = Int.MAX_VALUE
    for (w in windows) {
        smallest = minOf(smallest, minOf(w.rows.coreStop - w.rows.coreStart, w.cols.coreStop - w.cols.coreStart))
    }
    return maxOf(0, Math.floorDiv(minOf(overlap, smallest), 2))
}

/** The windows of an image of [height] x [width] LR pixels for a fixed-shape artifact. */
fun tilePlan(height: Int, width: Int, tiling: AppTiling): TilePlan {
    if (height < 1 || width < 1) {
        throw AppRuleException("empty image ${height}x$width")
    }
    val paddedH = maxOf(height, tiling.tileH)
    val paddedW = maxOf(width, tiling.tileW)
    val windows = planTiles(paddedH, paddedW, tiling.tileH, tiling.tileW, tiling.overlap)
    return TilePlan(height, width, paddedH, paddedW, windows, fadeHalf(tiling.overlap, windows))
}

/**
 * Source pixel of padded position [i] along an axis of [size] pixels: repeated mirroring with
 * period 2 * size (x, reversed x, x, ...; the edge pixel appears twice).
 */
fun mirrorIndex(i: Int, size: Int): Int {
    val j = Math.floorMod(i, 2 * size)
    return if (j < size) j else 2 * size - 1 - j
}

/** Offset of (channel, y, x) in a tile's flat float buffer (batch 1). */
fun packIndex(channel: Int, y: Int, x: Int, tileH: Int, tileW: Int, layout: String): Int {
    if (layout == "NHWC") {
        return (y * tileW + x) * 3 + channel
    }
    return (channel * tileH + y) * tileW + x
}

/** LR range [lo, hi) a window writes along one axis: its core, widened by the fade inside. */
fun reach(span: Span, size: Int, half: Int?): IntArray {
    if (half == null) {
        return intArrayOf(span.coreStart, span.coreStop)
    }
    val lo = span.coreStart - (if (span.coreStart == 0) 0 else half)
    val hi = span.coreStop + (if (span.coreStop == size) 0 else half)
    return intArrayOf(lo, hi)
}
