import Testing
@testable import Firmware

/// Mutation loops over the corpus: every truncation, every corrupted length
/// field and many random byte changes end in an error or a valid table,
/// never a trap; whatever parses also builds a platform and a report.
@Suite("Mutations of the corpus")
struct MutationTests {
    static let names = CorpusFiles.tableNames("dmar") + CorpusFiles.tableNames("ivrs")

    /// Parses; on success also exercises the platform builder and renderers.
    @discardableResult
    static func exercise(_ bytes: [UInt8]) -> FirmwareTableError? {
        do {
            let table = try FirmwareTable.parse(bytes)
            let report = FirmwareTableReport(source: "mutant", table: table)
            _ = report.renderText()
            return nil
        } catch {
            return error
        }
    }

    @Test("every truncation is an error", arguments: names)
    func truncation(name: String) {
        let bytes = CorpusFiles.bytes(name)
        for length in 0..<bytes.count {
            #expect(Self.exercise(Array(bytes.prefix(length))) != nil, "\(name) cut at \(length) parsed")
        }
    }

    /// The Length field patched to each shorter size: valid exactly when the
    /// cut falls on a structure boundary, otherwise an error naming an offset
    /// inside the table.
    @Test("every truncation with a matching Length field", arguments: names)
    func truncationWithPatchedLength(name: String) throws {
        let bytes = CorpusFiles.bytes(name)
        let table = try FirmwareTable.parse(bytes)
        let boundaries = Set(Self.topLevelOffsets(table) + [bytes.count])
        for length in 36..<bytes.count {
            var cut = Array(bytes.prefix(length))
            TableBuilder.patch(&cut, at: 4, UInt64(length), width: 4)
            let error = Self.exercise(cut)
            if length >= 48 && boundaries.contains(length) {
                #expect(error == nil, "\(name) cut at boundary \(length): \(String(describing: error))")
            } else {
                #expect(error != nil, "\(name) cut at \(length) inside a structure parsed")
                if let error { #expect(error.offset < length) }
            }
        }
    }

    @Test("every length field corrupted", arguments: names)
    func lengthFields(name: String) throws {
        let bytes = CorpusFiles.bytes(name)
        let table = try FirmwareTable.parse(bytes)
        for (offset, width, mustBeNonZero) in Self.lengthFields(table) {
            let original = Int(bytes[offset]) | (width == 2 ? Int(bytes[offset + 1]) << 8 : 0)
            for value in [0, 1, 3, 5, original - 1, original + 1, original + 2, 0xFF, 0xFFFF] where value >= 0 && value != original {
                var mutant = bytes
                TableBuilder.patch(&mutant, at: offset, UInt64(value & (width == 2 ? 0xFFFF : 0xFF)), width: width)
                Self.exercise(mutant)
            }
            var zero = bytes
            TableBuilder.patch(&zero, at: offset, 0, width: width)
            if !mustBeNonZero { continue }
            #expect(Self.exercise(zero) != nil, "\(name): zero length at 0x\(String(offset, radix: 16)) parsed")
        }
    }

    @Test("random byte mutations", arguments: names)
    func randomMutations(name: String) {
        let bytes = CorpusFiles.bytes(name)
        var rng = SplitMix(seed: UInt64(bytes.count) &* 0x9E37_79B9)
        for round in 0..<300 {
            var mutant = bytes
            for _ in 0..<(1 + round % 4) {
                let index = 36 + Int(rng.next() % UInt64(bytes.count - 36))
                mutant[index] = UInt8(truncatingIfNeeded: rng.next())
            }
            TableBuilder.fixChecksum(&mutant)
            Self.exercise(mutant)
        }
    }

    /// Offsets where a top-level structure starts.
    static func topLevelOffsets(_ table: FirmwareTable) -> [Int] {
        switch table {
        case .dmar(let t):
            return t.hardwareUnits.map(\.offset) + t.reservedMemoryRegions.map(\.offset) + t.rootPortATS.map(\.offset)
                + t.hardwareAffinities.map(\.offset) + t.namespaceDevices.map(\.offset) + t.socIntegratedATC.map(\.offset)
                + t.socIntegratedDeviceProperties.map(\.offset) + t.unknownStructures.map(\.offset)
        case .ivrs(let t):
            return t.hardwareDefinitions.map(\.offset) + t.memoryDefinitions.map(\.offset) + t.unknownSubtables.map(\.offset)
        }
    }

    /// (offset, width, zero is always invalid) of every length field in the
    /// table. A zero UID length can be valid: the entry just gets shorter.
    static func lengthFields(_ table: FirmwareTable) -> [(Int, Int, Bool)] {
        var out: [(Int, Int, Bool)] = []
        switch table {
        case .dmar(let t):
            let scopes = t.hardwareUnits.flatMap(\.scopes) + t.reservedMemoryRegions.flatMap(\.scopes)
                + t.rootPortATS.flatMap(\.scopes) + t.socIntegratedATC.flatMap(\.scopes)
                + t.socIntegratedDeviceProperties.flatMap(\.scopes)
            out += topLevelOffsets(table).map { ($0 + 2, 2, true) }
            out += scopes.map { ($0.offset + 1, 1, true) }
        case .ivrs(let t):
            out += topLevelOffsets(table).map { ($0 + 2, 2, true) }
            for block in t.hardwareDefinitions {
                out += block.entries.filter { $0.kind == .acpiHID }.map { ($0.offset + 21, 1, false) }
            }
        }
        return out
    }
}

/// Small deterministic PRNG so mutation runs are reproducible.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
