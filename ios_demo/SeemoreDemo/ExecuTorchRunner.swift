// The optional ExecuTorch path: compiled only when the ExecuTorch Swift package
// (https://github.com/pytorch/executorch.git, branch swiftpm-1.5.1; products executorch,
// backend_xnnpack, backend_coreml, kernels_optimized; linked with -all_load) is part of the build.
// Without the package the app builds and runs Core ML only, and lists .pte files as unavailable.
#if canImport(ExecuTorch)
import ExecuTorch
import Foundation

/// Runs a `.pte` program's `forward` per tile (ExecuTorch 1.5 Swift API: `Module`, `Tensor<Float>`).
/// `Module` is not thread-safe: like every runner it is only called from `TileEngine`.
final class ExecuTorchRunner: TileRunner {
    private let module: Module
    private let inputShape: [Int]
    private let outputShape: [Int]
    private let inputCount: Int
    private let outputCount: Int

    /// Loads the program and its `forward` method (the first-run cost of loading the delegates).
    init(fileURL: URL, contract: Contract) throws {
        let module = Module(filePath: fileURL.path)
        do {
            try module.load("forward")
        } catch {
            throw RunnerError(message: "ExecuTorch could not load forward of \(fileURL.lastPathComponent): \(ExecuTorchRunner.explain(error))")
        }
        self.module = module
        self.inputShape = contract.inputShape
        self.outputShape = contract.outputShape
        self.inputCount = contract.inputShape.reduce(1, *)
        self.outputCount = contract.outputShape.reduce(1, *)
    }

    func run(_ input: [Float]) throws -> [Float] {
        guard input.count == inputCount else {
            throw RunnerError(message: "tile has \(input.count) values, the program takes \(inputCount)")
        }
        let tensor = Tensor<Float>(input, shape: inputShape)
        let outputs: [Value]
        do {
            outputs = try module.forward([tensor])
        } catch {
            throw RunnerError(message: "ExecuTorch forward failed: \(ExecuTorchRunner.explain(error))")
        }
        guard let first = outputs.first, let result: Tensor<Float> = first.tensor() else {
            throw RunnerError(message: "forward returned no float tensor")
        }
        guard result.shape == outputShape else {
            throw RunnerError(message: "forward returned shape \(result.shape), contract says \(outputShape)")
        }
        let values = result.scalars()
        guard values.count == outputCount else {
            throw RunnerError(message: "forward returned \(values.count) values, contract says \(outputCount)")
        }
        return values
    }

    /// The runtime's error code with what it usually means for an app (runtime/core/error.h).
    /// `Swift.Error` spelled out: the ExecuTorch module exports its own `Error(code:)`.
    private static func explain(_ error: Swift.Error) -> String {
        let ns = error as NSError
        let hint: String
        switch ns.code {
        case 0x12: hint = "invalid argument: a tensor of another shape or type than the program's"
        case 0x14: hint = "operator missing: a kernel library is not linked (kernels_optimized, -all_load)"
        case 0x20: hint = "not found: the method or a backend is not registered (link with -all_load)"
        case 0x21: hint = "memory allocation failed"
        case 0x22: hint = "access failed: the .pte file cannot be read"
        case 0x23: hint = "invalid program: the file is not a .pte of a compatible ExecuTorch version"
        case 0x30: hint = "delegate incompatible: the backend refused the program (runtime and exporter versions differ?)"
        default: hint = ns.localizedDescription
        }
        return "error 0x\(String(ns.code, radix: 16)) (\(hint))"
    }
}
#endif
