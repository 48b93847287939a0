import Foundation

/// Locates the shared ACPI corpus and the fuzz corpus relative to this file.
///
/// CI clones the repository with `shared/` beside it, so the corpus is
/// `<repo>/../shared/acpi`. Symlinks are resolved first so that a private
/// package that links this test directory finds the same files.
enum CorpusFiles {
    static let testDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().resolvingSymlinksInPath()
    static let repositoryRoot = testDirectory.deletingLastPathComponent().deletingLastPathComponent()
    static let acpiDirectory = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/acpi")
    static let fuzzCorpusDirectory = repositoryRoot.appendingPathComponent("Fuzz/Corpus")

    /// Paths of the `.bin` tables in `shared/acpi/<kind>`, sorted.
    static func tables(_ kind: String) -> [URL] {
        files(in: acpiDirectory.appendingPathComponent(kind)).filter { $0.pathExtension == "bin" }
    }

    /// Names like "dmar/hp-compaq-dc7800-sff" for parameterised tests.
    static func tableNames(_ kind: String) -> [String] {
        tables(kind).map { kind + "/" + $0.deletingPathExtension().lastPathComponent }
    }

    static func bytes(_ name: String, ext: String = "bin") -> [UInt8] {
        let url = acpiDirectory.appendingPathComponent(name + "." + ext)
        return (try? [UInt8](Data(contentsOf: url))) ?? []
    }

    static func text(_ name: String) -> String {
        let url = acpiDirectory.appendingPathComponent(name + ".dsl")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }

    static func files(in directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().map { directory.appendingPathComponent($0) }
    }
}
