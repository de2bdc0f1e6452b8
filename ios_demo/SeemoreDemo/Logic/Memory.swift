import Foundation

// The streamed working set of one photo, line for line as seemore/apps/rules.py (`band_rows`,
// `memory_bytes`, `check_fits`), in the Swift subset seemore/apps/swift_subset.py evaluates.

/// Bytes per pixel of the 8-bit RGBA images the app holds.
let appRGBABytes = 4
/// Bytes of one Float.
let appFloatBytes = 4

/// Tallest float band (HR rows) the stitcher holds: the largest HR row range one row span writes.
func bandRows(plan: TilePlan, scale: Int) -> Int {
    var tallest = 0
    for window in plan.windows {
        let rows = reach(span: window.rows, size: plan.paddedH, half: plan.fadeHalf)
        tallest = max(tallest, (rows.hi - rows.lo) * scale)
    }
    return tallest
}

/// Peak bytes of the streamed working set for a `height` x `width` photo: the 8-bit RGBA input
/// and output images, one float band of output rows (3 channels, padded output width), one
/// tile's input and output float buffers. The artifact's own memory is not included.
func memoryBytes(height: Int, width: Int, tiling: AppTiling) throws -> Int {
    let plan = try tilePlan(height: height, width: width, tiling: tiling)
    let s = tiling.scale
    let images = appRGBABytes * (height * width + height * s * width * s)
    let band = appFloatBytes * 3 * bandRows(plan: plan, scale: s) * plan.paddedW * s
    let tile = appFloatBytes * 3 * tiling.tileH * tiling.tileW * (1 + s * s)
    return images + band + tile
}

/// Throws the message the app shows when the photo needs more than `budgetBytes`.
func checkFits(height: Int, width: Int, tiling: AppTiling, budgetBytes: Int) throws {
    let need = try memoryBytes(height: height, width: width, tiling: tiling)
    if need > budgetBytes {
        let s = tiling.scale
        throw AppRuleError(message: "\(width)x\(height) -> \(width * s)x\(height * s) needs \(mebibytes(need)) MiB, more than the \(mebibytes(budgetBytes)) MiB this device allows; pick a smaller photo")
    }
}

/// `n` bytes in MiB, rounded up (towards +infinity, like the reference's `-(-n // 2**20)`).
func mebibytes(_ n: Int) -> Int {
    let mebibyte = 1_048_576
    let whole = n / mebibyte
    return n % mebibyte > 0 ? whole + 1 : whole
}
