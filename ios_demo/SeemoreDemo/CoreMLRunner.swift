import CoreML
import CoreVideo
import Foundation

/// What both model runners do: one tile in, one tile out.
///
/// `input` is the contract's input tensor as a flat float32 buffer in the contract's layout
/// (what `packTile` returns); the result is the contract's output tensor, flat, in the same
/// layout (what `RowStitcher.add` takes). A runner is not thread-safe: the app calls it only
/// from `TileEngine`, one call at a time.
protocol TileRunner: AnyObject {
    func run(_ input: [Float]) throws -> [Float]
}

/// A runner failure with the message the app shows (one line).
struct RunnerError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// The compute units the picker offers; `rawValue` is what the profile JSON records.
enum ComputeUnitsChoice: String, CaseIterable, Identifiable {
    case all
    case cpuOnly
    case cpuAndGPU
    case cpuAndNeuralEngine

    var id: String { rawValue }

    var label: String {
        switch self {
        case .all: return "All"
        case .cpuOnly: return "CPU only"
        case .cpuAndGPU: return "CPU+GPU"
        case .cpuAndNeuralEngine: return "CPU+Neural Engine"
        }
    }

    var units: MLComputeUnits {
        switch self {
        case .all: return .all
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        }
    }
}

/// One ML program operation with the compute device MLComputePlan prefers for it.
struct PlannedOp: Codable, Equatable {
    let name: String
    let type: String
    let device: String  // "ane" | "gpu" | "cpu"
    let cost: Double
}

/// Runs a Core ML package's prediction per tile, with tensor (MLMultiArray) or image (CVPixelBuffer) I/O
/// as the contract's `spec.io` says.
final class CoreMLRunner: TileRunner {
    private let model: MLModel
    private let inputName: String
    private let outputName: String
    private let outputShape: [Int]
    private let layout: Layout
    private let tileH: Int
    private let tileW: Int
    private let scale: Int
    private let inputCount: Int
    private let outputCount: Int
    /// The reused input of a tensor package (the contract's input shape; float32 unless the package declares another float type).
    private let inputArray: MLMultiArray?
    /// The reused input of an image package (32BGRA, tile-sized).
    private let inputBuffer: CVPixelBuffer?

    init(model: MLModel, contract: Contract) throws {
        let description = model.modelDescription
        guard let input = description.inputDescriptionsByName[contract.inputName] else {
            let names = description.inputDescriptionsByName.keys.sorted().joined(separator: ", ")
            throw RunnerError(message: "package has no input '\(contract.inputName)' (it has: \(names)): the contract belongs to another package")
        }
        guard description.outputDescriptionsByName[contract.outputName] != nil else {
            let names = description.outputDescriptionsByName.keys.sorted().joined(separator: ", ")
            throw RunnerError(message: "package has no output '\(contract.outputName)' (it has: \(names)): the contract belongs to another package")
        }
        let inputCount = contract.inputShape.reduce(1, *)
        let outputCount = contract.outputShape.reduce(1, *)
        guard inputCount == 3 * contract.tileH * contract.tileW,
              outputCount == 3 * contract.tileH * contract.scale * contract.tileW * contract.scale else {
            throw RunnerError(message: "contract shapes \(contract.inputShape) -> \(contract.outputShape) do not match its \(contract.tileH)x\(contract.tileW) x\(contract.scale) tiling")
        }
        let array: MLMultiArray?
        let buffer: CVPixelBuffer?
        switch contract.io {
        case "tensor":
            guard input.type == .multiArray else {
                throw RunnerError(message: "contract says tensor I/O but the package's input '\(contract.inputName)' is not a multi-array")
            }
            // Float32 unless the package itself declares another float type for its input.
            var dataType = MLMultiArrayDataType.float32
            if let declared = input.multiArrayConstraint?.dataType {
                if declared == .double {
                    dataType = .double
                }
                #if arch(arm64)
                if declared == .float16 {
                    dataType = .float16
                }
                #endif
            }
            array = try MLMultiArray(shape: contract.inputShape.map { NSNumber(value: $0) }, dataType: dataType)
            buffer = nil
        case "image":
            guard input.type == .image else {
                throw RunnerError(message: "contract says image I/O but the package's input '\(contract.inputName)' is not an image")
            }
            if let constraint = input.imageConstraint,
               constraint.pixelsWide != contract.tileW || constraint.pixelsHigh != contract.tileH {
                throw RunnerError(message: "package input is \(constraint.pixelsWide)x\(constraint.pixelsHigh), contract tile is \(contract.tileW)x\(contract.tileH)")
            }
            array = nil
            buffer = try CoreMLRunner.makePixelBuffer(width: contract.tileW, height: contract.tileH)
        default:
            throw RunnerError(message: "unknown spec.io '\(contract.io)' (expected tensor or image)")
        }
        self.model = model
        self.inputName = contract.inputName
        self.outputName = contract.outputName
        self.outputShape = contract.outputShape
        self.layout = contract.layout
        self.tileH = contract.tileH
        self.tileW = contract.tileW
        self.scale = contract.scale
        self.inputCount = inputCount
        self.outputCount = outputCount
        self.inputArray = array
        self.inputBuffer = buffer
    }

    func run(_ input: [Float]) throws -> [Float] {
        guard input.count == inputCount else {
            throw RunnerError(message: "tile has \(input.count) values, the package takes \(inputCount)")
        }
        let value: MLFeatureValue
        if let array = inputArray {
            CoreMLRunner.fillArray(array, with: input)
            value = MLFeatureValue(multiArray: array)
        } else if let buffer = inputBuffer {
            try fillPixels(buffer, with: input)
            value = MLFeatureValue(pixelBuffer: buffer)
        } else {
            throw RunnerError(message: "runner has no input buffer")
        }
        let features = try MLDictionaryFeatureProvider(dictionary: [inputName: value])
        let result = try model.prediction(from: features)
        guard let output = result.featureValue(for: outputName) else {
            throw RunnerError(message: "prediction returned no '\(outputName)'")
        }
        if let array = output.multiArrayValue {
            return try arrayValues(array)
        }
        if let buffer = output.imageBufferValue {
            return try pixelValues(buffer)
        }
        throw RunnerError(message: "output '\(outputName)' is neither a multi-array nor an image")
    }

    // MARK: - Tensor I/O

    /// Writes the flat input (the contract's shape, row-major) into the multi-array, honouring its strides.
    private static func fillArray(_ array: MLMultiArray, with input: [Float]) {
        let shape = array.shape.map { $0.intValue }
        switch array.dataType {
        case .double:
            scatter(input, into: array, ofType: Double.self, shape: shape) { Double($0) }
        #if arch(arm64)
        case .float16:
            scatter(input, into: array, ofType: Float16.self, shape: shape) { Float16($0) }
        #endif
        default:
            array.withUnsafeMutableBufferPointer(ofType: Float.self) { storage, strides in
                input.withUnsafeBufferPointer { source in
                    if strides == contiguousStrides(shape) {
                        storage.baseAddress!.update(from: source.baseAddress!, count: source.count)
                        return
                    }
                    let step = strides.last ?? 1
                    forEachRow(shape: shape, strides: strides) { logical, stored, length in
                        for i in 0..<length {
                            storage[stored + i * step] = source[logical + i]
                        }
                    }
                }
            }
        }
    }

    private static func scatter<S: MLShapedArrayScalar>(_ input: [Float], into array: MLMultiArray, ofType type: S.Type,
                                                      shape: [Int], convert: (Float) -> S) {
        array.withUnsafeMutableBufferPointer(ofType: type) { storage, strides in
            let step = strides.last ?? 1
            forEachRow(shape: shape, strides: strides) { logical, stored, length in
                for i in 0..<length {
                    storage[stored + i * step] = convert(input[logical + i])
                }
            }
        }
    }

    /// The output multi-array as a flat, row-major float buffer of the contract's output shape.
    private func arrayValues(_ array: MLMultiArray) throws -> [Float] {
        let shape = array.shape.map { $0.intValue }
        guard shape.reduce(1, *) == outputCount else {
            throw RunnerError(message: "output shape \(shape), contract says \(outputShape)")
        }
        var out = [Float](repeating: 0, count: outputCount)
        switch array.dataType {
        case .float32:
            CoreMLRunner.gather(array, ofType: Float.self, shape: shape, into: &out) { $0 }
        case .double:
            CoreMLRunner.gather(array, ofType: Double.self, shape: shape, into: &out) { Float($0) }
        case .float16:
            #if arch(arm64)
            CoreMLRunner.gather(array, ofType: Float16.self, shape: shape, into: &out) { Float($0) }
            #else
            CoreMLRunner.gatherByIndex(array, shape: shape, into: &out)
            #endif
        default:
            throw RunnerError(message: "output '\(outputName)' has data type \(array.dataType.rawValue), expected a float type")
        }
        return out
    }

    private static func gather<S: MLShapedArrayScalar>(_ array: MLMultiArray, ofType type: S.Type, shape: [Int],
                                                     into out: inout [Float], convert: (S) -> Float) {
        array.withUnsafeMutableBufferPointer(ofType: type) { storage, strides in
            let step = strides.last ?? 1
            out.withUnsafeMutableBufferPointer { target in
                forEachRow(shape: shape, strides: strides) { logical, stored, length in
                    for i in 0..<length {
                        target[logical + i] = convert(storage[stored + i * step])
                    }
                }
            }
        }
    }

    /// Element-by-element fallback (NSNumber subscripts) for a data type this architecture has no Swift scalar for.
    private static func gatherByIndex(_ array: MLMultiArray, shape: [Int], into out: inout [Float]) {
        var index = [Int](repeating: 0, count: shape.count)
        for i in 0..<out.count {
            out[i] = array[index.map { NSNumber(value: $0) }].floatValue
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }

    // MARK: - Image I/O

    private static func makePixelBuffer(width: Int, height: Int) throws -> CVPixelBuffer {
        let attributes: [CFString: Any] = [
            kCVPixelBufferIOSurfacePropertiesKey: [CFString: Any]() as CFDictionary,
            kCVPixelBufferCGImageCompatibilityKey: true,
            kCVPixelBufferCGBitmapContextCompatibilityKey: true,
        ]
        var buffer: CVPixelBuffer?
        let status = CVPixelBufferCreate(kCFAllocatorDefault, width, height, kCVPixelFormatType_32BGRA,
                                         attributes as CFDictionary, &buffer)
        guard status == kCVReturnSuccess, let buffer else {
            throw RunnerError(message: "could not create a \(width)x\(height) BGRA pixel buffer (CVReturn \(status))")
        }
        return buffer
    }

    /// The packed tile back to 8-bit BGRA: `packTile` wrote value / 255, `toByte` gives the byte back exactly.
    private func fillPixels(_ buffer: CVPixelBuffer, with input: [Float]) throws {
        guard CVPixelBufferLockBaseAddress(buffer, []) == kCVReturnSuccess else {
            throw RunnerError(message: "could not lock the input pixel buffer")
        }
        defer { CVPixelBufferUnlockBaseAddress(buffer, []) }
        guard let base = CVPixelBufferGetBaseAddress(buffer) else {
            throw RunnerError(message: "input pixel buffer has no memory")
        }
        let rowBytes = CVPixelBufferGetBytesPerRow(buffer)
        let pixels = base.assumingMemoryBound(to: UInt8.self)
        for y in 0..<tileH {
            let row = pixels + y * rowBytes
            for x in 0..<tileW {
                let r = toByte(input[packIndex(channel: 0, y: y, x: x, tileH: tileH, tileW: tileW, layout: layout)])
                let g = toByte(input[packIndex(channel: 1, y: y, x: x, tileH: tileH, tileW: tileW, layout: layout)])
                let b = toByte(input[packIndex(channel: 2, y: y, x: x, tileH: tileH, tileW: tileW, layout: layout)])
                row[4 * x] = b
                row[4 * x + 1] = g
                row[4 * x + 2] = r
                row[4 * x + 3] = 255
            }
        }
    }

    /// The 8-bit output image as value / 255 in the contract's output layout.
    private func pixelValues(_ buffer: CVPixelBuffer) throws -> [Float] {
        let outH = tileH * scale
        let outW = tileW * scale
        let width = CVPixelBufferGetWidth(buffer)
        let height = CVPixelBufferGetHeight(buffer)
        guard width == outW, height == outH else {
            throw RunnerError(message: "output image is \(width)x\(height), contract says \(outW)x\(outH)")
        }
        let format = CVPixelBufferGetPixelFormatType(buffer)
        let channels: (r: Int, g: Int, b: Int, stride: Int)
        switch format {
        case kCVPixelFormatType_32BGRA: channels = (2, 1, 0, 4)
        case kCVPixelFormatType_32ARGB: channels = (1, 2, 3, 4)
        case kCVPixelFormatType_32RGBA: channels = (0, 1, 2, 4)
        case kCVPixelFormatType_32ABGR: channels = (3, 2, 1, 4)
        case kCVPixelFormatType_24RGB: channels = (0, 1, 2, 3)
        case kCVPixelFormatType_24BGR: channels = (2, 1, 0, 3)
        default:
            throw RunnerError(message: "output image has pixel format \(fourCC(format)), expected 8-bit RGB(A)")
        }
        guard CVPixelBufferLockBaseAddress(buffer, .readOnly) == kCVReturnSuccess else {
            throw RunnerError(message: "could not lock the output pixel buffer")
        }
        defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
        guard let base = CVPixelBufferGetBaseAddress(buffer) else {
            throw RunnerError(message: "output pixel buffer has no memory")
        }
        let rowBytes = CVPixelBufferGetBytesPerRow(buffer)
        let pixels = base.assumingMemoryBound(to: UInt8.self)
        var out = [Float](repeating: 0, count: outputCount)
        for y in 0..<outH {
            let row = pixels + y * rowBytes
            for x in 0..<outW {
                let p = row + x * channels.stride
                out[packIndex(channel: 0, y: y, x: x, tileH: outH, tileW: outW, layout: layout)] = Float(p[channels.r]) / 255
                out[packIndex(channel: 1, y: y, x: x, tileH: outH, tileW: outW, layout: layout)] = Float(p[channels.g]) / 255
                out[packIndex(channel: 2, y: y, x: x, tileH: outH, tileW: outW, layout: layout)] = Float(p[channels.b]) / 255
            }
        }
        return out
    }

    // MARK: - Compute plan (iOS 17.4)

    /// The preferred compute device and estimated cost of every ML program operation, in program order.
    /// Operations Core ML reports no device for (constants) are left out.
    @available(iOS 17.4, *)
    static func plannedOps(compiledModel url: URL, configuration: MLModelConfiguration) async throws -> [PlannedOp] {
        let plan = try await MLComputePlan.load(contentsOf: url, configuration: configuration)
        guard case let .program(program) = plan.modelStructure else {
            throw RunnerError(message: "compute plan: the model is not an ML program")
        }
        guard let main = program.functions["main"] else {
            throw RunnerError(message: "compute plan: the program has no main function")
        }
        var ops: [PlannedOp] = []
        collect(main.block, plan: plan, into: &ops)
        return ops
    }

    @available(iOS 17.4, *)
    private static func collect(_ block: MLModelStructure.Program.Block, plan: MLComputePlan, into ops: inout [PlannedOp]) {
        for operation in block.operations {
            if let usage = plan.deviceUsage(for: operation) {
                let device: String
                switch usage.preferred {
                case .neuralEngine: device = "ane"
                case .gpu: device = "gpu"
                case .cpu: device = "cpu"
                @unknown default: device = "cpu"
                }
                let name = operation.outputs.first?.name ?? "\(operation.operatorName)_\(ops.count)"
                let cost = plan.estimatedCost(of: operation)?.weight ?? 0
                ops.append(PlannedOp(name: name, type: operation.operatorName, device: device, cost: cost))
            }
            for nested in operation.blocks {
                collect(nested, plan: plan, into: &ops)
            }
        }
    }
}

/// Row-major strides of a shape.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var step = 1
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[d] = step
        step *= shape[d]
    }
    return strides
}

/// Calls `body(logicalOffset, storageOffset, rowLength)` for every innermost row of a strided array,
/// in row-major order; the caller walks the row with the last stride.
func forEachRow(shape: [Int], strides: [Int], _ body: (Int, Int, Int) -> Void) {
    guard let length = shape.last, shape.count == strides.count else {
        body(0, 0, 1)
        return
    }
    let outer = shape.dropLast().reduce(1, *)
    var index = [Int](repeating: 0, count: shape.count - 1)
    for row in 0..<outer {
        var stored = 0
        for d in 0..<index.count {
            stored += index[d] * strides[d]
        }
        body(row * length, stored, length)
        var d = index.count - 1
        while d >= 0 {
            index[d] += 1
            if index[d] < shape[d] { break }
            index[d] = 0
            d -= 1
        }
    }
}

/// A pixel format code as its four characters ("BGRA"), for messages.
func fourCC(_ code: OSType) -> String {
    let bytes = [24, 16, 8, 0].map { UInt8((code >> UInt32($0)) & 0xFF) }
    if bytes.allSatisfy({ $0 >= 32 && $0 < 127 }) {
        return String(decoding: bytes, as: UTF8.self)
    }
    return String(code)
}
