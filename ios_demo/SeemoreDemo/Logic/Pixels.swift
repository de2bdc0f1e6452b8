import Foundation

// Pixel packing, line for line as seemore/apps/rules.py (`mirror_index`, `pack_index`,
// `pack_tile`), in the Swift subset seemore/apps/swift_subset.py evaluates.

/// Source pixel of padded position `i` along an axis of `size` pixels: the image mirrored
/// repeatedly, `x, reversed x, x, ...` (period `2 * size`, the edge pixel appears twice).
func mirrorIndex(_ i: Int, size: Int) -> Int {
    let period = 2 * size
    var j = i % period
    if j < 0 {
        j += period  // Swift's % keeps the sign of `i`; the reference's (Python's) does not
    }
    return j < size ? j : period - 1 - j
}

/// Offset of (channel, y, x) in a tile's flat float buffer (batch 1).
func packIndex(channel: Int, y: Int, x: Int, tileH: Int, tileW: Int, layout: Layout) -> Int {
    if layout == .nhwc {
        return (y * tileW + x) * 3 + channel
    }
    return (channel * tileH + y) * tileW + x
}

/// The artifact's input for one window: a flat float buffer, `value / 255`, RGB, alpha ignored.
/// `rgba` is the photo, `height` x `width` pixels of 4 bytes (R, G, B, A); positions past the
/// photo's edge read `mirrorIndex`.
func packTile(rgba: [UInt8], height: Int, width: Int, window: Window, tiling: AppTiling) -> [Float] {
    let tileH = window.rows.stop - window.rows.start
    let tileW = window.cols.stop - window.cols.start
    var packed = [Float](repeating: 0, count: 3 * tileH * tileW)
    for y in 0..<tileH {
        let sourceY = mirrorIndex(window.rows.start + y, size: height)
        for x in 0..<tileW {
            let sourceX = mirrorIndex(window.cols.start + x, size: width)
            let pixel = (sourceY * width + sourceX) * 4
            for channel in 0..<3 {
                let index = packIndex(channel: channel, y: y, x: x, tileH: tileH, tileW: tileW, layout: tiling.layout)
                packed[index] = Float(rgba[pixel + channel]) / 255
            }
        }
    }
    return packed
}
