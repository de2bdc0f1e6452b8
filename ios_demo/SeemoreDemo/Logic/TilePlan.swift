import Foundation

// The tile plan of a photo for a fixed-shape artifact, line for line as seemore/apps/rules.py
// (`tile_plan`, `fade_half`) and seemore/tiling.py (`plan_axis` with exact=True and align=1,
// `fixed_tile_overlap`). The functions in this file are written in the small Swift subset that
// seemore/apps/swift_subset.py evaluates, so that the tests compare them with the Python
// reference: no closures, explicit Int/Float conversions, plain loops.

/// One window along one axis (LR pixels): the network sees [start, stop), the window owns [coreStart, coreStop).
struct Span: Equatable {
    let start: Int
    let stop: Int
    let coreStart: Int
    let coreStop: Int
}

/// One 2-D window: a row span and a column span.
struct Window: Equatable {
    let rows: Span
    let cols: Span
}

/// Memory order of an artifact's input and output tensors (batch 1).
enum Layout: String {
    case nchw = "NCHW"
    case nhwc = "NHWC"
}

/// What the app takes from an artifact's contract to tile a photo.
struct AppTiling: Equatable {
    let tileH: Int
    let tileW: Int
    let overlap: Int
    let scale: Int
    let layout: Layout
}

/// Where the windows of one photo are: padded size, windows (row-major) and the cross-fade half-width.
struct TilePlan {
    let height: Int
    let width: Int
    let paddedH: Int
    let paddedW: Int
    let windows: [Window]
    /// nil: one window, or cores copied (overlap 0).
    let fadeHalf: Int?
}

/// A photo or tiling the app rules cannot handle; the message is one line, shown to the user.
struct AppRuleError: Error, CustomStringConvertible {
    let message: String
    var description: String { return message }
}

/// Largest overlap (LR px) of fixed-shape artifact tiles (`MAX_FIXED_OVERLAP` in seemore/tiling.py).
let appMaxFixedOverlap = 16

/// The overlap (LR pixels) used with a fixed-shape artifact: 16, or a quarter of a small tile.
func fixedTileOverlap(tileH: Int, tileW: Int) -> Int {
    return min(appMaxFixedOverlap, tileH / 4, tileW / 4)
}

/// Why `size` pixels cannot be split into `tile`-wide windows with `overlap`, or nil when they can
/// (the ValueError of `plan_axis`, same text).
func axisProblem(size: Int, tile: Int, overlap: Int) -> String? {
    if size <= tile {
        return nil
    }
    if overlap < 0 || tile - 2 * overlap < 1 {
        let need = 2 * max(overlap, 0) + 1
        return "tile \(tile) is too small for overlap \(overlap): need tile >= \(need)"
    }
    return nil
}

/// Exactly `tile`-wide windows over `size` pixels, starting every `tile - 2 * overlap` pixels, the
/// last one flush with the edge; the boundary between two cores is the middle of their overlap.
/// A size no larger than the tile is one window reaching past the edge (the caller pads).
func planAxis(size: Int, tile: Int, overlap: Int) -> [Span] {
    if size <= tile {
        return [Span(start: 0, stop: tile, coreStart: 0, coreStop: size)]
    }
    precondition(axisProblem(size: size, tile: tile, overlap: overlap) == nil, "tile too small for its overlap")
    let step = tile - 2 * overlap
    let last = size - tile
    var starts: [Int] = []
    var start = 0
    while start < last {
        starts.append(start)
        start += step
    }
    starts.append(last)
    var spans: [Span] = []
    var coreStart = 0
    for i in 0..<starts.count {
        let stop = starts[i] + tile
        var coreStop = size
        if i + 1 < starts.count {
            coreStop = (stop + starts[i + 1]) / 2
        }
        spans.append(Span(start: starts[i], stop: stop, coreStart: coreStart, coreStop: coreStop))
        coreStart = coreStop
    }
    return spans
}

/// Half-width (LR px) of the cross-fade: nil for one window (cropped, not blended) or overlap 0
/// (cores copied); otherwise half the overlap, kept inside the smallest core.
func fadeHalf(overlap: Int, windows: [Window]) -> Int? {
    if windows.count == 1 || overlap == 0 {
        return nil
    }
    var smallest = overlap
    for window in windows {
        let rowCore = window.rows.coreStop - window.rows.coreStart
        let colCore = window.cols.coreStop - window.cols.coreStart
        smallest = min(smallest, rowCore, colCore)
    }
    return max(0, smallest / 2)
}

/// The windows of an image of `height` x `width` LR pixels for a fixed-shape artifact: an image
/// smaller than a tile is mirrored up to it, then windows are exactly tile-sized, row-major.
func tilePlan(height: Int, width: Int, tiling: AppTiling) throws -> TilePlan {
    if height < 1 || width < 1 {
        throw AppRuleError(message: "empty image \(height)x\(width)")
    }
    let paddedH = max(height, tiling.tileH)
    let paddedW = max(width, tiling.tileW)
    if let problem = axisProblem(size: paddedH, tile: tiling.tileH, overlap: tiling.overlap) {
        throw AppRuleError(message: problem)
    }
    if let problem = axisProblem(size: paddedW, tile: tiling.tileW, overlap: tiling.overlap) {
        throw AppRuleError(message: problem)
    }
    let rowSpans = planAxis(size: paddedH, tile: tiling.tileH, overlap: tiling.overlap)
    let colSpans = planAxis(size: paddedW, tile: tiling.tileW, overlap: tiling.overlap)
    var windows: [Window] = []
    for rows in rowSpans {
        for cols in colSpans {
            windows.append(Window(rows: rows, cols: cols))
        }
    }
    return TilePlan(height: height, width: width, paddedH: paddedH, paddedW: paddedW, windows: windows,
                    fadeHalf: fadeHalf(overlap: tiling.overlap, windows: windows))
}
