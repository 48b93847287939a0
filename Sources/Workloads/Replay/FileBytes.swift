import Foundation

/// Whole-file reads for the replay's inputs (not a hot path).
enum FileBytes {
    struct ReadError: Error, CustomStringConvertible { var description: String }

    /// - Throws: ``ReadError`` naming the reason (missing file, a directory, permissions).
    static func read(_ path: String) throws(ReadError) -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ReadError(description: "no such file")
        }
        guard !isDirectory.boolValue else { throw ReadError(description: "is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else { throw ReadError(description: "permission denied or unreadable") }
        return [UInt8](data)
    }
}
