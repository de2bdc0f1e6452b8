import Foundation
import UIKit

/// The measured Core ML profile that `python mobile/profile.py --device <iphone> --coreml-report <file>` reads
/// (`seemore.profiling.formats.parse_coreml_profile`): format `seemore-mobile/coreml-profile/1`, device,
/// model (the package's file name, which the profiler matches against its artifacts), compute units,
/// load time, every tile's prediction time and, from MLComputePlan (iOS 17.4), each operation's preferred
/// device (`ane`, `gpu`, `cpu`) and estimated cost. The other fields are context the parser ignores.
struct CoreMLProfileDocument: Encodable {
    let format = ProfileExport.format
    let device: String
    let model: String
    let computeUnits: String
    let loadMs: Double
    let predictionsMs: [Double]
    let ops: [PlannedOp]
    let app: String
    let compileMs: Double?
    let compileCached: Bool
    let warmupMs: Double
    let verifyMs: Double
    let image: String
    let tiles: Int
    let tile: [Int]
    let totalMs: Double
    let medianMs: Double
    let opsSource: String
}

enum ProfileExport {
    static let format = "seemore-mobile/coreml-profile/1"

    /// "iPhone16,1 (iPhone, iOS 17.5)": the hardware model identifier says which phone it is.
    @MainActor
    static func deviceDescription() -> String {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: info.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let identifier = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"].map { "\($0) simulator" } ?? machine
        let device = UIDevice.current
        return "\(identifier) (\(device.model), \(device.systemName) \(device.systemVersion))"
    }

    static func document(result: UpscaleResult, device: String) -> CoreMLProfileDocument {
        let report = result.report
        let contract = report.contract
        let note: String
        if let ops = report.plannedOps {
            note = "MLComputePlan preferred device per operation, \(ops.count) operations"
        } else {
            note = report.planNote ?? "not reported"
        }
        return CoreMLProfileDocument(
            device: device,
            model: report.entryID,
            computeUnits: report.units.rawValue,
            loadMs: rounded(report.loadMs),
            predictionsMs: result.tileMs.map { max(rounded($0), 0.001) },
            ops: report.plannedOps ?? [],
            app: "SeemoreDemo (seemore-mobile iOS demo)",
            compileMs: report.compileMs.map(rounded),
            compileCached: report.compileMs == nil,
            warmupMs: rounded(report.warmupMs),
            verifyMs: rounded(report.verifyMs),
            image: "\(result.width / contract.scale)x\(result.height / contract.scale) -> \(result.width)x\(result.height)",
            tiles: result.tileCount,
            tile: [contract.tileH, contract.tileW],
            totalMs: rounded(result.totalMs),
            medianMs: rounded(result.medianTileMs),
            opsSource: note)
    }

    /// Writes the profile JSON into the temporary folder and returns its URL (what the ShareLink shares).
    static func write(result: UpscaleResult, device: String) throws -> URL {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(document(result: result, device: device))
        let stem = (result.report.entryID as NSString).deletingPathExtension
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(stem)_\(result.report.units.rawValue)_coreml_profile.json")
        try data.write(to: url, options: .atomic)
        return url
    }

    private static func rounded(_ ms: Double) -> Double {
        (ms * 1000).rounded() / 1000
    }
}
