import Foundation
import Tensors

/// All tensors of a Hugging Face model folder (or a single file), sharded or not, read as one.
///
/// Sharded checkpoints carry `model.safetensors.index.json` whose `weight_map` names the shard of
/// every tensor; a folder without an index is the union of its `*.safetensors` files.
public final class Checkpoint: @unchecked Sendable {
    public let location: String
    public let files: [SafetensorsFile]
    private let fileOfTensor: [String: Int]

    public init(path: String) throws {
        location = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SafetensorsError(file: path, "no such file or folder")
        }
        guard isDirectory.boolValue else {
            let file = try SafetensorsFile(path: path)
            files = [file]
            fileOfTensor = Dictionary(uniqueKeysWithValues: file.names.map { ($0, 0) })
            return
        }
        let folder = URL(fileURLWithPath: path)
        let indexPath = folder.appendingPathComponent("model.safetensors.index.json").path
        if FileManager.default.fileExists(atPath: indexPath) {
            let index: JSONValue
            do { index = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: indexPath))) } catch {
                throw SafetensorsError(file: indexPath, "cannot read index: \(error)")
            }
            guard let weightMap = index["weight_map"]?.objectValue else {
                throw SafetensorsError(file: indexPath, "missing 'weight_map' object")
            }
            var shardNames: [String] = []
            var shardIndex: [String: Int] = [:]
            var map: [String: Int] = [:]
            for (tensor, shard) in weightMap {
                guard let s = shard.stringValue else { throw SafetensorsError(file: indexPath, tensor: tensor, "shard name is not a string") }
                if shardIndex[s] == nil { shardIndex[s] = shardNames.count; shardNames.append(s) }
                map[tensor] = shardIndex[s]
            }
            files = try shardNames.map { try SafetensorsFile(path: folder.appendingPathComponent($0).path) }
            for (tensor, i) in map where !files[i].contains(tensor) {
                throw SafetensorsError(file: files[i].path, tensor: tensor, "listed in the index but missing from the shard")
            }
            fileOfTensor = map
        } else {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            let shards = names.filter { $0.hasSuffix(".safetensors") }.sorted()
            guard !shards.isEmpty else { throw SafetensorsError(file: path, "folder has no .safetensors files") }
            files = try shards.map { try SafetensorsFile(path: folder.appendingPathComponent($0).path) }
            var map: [String: Int] = [:]
            for (i, f) in files.enumerated() {
                for n in f.names {
                    if let j = map[n] { throw SafetensorsError(file: f.path, tensor: n, "also present in \(files[j].path)") }
                    map[n] = i
                }
            }
            fileOfTensor = map
        }
    }

    /// Every tensor name, sorted.
    public var names: [String] { fileOfTensor.keys.sorted() }

    public func contains(_ name: String) -> Bool { fileOfTensor[name] != nil }

    private func file(for name: String) throws -> SafetensorsFile {
        guard let i = fileOfTensor[name] else { throw SafetensorsError(file: location, tensor: name, "missing tensor") }
        return files[i]
    }

    public func info(_ name: String) throws -> SafetensorsTensorInfo { try file(for: name).info(name) }

    /// The stored bytes of a tensor, straight from its file's mapping (valid while the checkpoint lives).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer { try file(for: name).rawBytes(name) }

    /// The tensor as Float32, converted now.
    public func tensor(_ name: String) throws -> Tensor { try file(for: name).tensor(name) }

    /// The tensor as Float32, checking its shape.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let t = try tensor(name)
        guard t.shape == shape else {
            throw SafetensorsError(file: try file(for: name).path, tensor: name, "shape \(t.shape), expected \(shape)")
        }
        return t
    }

    /// Total number of elements over all tensors.
    public var parameterCount: Int {
        files.reduce(0) { $0 + $1.tensors.reduce(0) { $0 + $1.elementCount } }
    }
}
