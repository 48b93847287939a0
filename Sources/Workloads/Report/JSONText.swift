import Foundation

/// JSON output for the command line: camelCase keys as the Codable types
/// name them, sorted so that output is stable and diffable.
public enum JSONText {
    public static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
