import Testing
@testable import Firmware

/// Every table of the shared corpus decodes, and every field the parser
/// decodes equals what `iasl -d` printed for it (the .dsl beside the .bin),
/// and every field iasl printed is decoded. Where iasl is lossy (it stops at
/// subtable 0x51, cannot decode a short integer UID, omits an absent UID,
/// mangles binary header text) the field is checked against the raw bytes.
@Suite("Corpus against iasl disassembly")
struct CorpusDisassemblyTests {
    @Test("corpus is present", arguments: ["dmar", "ivrs"])
    func corpusPresent(kind: String) {
        #expect(!CorpusFiles.tables(kind).isEmpty, "corpus not found at \(CorpusFiles.acpiDirectory.path)")
    }

    @Test("DMAR fields match iasl", arguments: CorpusFiles.tableNames("dmar"))
    func dmar(name: String) throws {
        let bytes = CorpusFiles.bytes(name)
        let table = try DMARTable.parse(bytes, options: .strict)
        #expect(table.checksumValid)
        compare(IASLFieldEmitter.fields(for: table), with: IASLDisassembly(CorpusFiles.text(name)), bytes: bytes, name: name)
        for unknown in table.unknownStructures {
            #expect(Array(bytes[unknown.offset..<(unknown.offset + unknown.length)]) == unknown.bytes)
        }
        #expect(table.hostAddressWidth == Int(bytes[36]) + 1)
    }

    @Test("IVRS fields match iasl", arguments: CorpusFiles.tableNames("ivrs"))
    func ivrs(name: String) throws {
        let bytes = CorpusFiles.bytes(name)
        let table = try IVRSTable.parse(bytes, options: .strict)
        #expect(table.checksumValid)
        let dsl = IASLDisassembly(CorpusFiles.text(name))
        compare(IASLFieldEmitter.fields(for: table), with: dsl, bytes: bytes, name: name)
        // Subtables iasl did not reach are still skipped exactly by their length.
        for unknown in table.unknownSubtables {
            #expect(dsl.stoppedEarly, "\(name): unknown subtable although iasl decoded everything")
            #expect(Array(bytes[unknown.offset..<(unknown.offset + unknown.length)]) == unknown.bytes)
            #expect(Int(bytes[unknown.offset + 2]) | Int(bytes[unknown.offset + 3]) << 8 == unknown.length)
        }
    }

    func compare(_ emitted: [EmittedField], with dsl: IASLDisassembly, bytes: [UInt8], name: String) {
        #expect(!dsl.fields.isEmpty, "\(name): no fields in the .dsl")
        let cut = dsl.stoppedEarly ? dsl.decodedEnd : Int.max
        var byOffset: [Int: [IASLDisassembly.Field]] = [:]
        for field in dsl.fields { byOffset[field.offset, default: []].append(field) }
        var matched = Set<String>()
        for field in emitted {
            checkRaw(field, bytes: bytes, name: name)
            if field.offset >= cut { continue }
            guard let theirs = byOffset[field.offset]?.first(where: { $0.name == field.name }) else {
                #expect(field.iaslMayOmit, "\(name): iasl has no '\(field.name)' at 0x\(hexString(field.offset))")
                continue
            }
            matched.insert("\(field.offset)/\(field.name)")
            if field.rawOnly { continue }
            #expect(theirs.value == field.value,
                    "\(name): '\(field.name)' at 0x\(hexString(field.offset)): iasl \(theirs.value), parsed \(field.value)")
        }
        #expect(matched.count >= 20, "\(name): only \(matched.count) fields compared")
        for field in dsl.fields where field.name != "Reserved" && !matched.contains("\(field.offset)/\(field.name)") {
            Issue.record("\(name): iasl field '\(field.name)' at 0x\(hexString(field.offset)) = \(field.value) not decoded")
        }
    }

    func checkRaw(_ field: EmittedField, bytes: [UInt8], name: String) {
        switch field.raw {
        case .integer(let value):
            var stored: UInt64 = 0
            for index in (0..<field.width).reversed() where field.offset + index < bytes.count {
                stored = stored << 8 | UInt64(bytes[field.offset + index])
            }
            #expect(stored == value, "\(name): '\(field.name)' at 0x\(hexString(field.offset)) differs from the raw bytes")
        case .bytes(let expected):
            let end = min(bytes.count, field.offset + expected.count)
            #expect(Array(bytes[field.offset..<end]) == expected, "\(name): '\(field.name)' raw bytes differ")
        }
    }

    func hexString(_ value: Int) -> String { String(value, radix: 16) }
}
