import CoreGraphics
import Foundation
import ImageIO
import UniformTypeIdentifiers

/// A photo decoded for the app rules: upright (EXIF orientation applied), sRGB, 8-bit RGBA bytes.
struct DecodedPhoto {
    /// The upright image as decoded, for the "before" side of the comparison.
    let image: CGImage
    /// `width * height * 4` bytes, R G B X per pixel, top row first: what `packTile` reads (the fourth byte is ignored).
    let rgba: [UInt8]
    let width: Int
    let height: Int
}

struct PhotoError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

enum PhotoIO {
    static let sRGB = CGColorSpace(name: CGColorSpace.sRGB) ?? CGColorSpaceCreateDeviceRGB()

    /// 8-bit RGB with a padding byte: an opaque context, so RGB is never premultiplied by alpha.
    static let bitmapInfo = CGImageAlphaInfo.noneSkipLast.rawValue

    /// Decodes image data (HEIC, JPEG, PNG, ...) with ImageIO, applies its EXIF orientation and draws it
    /// into an opaque sRGB RGBA8 bitmap. Transparent areas come out white (an opaque context has no alpha).
    static func decode(_ data: Data) throws -> DecodedPhoto {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil), CGImageSourceGetCount(source) > 0 else {
            throw PhotoError(message: "ImageIO cannot read this file as an image")
        }
        let properties = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [CFString: Any] ?? [:]
        let pixelWidth = (properties[kCGImagePropertyPixelWidth] as? NSNumber)?.intValue ?? 0
        let pixelHeight = (properties[kCGImagePropertyPixelHeight] as? NSNumber)?.intValue ?? 0
        guard pixelWidth > 0, pixelHeight > 0 else {
            throw PhotoError(message: "the image has no pixel size")
        }
        // A "thumbnail" as large as the image itself, rotated and mirrored by its EXIF orientation.
        let options: [CFString: Any] = [
            kCGImageSourceCreateThumbnailFromImageAlways: true,
            kCGImageSourceCreateThumbnailWithTransform: true,
            kCGImageSourceThumbnailMaxPixelSize: max(pixelWidth, pixelHeight),
            kCGImageSourceShouldCacheImmediately: true,
        ]
        guard let image = CGImageSourceCreateThumbnailAtIndex(source, 0, options as CFDictionary) else {
            throw PhotoError(message: "ImageIO could not decode the image")
        }
        let width = image.width
        let height = image.height
        var rgba = [UInt8](repeating: 255, count: width * height * 4)
        let drawn = rgba.withUnsafeMutableBytes { raw -> Bool in
            guard let context = CGContext(data: raw.baseAddress, width: width, height: height, bitsPerComponent: 8,
                                          bytesPerRow: width * 4, space: sRGB, bitmapInfo: bitmapInfo) else {
                return false
            }
            let rect = CGRect(x: 0, y: 0, width: width, height: height)
            context.setFillColor(CGColor(red: 1, green: 1, blue: 1, alpha: 1))
            context.fill(rect)
            context.interpolationQuality = .none
            context.draw(image, in: rect)
            return true
        }
        guard drawn else {
            throw PhotoError(message: "could not create a \(width)x\(height) RGBA bitmap")
        }
        return DecodedPhoto(image: image, rgba: rgba, width: width, height: height)
    }

    /// PNG bytes of an image (lossless: the saved photo is exactly the stitched result).
    static func pngData(_ image: CGImage) throws -> Data {
        let data = NSMutableData()
        guard let destination = CGImageDestinationCreateWithData(data as CFMutableData, UTType.png.identifier as CFString, 1, nil) else {
            throw PhotoError(message: "ImageIO has no PNG encoder")
        }
        CGImageDestinationAddImage(destination, image, nil)
        guard CGImageDestinationFinalize(destination) else {
            throw PhotoError(message: "PNG encoding failed")
        }
        return data as Data
    }
}

/// The output image, filled row band by row band as `RowStitcher` hands finished rows out.
///
/// One RGBA8 buffer of the output size, allocated once; the CGImage made at the end wraps it without a copy.
final class RGBACanvas {
    let width: Int
    let height: Int
    private let data: NSMutableData
    private(set) var rowsWritten = 0

    init(width: Int, height: Int) throws {
        guard let data = NSMutableData(length: width * height * 4) else {
            throw PhotoError(message: "not enough memory for a \(width)x\(height) output image")
        }
        self.width = width
        self.height = height
        self.data = data
    }

    /// Writes RGB rows (3 bytes per pixel, `width` pixels per row) starting at output row `firstRow`, as opaque RGBA.
    func write(firstRow: Int, rgbRows: [UInt8]) throws {
        guard !rgbRows.isEmpty else { return }
        let rowBytes = width * 3
        guard rgbRows.count % rowBytes == 0 else {
            throw PhotoError(message: "stitched rows of \(rgbRows.count) bytes are not whole \(width)-pixel rows")
        }
        let count = rgbRows.count / rowBytes
        guard firstRow >= 0, firstRow + count <= height else {
            throw PhotoError(message: "stitched rows \(firstRow)..<\(firstRow + count) fall outside the \(height)-row output")
        }
        let target = data.mutableBytes.assumingMemoryBound(to: UInt8.self) + firstRow * width * 4
        rgbRows.withUnsafeBufferPointer { source in
            for i in 0..<(count * width) {
                target[4 * i] = source[3 * i]
                target[4 * i + 1] = source[3 * i + 1]
                target[4 * i + 2] = source[3 * i + 2]
                target[4 * i + 3] = 255
            }
        }
        rowsWritten = max(rowsWritten, firstRow + count)
    }

    /// The finished image (sRGB, opaque). Call once every row is written.
    func makeImage() throws -> CGImage {
        guard rowsWritten == height else {
            throw PhotoError(message: "only \(rowsWritten) of \(height) output rows were stitched")
        }
        guard let provider = CGDataProvider(data: data as CFData),
              let image = CGImage(width: width, height: height, bitsPerComponent: 8, bitsPerPixel: 32,
                                  bytesPerRow: width * 4, space: PhotoIO.sRGB,
                                  bitmapInfo: CGBitmapInfo(rawValue: PhotoIO.bitmapInfo), provider: provider,
                                  decode: nil, shouldInterpolate: true, intent: .defaultIntent) else {
            throw PhotoError(message: "could not make a \(width)x\(height) image of the result")
        }
        return image
    }
}
