import Testing
@testable import Firmware

/// One test per way a table can be wrong: each gives the expected
/// `FirmwareTableError` naming the structure and byte offset.
@Suite("Malformed tables")
struct MalformedTableTests {
    typealias B = TableBuilder

    static let goodDMAR = B.dmar([
        B.drhd(base: 0xFED9_0000, [B.scope(1, bus: 0, [(2, 0)])]),
        B.drhd(flags: 1, base: 0xFED9_1000, [B.scope(3, id: 2, bus: 0xF0, [(0x1F, 0)])]),
        B.rmrr(base: 0x1000, limit: 0x1FFF, [B.scope(1, bus: 0, [(0x14, 0)])]),
    ])

    func parseError(_ bytes: [UInt8], strict: Bool = false) -> FirmwareTableError? {
        do {
            _ = try FirmwareTable.parse(bytes, options: strict ? .strict : .lenient)
            return nil
        } catch {
            return error
        }
    }

    @Test func validSyntheticTablesParse() throws {
        let dmar = try DMARTable.parse(Self.goodDMAR, options: .strict)
        #expect(dmar.hardwareUnits.count == 2 && dmar.reservedMemoryRegions.count == 1)
        #expect(dmar.hostAddressWidth == 39)
    }

    @Test func emptyAndShortInput() {
        #expect(parseError([]) == .unknownSignature(found: []))
        #expect(parseError(Array("DMAR".utf8)) == .tooShort(available: 4, needed: 48))
        #expect(parseError(Array(Self.goodDMAR.prefix(47))) == .tooShort(available: 47, needed: 48))
        #expect(throws: FirmwareTableError.tooShort(available: 0, needed: 48)) { try DMARTable.parse([]) }
    }

    @Test func badSignature() {
        var bytes = Self.goodDMAR
        bytes[0] = UInt8(ascii: "X")
        #expect(parseError(bytes) == .unknownSignature(found: Array("XMAR".utf8)))
        #expect(throws: FirmwareTableError.signatureMismatch(expected: "IVRS", found: Array("DMAR".utf8))) {
            try IVRSTable.parse(Self.goodDMAR)
        }
    }

    @Test func tableLengthMismatch() {
        var long = Self.goodDMAR
        long.append(0)
        #expect(parseError(long) == .tableLengthMismatch(declared: UInt32(Self.goodDMAR.count), available: long.count))
        var short = Self.goodDMAR
        B.patch(&short, at: 4, UInt64(short.count + 8), width: 4)
        #expect(parseError(short) == .tableLengthMismatch(declared: UInt32(short.count + 8), available: short.count))
    }

    @Test func checksumIsAWarningUnlessStrict() throws {
        var bytes = Self.goodDMAR
        bytes[9] &+= 1
        let table = try DMARTable.parse(bytes)
        #expect(!table.checksumValid)
        #expect(parseError(bytes, strict: true) == .checksumMismatch(stored: bytes[9], sum: 1))
        #expect(try DMARTable.parse(Self.goodDMAR).checksumValid)
    }

    @Test func zeroAndShortStructureLengths() {
        var bytes = Self.goodDMAR
        B.patch(&bytes, at: 50, 0, width: 2)
        #expect(parseError(bytes) == .lengthTooSmall(structure: "DRHD", offset: 48, length: 0, minimum: 16))
        bytes = Self.goodDMAR
        B.patch(&bytes, at: 50, 12, width: 2)
        #expect(parseError(bytes) == .lengthTooSmall(structure: "DRHD", offset: 48, length: 12, minimum: 16))
    }

    @Test func structureOverrunsTable() {
        var bytes = Self.goodDMAR
        let rmrr = 48 + 24 + 24
        B.patch(&bytes, at: rmrr + 2, 0x100, width: 2)
        #expect(parseError(bytes) == .structureOverrun(structure: "RMRR", offset: rmrr, length: 0x100, containerEnd: bytes.count))
    }

    @Test func trailingBytesAfterLastStructure() {
        var bytes = Self.goodDMAR + [0, 0]
        B.patch(&bytes, at: 4, UInt64(bytes.count), width: 4)
        #expect(parseError(bytes) == .trailingBytes(structure: "DMAR remapping structure", offset: bytes.count - 2, count: 2))
    }

    @Test func deviceScopeErrors() {
        // Scope longer than its DRHD.
        var bytes = Self.goodDMAR
        B.patch(&bytes, at: 48 + 16 + 1, 10, width: 1)
        #expect(parseError(bytes) == .structureOverrun(structure: "DRHD device scope", offset: 64, length: 10, containerEnd: 72))
        // Scope without a path entry.
        bytes = Self.goodDMAR
        B.patch(&bytes, at: 65, 6, width: 1)
        #expect(parseError(bytes) == .lengthTooSmall(structure: "DRHD device scope", offset: 64, length: 6, minimum: 8))
        // Odd path length.
        let odd = B.dmar([B.drhd(base: 0x1000, [[1, 9, 0, 0, 0, 0, 2, 0, 0]])])
        #expect(parseError(odd) == .inconsistent(structure: "DRHD device scope", offset: 64,
                                                 reason: "length 9 leaves half a (device, function) path entry"))
        // Device number out of range.
        let badDevice = B.dmar([B.drhd(base: 0x1000, [B.scope(1, bus: 0, [(32, 0)])])])
        guard case .inconsistent(let name, let offset, _) = parseError(badDevice) else {
            Issue.record("expected inconsistent")
            return
        }
        #expect(name == "DRHD device scope" && offset == 70)
    }

    @Test func rmrrEndBelowBase() {
        let bytes = B.dmar([B.rmrr(base: 0x2000, limit: 0x1FFF, [B.scope(1, bus: 0, [(0x14, 0)])])])
        #expect(parseError(bytes) == .inconsistent(structure: "RMRR", offset: 48,
                                                   reason: "end address 0x1fff is below base address 0x2000"))
    }

    @Test func unknownDMARStructureIsSkipped() throws {
        let bytes = B.dmar([B.structure(9, [1, 2, 3, 4]), B.drhd(flags: 1, base: 0x1000)])
        let table = try DMARTable.parse(bytes)
        #expect(table.unknownStructures == [FirmwareUnknownStructure(offset: 48, type: 9, length: 8,
                                                                     bytes: B.structure(9, [1, 2, 3, 4]))])
        #expect(table.hardwareUnits.count == 1)
    }

    @Test func ivhdEntryErrors() {
        func table(_ entries: [[UInt8]]) -> [UInt8] { B.ivrs([B.ivhd(entries)]) }
        let first = 48 + 24
        #expect(parseError(table([B.entry4(4, 0x10)])) ==
            .inconsistent(structure: "IVHD type 0x10 device entry", offset: first, reason: "range end without a range start"))
        #expect(parseError(table([B.entry4(3, 0x10)])) ==
            .inconsistent(structure: "IVHD type 0x10 device entry", offset: first, reason: "range start without a range end"))
        #expect(parseError(table([B.entry4(3, 0x10), B.entry4(3, 0x20), B.entry4(4, 0x30)])) ==
            .inconsistent(structure: "IVHD type 0x10 device entry", offset: first + 4,
                          reason: "range start while the range started at offset 0x48 is still open"))
        #expect(parseError(table([B.entry4(3, 0x10), B.entry4(4, 0x08)])) ==
            .inconsistent(structure: "IVHD type 0x10 device entry", offset: first + 4,
                          reason: "range end 0x0008 is below its start 0x0010"))
        #expect(parseError(table([B.entry4(0x80, 0)])) ==
            .unknownEntryLength(structure: "IVHD type 0x10 device entry", offset: first, type: 0x80))
        #expect(parseError(table([B.entry4(2, 1), [0x02, 0]])) ==
            .trailingBytes(structure: "IVHD type 0x10 device entry", offset: first + 4, count: 2))
        // An ACPI HID entry whose UID runs past the IVHD, and one cut before its UID length.
        var hid = B.acpiHID(0xA5, hid: "AMDI0020", uidFormat: 2, uid: Array("\\_SB.FUR0".utf8))
        hid[21] = 40
        #expect(parseError(table([hid])) ==
            .structureOverrun(structure: "IVHD type 0x10 device entry", offset: first, length: 62, containerEnd: first + 31))
        #expect(parseError(table([Array(hid.prefix(20))])) ==
            .structureOverrun(structure: "IVHD type 0x10 device entry (ACPI HID)", offset: first, length: 22, containerEnd: first + 20))
        let longInteger = B.acpiHID(0x60, hid: "MSFT0201", uidFormat: 1, uid: [UInt8](repeating: 1, count: 9))
        #expect(parseError(table([longInteger])) ==
            .inconsistent(structure: "IVHD type 0x10 device entry (ACPI HID)", offset: first,
                          reason: "integer UID of 9 bytes does not fit 64 bits"))
    }

    @Test func ivhdAndIvmdLengths() {
        var bytes = B.ivrs([B.ivhd(type: 0x11, [B.entry4(1, 0)])])
        B.patch(&bytes, at: 50, 24, width: 2)
        #expect(parseError(bytes) == .lengthTooSmall(structure: "IVHD type 0x11", offset: 48, length: 24, minimum: 40))
        bytes = B.ivrs([B.ivmd(type: 0x21, flags: 7, deviceID: 0x60, start: 0x1000, length: 0x1000)])
        B.patch(&bytes, at: 50, 16, width: 2)
        #expect(parseError(bytes) == .lengthTooSmall(structure: "IVMD type 0x21", offset: 48, length: 16, minimum: 32))
        bytes = B.ivrs([[0x51, 0, 0, 0]])
        #expect(parseError(bytes) == .lengthTooSmall(structure: "IVRS subtable type 0x51", offset: 48, length: 0, minimum: 4))
    }

    @Test func ivmdRangeErrors() {
        let wrap = B.ivrs([B.ivmd(type: 0x20, flags: 1, start: 0xFFFF_FFFF_FFFF_F000, length: 0x2000)])
        #expect(parseError(wrap) == .inconsistent(
            structure: "IVMD type 0x20", offset: 48,
            reason: "range 0xfffffffffffff000 + 0x2000 wraps past the top of the address space"))
        let top = B.ivrs([B.ivmd(type: 0x20, flags: 1, start: 0xFFFF_FFFF_FFFF_F000, length: 0x1000)])
        #expect(parseError(top) == nil)
        let backwards = B.ivrs([B.ivmd(type: 0x22, flags: 8, deviceID: 0x100, aux: 0x10, start: 0, length: 1)])
        #expect(parseError(backwards) == .inconsistent(structure: "IVMD type 0x22", offset: 48,
                                                       reason: "device range end 0x0010 is below its start 0x0100"))
    }

    @Test func descriptionsNameStructureAndOffset() {
        let error = FirmwareTableError.structureOverrun(structure: "RMRR", offset: 0x60, length: 256, containerEnd: 0x80)
        #expect(error.description.contains("RMRR") && error.description.contains("0x60"))
        #expect(error.offset == 0x60)
        #expect(FirmwareTableError.unknownSignature(found: [0x41, 0xFF]).description.contains("\\xff"))
    }
}
