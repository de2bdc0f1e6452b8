import CoreGraphics
import CoreML
import Foundation
import Observation
import os
import Photos
import PhotosUI
import SwiftUI

/// Milliseconds since it was made (monotonic).
struct Stopwatch {
    private let start: UInt64

    init() {
        start = DispatchTime.now().uptimeNanoseconds
    }

    var ms: Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
    }
}

/// An error as the one line the app shows.
func oneLine(_ error: Error) -> String {
    let text: String
    if error is CancellationError {
        text = "cancelled"
    } else if !(type(of: error) is NSError.Type), let described = error as? CustomStringConvertible {
        text = described.description
    } else if let localized = error as? LocalizedError, let message = localized.errorDescription {
        text = message
    } else {
        let ns = error as NSError
        text = "\(ns.localizedDescription) (\(ns.domain) \(ns.code))"
    }
    return text.split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// The median of a list of timings, 0 for none.
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/// "812 ms" or "3.41 s".
func formatMs(_ ms: Double) -> String {
    ms < 1000 ? String(format: "%.1f ms", ms) : String(format: "%.2f s", ms / 1000)
}

/// "412 MiB" / "1.6 GiB".
func formatBytes(_ bytes: Int) -> String {
    let mib = Double(bytes) / Double(1 << 20)
    return mib < 1024 ? String(format: "%.0f MiB", mib.rounded(.up)) : String(format: "%.1f GiB", mib / 1024)
}

/// The memory budget the app rules check a photo against.
enum MemoryBudget {
    /// Half of what iOS still lets this process allocate (`os_proc_available_memory`, measured after the model
    /// is loaded, so the model's own memory is already out of it); the other half is left for the on-screen
    /// copies of the two images, the PNG encoder and the system. The simulator reports 0: a quarter of RAM there.
    static func bytes() -> Int {
        let available = os_proc_available_memory()
        if available > 0 {
            return available / 2
        }
        return Int(ProcessInfo.processInfo.physicalMemory / 4)
    }
}

/// The one place a model runs: MLModel and ExecuTorch's Module (not thread-safe) are only ever touched
/// from this actor, one call at a time.
actor TileEngine {
    private var runner: TileRunner?

    func unload() {
        runner = nil
    }

    /// Loads a compiled Core ML model with the compute units asked for and runs one warm-up prediction
    /// on a zero tile, so that the first real tile does not pay for the device-side compilation.
    func loadCoreML(compiled url: URL, contract: Contract, units: MLComputeUnits) async throws -> (loadMs: Double, warmupMs: Double) {
        runner = nil
        let configuration = MLModelConfiguration()
        configuration.computeUnits = units
        let load = Stopwatch()
        let model = try await MLModel.load(contentsOf: url, configuration: configuration)
        let loadMs = load.ms
        let loaded = try CoreMLRunner(model: model, contract: contract)
        let warmup = Stopwatch()
        _ = try loaded.run([Float](repeating: 0, count: contract.inputShape.reduce(1, *)))
        let warmupMs = warmup.ms
        runner = loaded
        return (loadMs, warmupMs)
    }

    #if canImport(ExecuTorch)
    /// Loads a `.pte` program's forward method and runs one warm-up tile.
    func loadExecuTorch(file url: URL, contract: Contract) throws -> (loadMs: Double, warmupMs: Double) {
        runner = nil
        let load = Stopwatch()
        let loaded = try ExecuTorchRunner(fileURL: url, contract: contract)
        let loadMs = load.ms
        let warmup = Stopwatch()
        _ = try loaded.run([Float](repeating: 0, count: contract.inputShape.reduce(1, *)))
        let warmupMs = warmup.ms
        runner = loaded
        return (loadMs, warmupMs)
    }
    #endif

    func run(_ input: [Float]) throws -> [Float] {
        guard let runner else {
            throw RunnerError(message: "no model is loaded")
        }
        return try runner.run(input)
    }
}

/// What loading a model cost, and where Core ML plans to run its operations.
struct LoadReport {
    let entryID: String
    let kind: ModelEntry.Kind
    let contract: Contract
    let units: ComputeUnitsChoice
    let verifyMs: Double
    /// nil: the compiled model came from the cache (or there is nothing to compile).
    let compileMs: Double?
    let loadMs: Double
    let warmupMs: Double
    /// MLComputePlan's preferred device per operation (iOS 17.4+, Core ML only); nil when unavailable.
    let plannedOps: [PlannedOp]?
    let planNote: String?

    var opCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for op in plannedOps ?? [] {
            counts[op.device, default: 0] += 1
        }
        return counts
    }

    var engineLabel: String {
        kind == .coreML ? "Core ML · \(units.label)" : "ExecuTorch · \(contract.backend)"
    }
}

/// One finished upscale.
struct UpscaleResult {
    let image: CGImage
    let width: Int
    let height: Int
    let tileCount: Int
    let tileMs: [Double]
    let totalMs: Double
    let report: LoadReport

    var medianTileMs: Double { median(tileMs) }
}

/// The app's state and the job: pick a model and compute units, load (compile, load, warm up), pick a photo,
/// check it fits, tile it, run the tiles one by one, stitch rows as they finish, compare, save, share the profile.
@MainActor
@Observable
final class UpscaleModel {
    private(set) var models: [ModelEntry] = []
    private(set) var selectedModelID: String?
    private(set) var computeUnits: ComputeUnitsChoice = .all
    private(set) var report: LoadReport?
    private(set) var isLoading = false

    private(set) var photo: DecodedPhoto?
    private(set) var isDecoding = false
    private(set) var result: UpscaleResult?
    private(set) var isRunning = false
    private(set) var tilesDone = 0
    private(set) var tilesTotal = 0
    private(set) var lastTileMs: Double?

    private(set) var status = "Pick a model"
    private(set) var errorLine: String?
    private(set) var saveLine: String?
    private(set) var profileURL: URL?
    private(set) var isSaving = false

    private let store = ModelStore()
    private let engine = TileEngine()
    @ObservationIgnored private var job: Task<Void, Never>?

    var selectedEntry: ModelEntry? {
        models.first { $0.id == selectedModelID }
    }

    var isBusy: Bool { isLoading || isRunning || isDecoding }

    var progress: Double {
        tilesTotal == 0 ? 0 : Double(tilesDone) / Double(tilesTotal)
    }

    /// The report of the model that is loaded now, when it is the one selected with the units selected.
    var currentReport: LoadReport? {
        guard let report, report.entryID == selectedModelID,
              report.kind == .executorch || report.units == computeUnits else { return nil }
        return report
    }

    var canUpscale: Bool { currentReport != nil && photo != nil && !isBusy }

    /// The memory check of the photo against the selected model's tiling: whether it fits, and
    /// "1280x720 → 5120x2880 · 40 tiles of 320x180 · needs 412 MiB of 1.6 GiB" or the check's own message.
    var fitCheck: (fits: Bool, line: String)? {
        guard let photo, let contract = (currentReport?.contract ?? selectedEntry?.contract) else { return nil }
        let tiling = contract.tiling
        do {
            let budget = MemoryBudget.bytes()
            try checkFits(height: photo.height, width: photo.width, tiling: tiling, budgetBytes: budget)
            let need = try memoryBytes(height: photo.height, width: photo.width, tiling: tiling)
            let plan = try tilePlan(height: photo.height, width: photo.width, tiling: tiling)
            let line = "\(photo.width)x\(photo.height) → \(photo.width * tiling.scale)x\(photo.height * tiling.scale) · "
                + "\(plan.windows.count) tiles of \(tiling.tileW)x\(tiling.tileH) · needs \(formatBytes(need)) of \(formatBytes(budget))"
            return (true, line)
        } catch {
            return (false, oneLine(error))
        }
    }

    var fitLine: String? { fitCheck?.line }

    var fits: Bool { fitCheck?.fits ?? false }

    // MARK: - Models

    func refreshModels() {
        let store = self.store
        Task {
            let found = await Task.detached(priority: .userInitiated) { store.scan() }.value
            models = found
            if selectedModelID == nil || !found.contains(where: { $0.id == selectedModelID }) {
                selectedModelID = (found.first { $0.isUsable } ?? found.first)?.id
            }
            if found.isEmpty {
                status = "No models: copy a .mlpackage and its .mlpackage.json into SeemoreDemo/Models, then rebuild"
            } else if currentReport == nil {
                status = "Load the model to pay its first-run cost up front"
            }
        }
    }

    func select(modelID: String?) {
        guard modelID != selectedModelID else { return }
        selectedModelID = modelID
        modelSelectionChanged()
    }

    func select(units: ComputeUnitsChoice) {
        guard units != computeUnits else { return }
        computeUnits = units
        modelSelectionChanged()
    }

    private func modelSelectionChanged() {
        errorLine = nil
        if currentReport == nil {
            status = "Load the model to pay its first-run cost up front"
        }
    }

    func clearCompileCache() {
        do {
            try store.clearCache()
            status = "Compile cache cleared: the next load compiles again"
        } catch {
            errorLine = oneLine(error)
        }
    }

    func loadSelectedModel() {
        guard let entry = selectedEntry, !isBusy else { return }
        guard entry.isUsable else {
            errorLine = entry.problem ?? "this model cannot run"
            return
        }
        let units = computeUnits
        let store = self.store
        let engine = self.engine
        isLoading = true
        errorLine = nil
        report = nil
        status = entry.kind == .coreML ? "Checking, compiling and loading \(entry.name)…" : "Checking and loading \(entry.name)…"
        Task {
            do {
                report = try await UpscaleModel.prepare(entry: entry, units: units, store: store, engine: engine)
                status = "Ready: pick a photo"
            } catch {
                await engine.unload()
                errorLine = oneLine(error)
                status = "Loading failed"
            }
            isLoading = false
        }
    }

    /// Verify, compile (or take the cached compile), load, warm up and read the compute plan; off the main actor.
    private nonisolated static func prepare(entry: ModelEntry, units: ComputeUnitsChoice, store: ModelStore,
                                            engine: TileEngine) async throws -> LoadReport {
        guard let contract = entry.contract else {
            throw RunnerError(message: entry.problem ?? "no contract")
        }
        let verify = Stopwatch()
        try store.verify(entry)
        let verifyMs = verify.ms
        switch entry.kind {
        case .coreML:
            let compiled = try await store.compiledModel(for: entry)
            let times = try await engine.loadCoreML(compiled: compiled.url, contract: contract, units: units.units)
            var ops: [PlannedOp]?
            var note: String?
            if #available(iOS 17.4, *) {
                let configuration = MLModelConfiguration()
                configuration.computeUnits = units.units
                do {
                    ops = try await CoreMLRunner.plannedOps(compiledModel: compiled.url, configuration: configuration)
                } catch {
                    note = "compute plan unavailable: \(oneLine(error))"
                }
            } else {
                note = "per-op devices need iOS 17.4 (MLComputePlan)"
            }
            return LoadReport(entryID: entry.id, kind: .coreML, contract: contract, units: units, verifyMs: verifyMs,
                              compileMs: compiled.compileMs, loadMs: times.loadMs, warmupMs: times.warmupMs,
                              plannedOps: ops, planNote: note)
        case .executorch:
            #if canImport(ExecuTorch)
            let times = try await engine.loadExecuTorch(file: entry.url, contract: contract)
            return LoadReport(entryID: entry.id, kind: .executorch, contract: contract, units: units, verifyMs: verifyMs,
                              compileMs: nil, loadMs: times.loadMs, warmupMs: times.warmupMs,
                              plannedOps: nil, planNote: nil)
            #else
            throw RunnerError(message: "this build has no ExecuTorch package: add it (see ios_demo/README.md) to run .pte files")
            #endif
        }
    }

    // MARK: - Photo

    func pick(_ item: PhotosPickerItem?) {
        guard let item, !isRunning else { return }
        isDecoding = true
        errorLine = nil
        saveLine = nil
        status = "Decoding the photo…"
        Task {
            do {
                guard let data = try await item.loadTransferable(type: Data.self) else {
                    throw PhotoError(message: "the picker returned no image data")
                }
                let decoded = try await Task.detached(priority: .userInitiated) { try PhotoIO.decode(data) }.value
                photo = decoded
                result = nil
                profileURL = nil
                tilesDone = 0
                tilesTotal = 0
                status = currentReport == nil ? "Load the model, then upscale" : "Ready to upscale"
            } catch {
                errorLine = oneLine(error)
                status = "Could not read the photo"
            }
            isDecoding = false
        }
    }

    // MARK: - Upscale

    func upscale() {
        guard let report = currentReport, let photo, !isBusy else { return }
        isRunning = true
        errorLine = nil
        saveLine = nil
        profileURL = nil
        tilesDone = 0
        tilesTotal = 0
        lastTileMs = nil
        status = "Upscaling…"
        let engine = self.engine
        job = Task {
            do {
                let finished = try await UpscaleModel.runJob(photo: photo, report: report, engine: engine, model: self)
                result = finished
                status = "Done: \(finished.tileCount) tiles, median \(formatMs(finished.medianTileMs)) per tile, \(formatMs(finished.totalMs)) in all"
                if report.kind == .coreML {
                    writeProfile(for: finished)
                }
            } catch {
                errorLine = oneLine(error)
                status = error is CancellationError ? "Cancelled" : "Upscale failed"
            }
            isRunning = false
            job = nil
        }
    }

    func cancel() {
        job?.cancel()
    }

    fileprivate func tileFinished(index: Int, total: Int, ms: Double) {
        tilesDone = index + 1
        tilesTotal = total
        lastTileMs = ms
    }

    /// The whole photo, tile by tile, following the Logic's rules; runs off the main actor.
    private nonisolated static func runJob(photo: DecodedPhoto, report: LoadReport, engine: TileEngine,
                                           model: UpscaleModel) async throws -> UpscaleResult {
        let tiling = report.contract.tiling
        let total = Stopwatch()
        try checkFits(height: photo.height, width: photo.width, tiling: tiling, budgetBytes: MemoryBudget.bytes())
        let plan = try tilePlan(height: photo.height, width: photo.width, tiling: tiling)
        let stitcher = RowStitcher(plan: plan, tiling: tiling)
        let canvas = try RGBACanvas(width: photo.width * tiling.scale, height: photo.height * tiling.scale)
        var tileMs: [Double] = []
        tileMs.reserveCapacity(plan.windows.count)
        for (index, window) in plan.windows.enumerated() {
            try Task.checkCancellation()
            let input = packTile(rgba: photo.rgba, height: photo.height, width: photo.width, window: window, tiling: tiling)
            let tile = Stopwatch()
            let output = try await engine.run(input)
            let ms = tile.ms
            tileMs.append(ms)
            let finished = stitcher.add(output)
            try canvas.write(firstRow: finished.firstRow, rgbRows: finished.rows)
            await model.tileFinished(index: index, total: plan.windows.count, ms: ms)
        }
        let image = try canvas.makeImage()
        return UpscaleResult(image: image, width: canvas.width, height: canvas.height, tileCount: plan.windows.count,
                             tileMs: tileMs, totalMs: total.ms, report: report)
    }

    // MARK: - Save and share

    func saveToPhotos() {
        guard let result, !isSaving else { return }
        isSaving = true
        saveLine = "Saving…"
        let image = result.image
        Task {
            do {
                let access = await PHPhotoLibrary.requestAuthorization(for: .addOnly)
                guard access == .authorized || access == .limited else {
                    throw PhotoError(message: "no permission to add to Photos (Settings › Privacy › Photos)")
                }
                let png = try await Task.detached(priority: .userInitiated) { try PhotoIO.pngData(image) }.value
                try await PHPhotoLibrary.shared().performChanges {
                    let request = PHAssetCreationRequest.forAsset()
                    request.addResource(with: .photo, data: png, options: nil)
                }
                saveLine = "Saved to Photos (\(result.width)x\(result.height) PNG)"
            } catch {
                saveLine = "Not saved: \(oneLine(error))"
            }
            isSaving = false
        }
    }

    private func writeProfile(for finished: UpscaleResult) {
        do {
            profileURL = try ProfileExport.write(result: finished, device: ProfileExport.deviceDescription())
        } catch {
            errorLine = "profile not written: \(oneLine(error))"
        }
    }
}
