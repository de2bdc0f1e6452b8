import CoreML
import CryptoKit
import Foundation

/// One artifact found in the bundle's `Models` folder, with its contract.
struct ModelEntry: Identifiable {
    enum Kind: String {
        case coreML = "Core ML"
        case executorch = "ExecuTorch"
    }

    /// The artifact's file name (`seemore_t_x4_coreml_fp16_180x320.mlpackage`); also what the profile calls the model.
    let id: String
    let url: URL
    let kind: Kind
    let contract: Contract?
    /// Why the app cannot run it (one line), or nil when it can.
    let problem: String?

    var name: String { id }
    var isUsable: Bool { problem == nil && contract != nil }

    /// "x4 · fp16 · 180x320 tiles · tensor I/O" for the picker's footer.
    var summary: String {
        guard let contract else { return kind.rawValue }
        let parts = ["\(kind.rawValue) \(contract.backend)", "x\(contract.scale)", contract.precision,
                     "\(contract.tileH)x\(contract.tileW) tiles", "\(contract.io) I/O", contract.layout.rawValue]
        return parts.joined(separator: " · ")
    }
}

/// Where a compiled model came from, and what it cost.
struct CompiledModel {
    let url: URL
    /// nil when the compiled model came from the cache.
    let compileMs: Double?
}

/// Finds the artifacts the user dropped into `SeemoreDemo/Models` (a folder reference, copied into the
/// app bundle as it is), reads each one's contract with the Logic's `Contract`, checks the artifact
/// against the SHA-256 its contract records, and keeps compiled Core ML models in Application Support,
/// keyed by that SHA-256: a package is compiled once per content, never reused because a name matches.
struct ModelStore {
    let folder: URL?
    let cacheFolder: URL

    static let coreMLExtension = "mlpackage"
    static let executorchExtension = "pte"

    init(bundle: Bundle = .main) {
        folder = bundle.url(forResource: "Models", withExtension: nil)
        let support = (try? FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                    appropriateFor: nil, create: true))
            ?? FileManager.default.temporaryDirectory
        cacheFolder = support.appendingPathComponent("CompiledModels", isDirectory: true)
    }

    /// Every `.mlpackage` and `.pte` in the Models folder, sorted by name, each with its contract or the reason it is unusable.
    func scan() -> [ModelEntry] {
        guard let folder else { return [] }
        let items = (try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? []
        return items
            .filter { [Self.coreMLExtension, Self.executorchExtension].contains($0.pathExtension) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
            .map(entry(for:))
    }

    private func entry(for url: URL) -> ModelEntry {
        let name = url.lastPathComponent
        let kind: ModelEntry.Kind = url.pathExtension == Self.coreMLExtension ? .coreML : .executorch
        let contractURL = url.appendingPathExtension("json")
        guard let data = try? Data(contentsOf: contractURL) else {
            return ModelEntry(id: name, url: url, kind: kind, contract: nil,
                              problem: "no contract \(name).json beside it: copy the artifact and its .json together")
        }
        let contract: Contract
        do {
            contract = try Contract(data: data)
        } catch {
            return ModelEntry(id: name, url: url, kind: kind, contract: nil, problem: "\(name).json: \(oneLine(error))")
        }
        return ModelEntry(id: name, url: url, kind: kind, contract: contract, problem: problem(kind: kind, contract: contract))
    }

    private func problem(kind: ModelEntry.Kind, contract: Contract) -> String? {
        let sha = contract.artifactSha256
        if sha.count != 64 || !sha.allSatisfy({ $0.isHexDigit }) {
            return "the contract records no artifact.sha256: re-export it with seemore-mobile"
        }
        switch kind {
        case .coreML:
            if contract.runtime != "coreml" {
                return "the contract is for runtime '\(contract.runtime)', not coreml"
            }
            if contract.io != "tensor" && contract.io != "image" {
                return "spec.io '\(contract.io)' is neither tensor nor image"
            }
        case .executorch:
            if contract.runtime != "executorch" {
                return "the contract is for runtime '\(contract.runtime)', not executorch"
            }
            if contract.io != "tensor" {
                return "an ExecuTorch program takes tensors, the contract says '\(contract.io)'"
            }
            #if canImport(ExecuTorch)
            if !["xnnpack", "coreml"].contains(contract.backend) {
                return "backend '\(contract.backend)' is not linked into this app (it links xnnpack and coreml)"
            }
            #else
            return "this build has no ExecuTorch package: add it (see ios_demo/README.md) to run .pte files"
            #endif
        }
        return nil
    }

    // MARK: - Integrity

    /// Throws when the artifact's bytes are not the ones its contract was written for.
    func verify(_ entry: ModelEntry) throws {
        guard let contract = entry.contract else {
            throw RunnerError(message: entry.problem ?? "no contract")
        }
        let actual = try ArtifactHash.sha256(of: entry.url)
        guard actual == contract.artifactSha256.lowercased() else {
            throw RunnerError(message: "\(entry.name) is not the artifact its contract describes (sha256 \(actual.prefix(12))…, contract \(contract.artifactSha256.prefix(12))…): copy the pair from one export")
        }
    }

    // MARK: - Compile cache

    /// The compiled `.mlmodelc` of a verified package: from the cache when one exists for its SHA-256,
    /// else compiled now with `MLModel.compileModel(at:)` and moved into the cache.
    func compiledModel(for entry: ModelEntry) async throws -> CompiledModel {
        guard let contract = entry.contract else {
            throw RunnerError(message: entry.problem ?? "no contract")
        }
        let fileManager = FileManager.default
        let cached = cacheFolder.appendingPathComponent("\(contract.artifactSha256.lowercased()).mlmodelc", isDirectory: true)
        var isDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: cached.path, isDirectory: &isDirectory), isDirectory.boolValue {
            return CompiledModel(url: cached, compileMs: nil)
        }
        let start = Stopwatch()
        let compiled = try await MLModel.compileModel(at: entry.url)
        let compileMs = start.ms
        try fileManager.createDirectory(at: cacheFolder, withIntermediateDirectories: true)
        var folder = cacheFolder
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try? folder.setResourceValues(values)
        // Staged next to the destination, then renamed: a half-copied model is never taken for a cached one.
        let staging = cacheFolder.appendingPathComponent("staging-\(UUID().uuidString).mlmodelc", isDirectory: true)
        try fileManager.moveItem(at: compiled, to: staging)
        if fileManager.fileExists(atPath: cached.path) {
            try fileManager.removeItem(at: cached)
        }
        try fileManager.moveItem(at: staging, to: cached)
        return CompiledModel(url: cached, compileMs: compileMs)
    }

    /// Removes every compiled model; the next load compiles again.
    func clearCache() throws {
        if FileManager.default.fileExists(atPath: cacheFolder.path) {
            try FileManager.default.removeItem(at: cacheFolder)
        }
    }
}

/// The SHA-256 an exporter records in `artifact.sha256`: of a file's bytes, or of a directory tree
/// (seemore's `tree_sha256`: for every entry in code-point order of its relative POSIX path,
/// `F path NUL sha256(file)` for a file, `D path NUL` for a directory, `L path NUL target NUL` for a link).
enum ArtifactHash {
    static func sha256(of url: URL) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw RunnerError(message: "\(url.lastPathComponent) does not exist")
        }
        if isDirectory.boolValue {
            return try hex(treeDigest(url))
        }
        return try hex(fileDigest(url))
    }

    static func fileDigest(_ url: URL) throws -> SHA256.Digest {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize()
    }

    static func treeDigest(_ root: URL) throws -> SHA256.Digest {
        let fileManager = FileManager.default
        let paths = try fileManager.subpathsOfDirectory(atPath: root.path)
            .sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
        var hasher = SHA256()
        for relative in paths {
            let full = root.appendingPathComponent(relative)
            let attributes = try fileManager.attributesOfItem(atPath: full.path)
            let type = attributes[.type] as? FileAttributeType
            let name = Data(relative.utf8)
            if type == .typeSymbolicLink {
                let target = try fileManager.destinationOfSymbolicLink(atPath: full.path)
                hasher.update(data: Data("L".utf8) + name + Data([0]) + Data(target.utf8) + Data([0]))
            } else if type == .typeRegular {
                let digest = try fileDigest(full)
                hasher.update(data: Data("F".utf8) + name + Data([0]) + Data(digest))
            } else if type == .typeDirectory {
                hasher.update(data: Data("D".utf8) + name + Data([0]))
            }
        }
        return hasher.finalize()
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
