import Foundation
import Testing
@testable import Firmware

/// Replays every input of the committed fuzz corpus (Fuzz/Corpus/dmar and
/// Fuzz/Corpus/ivrs) through the parsers, the platform builder and the
/// renderers: each ends in an error or a report, never a crash.
@Suite("Fuzz corpus replay")
struct FuzzCorpusReplayTests {
    static let inputs: [String] = ["dmar", "ivrs"].flatMap { kind in
        CorpusFiles.files(in: CorpusFiles.fuzzCorpusDirectory.appendingPathComponent(kind)).map { kind + "/" + $0.lastPathComponent }
    }

    @Test func corpusIsPresent() {
        #expect(Self.inputs.count >= 10, "fuzz corpus not found at \(CorpusFiles.fuzzCorpusDirectory.path)")
    }

    @Test("replay", arguments: inputs)
    func replay(input: String) throws {
        let url = CorpusFiles.fuzzCorpusDirectory.appendingPathComponent(input)
        let bytes = try [UInt8](Data(contentsOf: url))
        _ = try? DMARTable.parse(bytes, options: .strict)
        _ = try? IVRSTable.parse(bytes, options: .strict)
        if let table = try? FirmwareTable.parse(bytes) {
            let report = FirmwareReport(tables: [FirmwareTableReport(source: input, table: table)])
            #expect(!report.renderText().isEmpty)
            _ = try JSONEncoder().encode(report)
        }
    }
}
