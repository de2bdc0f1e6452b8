import Foundation

// Blending tile outputs into finished 8-bit rows, line for line as seemore/apps/rules.py
// (`reach`, `ramp`, `axis_weights`, `to_byte`, `RowStitcher`), in the Swift subset
// seemore/apps/swift_subset.py evaluates. Float operations run in the reference's order, so
// that the results are bit-equal to its float32 ones.

/// LR range [lo, hi) a window writes along one axis: its core, widened by the fade inside.
func reach(span: Span, size: Int, half: Int?) -> (lo: Int, hi: Int) {
    guard let half = half else {
        return (lo: span.coreStart, hi: span.coreStop)
    }
    let lo = span.coreStart - (span.coreStart == 0 ? 0 : half)
    let hi = span.coreStop + (span.coreStop == size ? 0 : half)
    return (lo: lo, hi: hi)
}

/// Weight rising from 0 to 1 across [centre - half, centre + half) LR px, at the centre of HR pixel `position`.
func ramp(position: Int, centre: Int, half: Int, scale: Int) -> Float {
    if half == 0 {
        return position >= centre * scale ? 1 : 0
    }
    let p = Float(position)
    let value = (p + 0.5 - Float((centre - half) * scale)) / Float(2 * half * scale)
    return min(max(value, 0), 1)
}

/// HR range [lo, hi) a window adds to along one axis, and its weights there.
func axisWeights(span: Span, size: Int, half: Int?, scale: Int) -> (lo: Int, hi: Int, weights: [Float]) {
    let range = reach(span: span, size: size, half: half)
    var weights = [Float](repeating: 1, count: (range.hi - range.lo) * scale)
    guard let half = half else {
        return (lo: range.lo * scale, hi: range.hi * scale, weights: weights)
    }
    var k = 0
    for position in (range.lo * scale)..<(range.hi * scale) {
        var weight: Float = 1
        if span.coreStart != 0 {
            weight = weight * ramp(position: position, centre: span.coreStart, half: half, scale: scale)
        }
        if span.coreStop != size {
            weight = weight * (1 - ramp(position: position, centre: span.coreStop, half: half, scale: scale))
        }
        weights[k] = weight
        k += 1
    }
    return (lo: range.lo * scale, hi: range.hi * scale, weights: weights)
}

/// 8-bit output of a float value: clamp to [0, 1], x 255 in Float, round half to even.
/// NaN (a broken model) gives 0 instead of trapping in the UInt8 conversion.
func toByte(_ value: Float) -> UInt8 {
    if value.isNaN {
        return 0
    }
    let scaled = min(max(value, 0), 1) * 255
    return UInt8(scaled.rounded(.toNearestOrEven))
}

/// Adds tile outputs into a float band and hands out finished 8-bit RGB rows, top to bottom.
///
/// Windows must come in plan order (row-major), each output the artifact's flat Float tensor in
/// the contract's layout. After the last window of a row span the rows above the next span's
/// reach are final: they are converted with `toByte`, cropped to the photo's own width and
/// height, and returned by `add`; the rest of the band moves up. Only one band of
/// `bandRows(plan:scale:)` HR rows is ever held as floats.
final class RowStitcher {
    private let plan: TilePlan
    private let tiling: AppTiling
    private let outW: Int  // HR columns handed out: the photo's own width
    private let rowsTotal: Int  // HR rows of the whole output
    private let bandW: Int  // HR columns of the band: the padded width
    private let bandH: Int  // HR rows of the band
    private var band: [Float]  // bandH x bandW x 3, RGB interleaved
    private var bandTop = 0  // HR row of band row 0
    private var emitted = 0  // HR rows handed out so far
    private var nextIndex = 0  // next window of plan.windows

    init(plan: TilePlan, tiling: AppTiling) {
        let s = tiling.scale
        let rows = bandRows(plan: plan, scale: s)
        let columns = plan.paddedW * s
        self.plan = plan
        self.tiling = tiling
        outW = plan.width * s
        rowsTotal = plan.height * s
        bandW = columns
        bandH = rows
        band = [Float](repeating: 0, count: rows * columns * 3)
    }

    /// Places the next window's output; returns the HR rows it finished (maybe none) as RGB
    /// bytes, `plan.width * scale` pixels a row, and the HR row of the first of them.
    func add(_ output: [Float]) -> (firstRow: Int, rows: [UInt8]) {
        let s = tiling.scale
        let window = plan.windows[nextIndex]
        nextIndex += 1
        let th = tiling.tileH * s
        let tw = tiling.tileW * s
        if plan.windows.count == 1 {
            // One window: its output is the photo (cropped below), copied as it is.
            for y in 0..<min(th, bandH) {
                for x in 0..<min(tw, bandW) {
                    for channel in 0..<3 {
                        let source = packIndex(channel: channel, y: y, x: x, tileH: th, tileW: tw, layout: tiling.layout)
                        band[(y * bandW + x) * 3 + channel] = output[source]
                    }
                }
            }
        } else {
            let ys = axisWeights(span: window.rows, size: plan.paddedH, half: plan.fadeHalf, scale: s)
            let xs = axisWeights(span: window.cols, size: plan.paddedW, half: plan.fadeHalf, scale: s)
            let top = window.rows.start * s
            let left = window.cols.start * s
            for y in ys.lo..<ys.hi {
                let wy = ys.weights[y - ys.lo]
                let row = (y - bandTop) * bandW
                for x in xs.lo..<xs.hi {
                    let wx = xs.weights[x - xs.lo]
                    for channel in 0..<3 {
                        let source = packIndex(channel: channel, y: y - top, x: x - left, tileH: th, tileW: tw, layout: tiling.layout)
                        let part = output[source]
                        let target = (row + x) * 3 + channel
                        if plan.fadeHalf == nil {
                            band[target] = part  // overlap 0: cores copied
                        } else {
                            band[target] += part * (wy * wx)
                        }
                    }
                }
            }
        }
        let lastOfSpan = nextIndex == plan.windows.count || plan.windows[nextIndex].rows != window.rows
        if !lastOfSpan {
            return (firstRow: emitted, rows: [])
        }
        var finished = rowsTotal
        if nextIndex < plan.windows.count {
            let next = reach(span: plan.windows[nextIndex].rows, size: plan.paddedH, half: plan.fadeHalf)
            finished = min(rowsTotal, next.lo * s)
        }
        let firstRow = emitted
        let start = emitted - bandTop
        let stop = min(finished - bandTop, bandH)
        var rows: [UInt8] = []
        if stop > start {
            for y in start..<stop {
                for x in 0..<outW {
                    for channel in 0..<3 {
                        rows.append(toByte(band[(y * bandW + x) * 3 + channel]))
                    }
                }
            }
        }
        emitted = max(emitted, finished)
        let shift = emitted - bandTop
        if shift > 0 && nextIndex < plan.windows.count {
            let moved = max(0, bandH - shift) * bandW * 3
            let offset = shift * bandW * 3
            var i = 0
            while i < moved {
                band[i] = band[i + offset]
                i += 1
            }
            while i < band.count {
                band[i] = 0
                i += 1
            }
            bandTop = emitted
        }
        return (firstRow: firstRow, rows: rows)
    }
}
