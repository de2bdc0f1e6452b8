import Foundation

// The artifact contract (the `.json` next to every exported artifact) as the app reads it.
// Every key is read through `ContractJSON` with a dotted path written as one string literal
// (`json.string("spec.layout")`, `json.intList("inputs.0.shape")`): the tests extract these
// literals and check them against seemore.apps.rules.CONTRACT_KEYS, the keys every exporter writes.

/// Why a contract cannot be used; the message is one line.
struct ContractError: Error, CustomStringConvertible {
    let message: String
    var description: String { return message }
}

/// Values at dotted paths of a parsed JSON document; a number in a path is a list index
/// (`inputs.0.name` is the name of the first input).
struct ContractJSON {
    let root: Any

    /// The value at `path`, or a ContractError naming the path when it is not there.
    func value(_ path: String) throws -> Any {
        var node: Any = root
        for part in path.split(separator: ".") {
            let key = String(part)
            if let object = node as? [String: Any], let next = object[key] {
                node = next
            } else if let list = node as? [Any], let index = Int(key), index >= 0, index < list.count {
                node = list[index]
            } else {
                throw ContractError(message: "contract has no \(path)")
            }
        }
        return node
    }

    /// The string at `path`.
    func string(_ path: String) throws -> String {
        let node = try value(path)
        guard let text = node as? String else {
            throw ContractError(message: "contract \(path) is not a string")
        }
        return text
    }

    /// The integer at `path` (a JSON number without fraction; not a boolean).
    func int(_ path: String) throws -> Int {
        let node = try value(path)
        guard let number = ContractJSON.integer(node) else {
            throw ContractError(message: "contract \(path) is not an integer")
        }
        return number
    }

    /// The list of integers at `path`.
    func intList(_ path: String) throws -> [Int] {
        let node = try value(path)
        guard let items = node as? [Any] else {
            throw ContractError(message: "contract \(path) is not a list")
        }
        var numbers: [Int] = []
        for item in items {
            guard let number = ContractJSON.integer(item) else {
                throw ContractError(message: "contract \(path) holds something other than integers")
            }
            numbers.append(number)
        }
        return numbers
    }

    /// A JSON integer as Int: JSONSerialization gives NSNumber, which booleans are too.
    private static func integer(_ node: Any) -> Int? {
        guard let number = node as? NSNumber, CFGetTypeID(number) != CFBooleanGetTypeID() else {
            return nil
        }
        return Int(exactly: number.doubleValue)
    }
}

/// What the app needs from an artifact's contract: which runtime and backend, tensor names and
/// shapes, the layout, and the tiling rule (tile, overlap, scale).
struct Contract {
    static let expectedFormat = "seemore-mobile/contract"
    static let expectedVersion = 3
    static let expectedKind = "runtime"

    let format: String
    let model: String
    let backend: String
    let runtime: String
    let precision: String
    let layout: Layout
    let io: String
    let ioDtype: String
    let scale: Int
    let tileH: Int
    let tileW: Int
    let overlap: Int
    let inputName: String
    let inputShape: [Int]
    let outputName: String
    let outputShape: [Int]
    let artifactPath: String
    let artifactSha256: String

    /// The tiling the app's tile plan, packing and stitching follow.
    var tiling: AppTiling {
        return AppTiling(tileH: tileH, tileW: tileW, overlap: overlap, scale: scale, layout: layout)
    }

    /// Parses and checks a contract; throws ContractError with a one-line message.
    init(data: Data) throws {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw ContractError(message: "the contract is not JSON (\(error.localizedDescription))")
        }
        guard root is [String: Any] else {
            throw ContractError(message: "the contract is not a JSON object")
        }
        let json = ContractJSON(root: root)

        let format = try json.string("format")
        guard format == Contract.expectedFormat else {
            throw ContractError(message: "not a seemore-mobile contract (format '\(format)')")
        }
        let version = try json.int("version")
        guard version == Contract.expectedVersion else {
            throw ContractError(message: "contract version \(version); this app reads version \(Contract.expectedVersion): export the artifact again")
        }
        let kind = try json.string("kind")
        guard kind == Contract.expectedKind else {
            throw ContractError(message: "contract kind '\(kind)' is not a runtime artifact")
        }
        let artifactPath = try json.string("artifact.path")
        let artifactSha256 = try json.string("artifact.sha256")
        let backend = try json.string("spec.backend")
        let runtime = try json.string("spec.runtime")
        let precision = try json.string("spec.precision")
        let height = try json.int("spec.height")
        let width = try json.int("spec.width")
        let scale = try json.int("spec.scale")
        let layoutName = try json.string("spec.layout")
        let io = try json.string("spec.io")
        let ioDtype = try json.string("spec.io_dtype")
        let inputName = try json.string("inputs.0.name")
        let inputShape = try json.intList("inputs.0.shape")
        let outputName = try json.string("outputs.0.name")
        let outputShape = try json.intList("outputs.0.shape")
        let tile = try json.intList("tiling.tile")
        let overlap = try json.int("tiling.overlap")
        let model = try json.string("source.model")

        guard let layout = Layout(rawValue: layoutName) else {
            throw ContractError(message: "unknown layout '\(layoutName)' (expected NCHW or NHWC)")
        }
        guard tile.count == 2, tile[0] == height, tile[1] == width else {
            throw ContractError(message: "tiling.tile \(tile) is not the spec's \(height)x\(width)")
        }
        guard height >= 1, width >= 1, scale >= 1, overlap >= 0 else {
            throw ContractError(message: "bad tiling: tile \(height)x\(width), overlap \(overlap), scale \(scale)")
        }
        let expectedOverlap = fixedTileOverlap(tileH: height, tileW: width)
        guard overlap == expectedOverlap else {
            throw ContractError(message: "overlap \(overlap) is not the fixed-tile overlap of \(height)x\(width) (\(expectedOverlap))")
        }

        self.format = format
        self.model = model
        self.backend = backend
        self.runtime = runtime
        self.precision = precision
        self.layout = layout
        self.io = io
        self.ioDtype = ioDtype
        self.scale = scale
        self.tileH = height
        self.tileW = width
        self.overlap = overlap
        self.inputName = inputName
        self.inputShape = inputShape
        self.outputName = outputName
        self.outputShape = outputShape
        self.artifactPath = artifactPath
        self.artifactSha256 = artifactSha256
    }
}
