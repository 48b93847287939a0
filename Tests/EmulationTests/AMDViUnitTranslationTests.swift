import Emulation
import Testing

/// Translation by the AMD-Vi unit from hand-built device table entries and v1 page tables.
@Suite struct AMDViUnitTranslationTests {
    @Test func aThreeLevelTableTranslatesAndTheSecondAccessHitsTheIOTLB() throws {
        var bed = try HandBuiltAMDVi()
        let (root, middle, leaf) = (bed.allocateTable(), bed.allocateTable(), bed.allocateTable())
        let iova: UInt64 = 0x12_3456_7000 // indexes: level 3 = 0x48, level 2 = 0x1A2, level 1 = 0x167
        try bed.store(root, index: 0x48, HandBuiltAMDVi.directory(middle, next: 2))
        try bed.store(middle, index: 0x1A2, HandBuiltAMDVi.directory(leaf, next: 1))
        try bed.store(leaf, index: 0x167, 0x8765_4000 | 1 | 1 << 61 | 1 << 62)
        try bed.writeEntry(mode: 3, root: root)

        let first = try #require(bed.read(iova + 0x10).translation)
        #expect(first.physical.value == 0x8765_4010)
        #expect(first.contiguousBytes == 0x1000 - 0x10)
        #expect(!first.cached)
        #expect(bed.read(iova + 0x20).translation?.cached == true)
        #expect(bed.unit.statistics.pageWalks == 1)
    }

    @Test func permissionsAreTheIntersectionOfEveryLevelAndAWriteFaultIsLogged() throws {
        var bed = try HandBuiltAMDVi()
        let (root, leaf) = (bed.allocateTable(), bed.allocateTable())
        try bed.store(root, index: 0, HandBuiltAMDVi.directory(leaf, next: 1) & ~(1 << 62)) // directory without IW
        try bed.store(leaf, index: 5, 0x4000_0000 | 1 | 1 << 61 | 1 << 62)
        try bed.writeEntry(mode: 2, root: root)

        #expect(bed.read(0x5000).physical == 0x4000_0000)
        #expect(bed.read(0x5008, access: .write).faultReason == .permissionDenied)
        let events = try bed.loggedEvents()
        #expect(events == [AMDViEvent(code: .ioPageFault, deviceID: 0x08, domainID: 0x2A,
                                      flags: [.write, .present, .permission], address: 0x5008)])
    }

    @Test func aSkippedLevelNeedsItsIndexBitsToBeZero() throws {
        var bed = try HandBuiltAMDVi()
        let (root, leaf) = (bed.allocateTable(), bed.allocateTable())
        // Mode 4, but the level-4 entry points straight at a level-1 table: levels 3 and 2 are skipped.
        try bed.store(root, index: 1, HandBuiltAMDVi.directory(leaf, next: 1))
        try bed.store(leaf, index: 3, 0x7000_0000 | 1 | 1 << 61 | 1 << 62)
        try bed.writeEntry(mode: 4, root: root)

        let iova: UInt64 = 1 << 39 | 3 << 12 // level-4 index 1, levels 3 and 2 index 0
        #expect(bed.read(iova + 4).physical == 0x7000_0004)
        #expect(bed.read(iova | 1 << 21).faultReason == .notPresent) // level-2 index bit set
        #expect(bed.read(iova | 1 << 30).faultReason == .notPresent) // level-3 index bit set
        #expect(try bed.loggedEvents().map(\.address) == [iova | 1 << 21, iova | 1 << 30])
    }

    @Test func nextLevelSevenEncodesPageSizesBetweenTheNaturalOnes() throws {
        var bed = try HandBuiltAMDVi()
        let (root, middle, leaf) = (bed.allocateTable(), bed.allocateTable(), bed.allocateTable())
        try bed.store(root, index: 0, HandBuiltAMDVi.directory(middle, next: 2))
        try bed.store(middle, index: 0, HandBuiltAMDVi.directory(leaf, next: 1))
        // A 64 KiB page at 0x4001_0000: address bits 14:12 set, bit 15 clear; entries 16...31 of the leaf table.
        let page64K: UInt64 = 0x4001_7000 | 7 << 9 | 1 | 1 << 61 | 1 << 62
        for index in UInt64(16)..<32 { try bed.store(leaf, index: index, page64K) }
        // A 4 MiB page at 0x8040_0000 (level 2, entries 2 and 3): bits 20:12 set, bit 21 clear.
        let page4M: UInt64 = 0x805F_F000 | 7 << 9 | 1 | 1 << 61 | 1 << 62
        try bed.store(middle, index: 2, page4M)
        try bed.store(middle, index: 3, page4M)
        try bed.writeEntry(mode: 3, root: root)

        let small = try #require(bed.read(0x1_2345).translation)
        #expect(small.physical.value == 0x4001_2345)
        #expect(small.contiguousBytes == 0x2_0000 - 0x1_2345)
        let large = try #require(bed.read(0x7F_FFF0).translation)
        #expect(large.physical.value == 0x807F_FFF0)
        #expect(large.contiguousBytes == 0x10)
        // One IOTLB entry covers the whole 4 MiB page.
        #expect(bed.read(0x40_0000).translation == Translation(physical: PhysicalAddress(0x8040_0000),
                                                                contiguousBytes: 0x40_0000, cached: true))
    }

    @Test func aNextLevelSevenSizeOutsideItsLevelIsAnIllegalEncoding() throws {
        var bed = try HandBuiltAMDVi()
        let leaf = bed.allocateTable()
        // At level 1, bits 19:12 set and bit 20 clear would mean 2 MiB: a level-2 size.
        try bed.store(leaf, index: 0, 0x400F_F000 | 7 << 9 | 1 | 1 << 61 | 1 << 62)
        try bed.writeEntry(mode: 1, root: leaf)
        #expect(bed.read(0x10).faultReason == .invalidTable)
        #expect(try bed.loggedEvents().first?.flags.contains(.reservedBits) == true)
    }

    @Test func addressesBeyondTheModeWidthFault() throws {
        var bed = try HandBuiltAMDVi()
        let root = bed.allocateTable()
        try bed.writeEntry(mode: 3, root: root)
        #expect(bed.read(1 << 39).faultReason == .beyondAddressWidth)
    }

    @Test func withoutVOrTVTheTableIsNotUsedAndAccessesPassUntranslated() throws {
        let bed = try HandBuiltAMDVi()
        // The requester's entry is all zero: V = 0.
        #expect(bed.read(0x1234_5678, access: .write).physical == 0x1234_5678)
        // Another device with V = 1, TV = 0 and a mode that would otherwise translate.
        let other = try PCIAddress(bus: 0, device: 3, function: 0)
        try bed.memory.store64(bed.deviceTable + UInt64(other.requesterID) * 32, AMDViDTE.valid | 3 << 9 | 0x20_0000)
        #expect(bed.unit.translate(IOVirtualAddress(0x2000), requester: other, access: .read).physical == 0x2000)
        #expect(try bed.loggedEvents().isEmpty)
    }

    @Test func modeZeroPassesThroughUnderIRAndIWAndBlocksWithoutThem() throws {
        let bed = try HandBuiltAMDVi()
        try bed.memory.store64(bed.entry, AMDViDTE.valid | AMDViDTE.translationValid | AMDViDTE.readPermission)
        #expect(bed.read(0x9000).physical == 0x9000)
        #expect(bed.read(0x9000, access: .write).faultReason == .permissionDenied)

        let other = try PCIAddress(bus: 0, device: 2, function: 0)
        try bed.memory.store64(bed.deviceTable + UInt64(other.requesterID) * 32, AMDViDTE.valid | AMDViDTE.translationValid)
        #expect(bed.unit.translate(IOVirtualAddress(0x9000), requester: other, access: .read) == .faulted(.blocked))
    }

    @Test func illegalDeviceTableEntriesAreLoggedAndRefused() throws {
        let bed = try HandBuiltAMDVi()
        try bed.memory.store64(bed.entry + 8, 5)
        try bed.memory.store64(bed.entry, AMDViDTE.valid | AMDViDTE.translationValid | 7 << 9) // mode 7 is reserved
        #expect(bed.read(0x3000, access: .write).faultReason == .invalidTable)
        let event = try #require(try bed.loggedEvents().first)
        #expect(event.code == .illegalDeviceTableEntry)
        #expect(event.deviceID == 0x08)
        #expect(event.address == 0x3000)
        #expect(event.flags.contains(.write))

        // A device ID beyond the one-page table (128 entries) has no entry at all.
        let far = try PCIAddress(bus: 1, device: 0, function: 0)
        #expect(bed.unit.translate(IOVirtualAddress(0), requester: far, access: .read) == .faulted(.requesterNotConfigured))
        #expect(try bed.loggedEvents().last?.deviceID == 0x100)
    }

    @Test func theExclusionRangePassesAddressesThroughForDevicesWithEX() throws {
        var bed = try HandBuiltAMDVi()
        let root = bed.allocateTable() // empty: every translated access faults
        try bed.writeEntry(mode: 3, root: root, extraSecond: AMDViDTE.exclusion)
        bed.unit.writeRegister(AMDViRegister.exclusionBase, 0x5000_0000 | AMDViExclusion.enable)
        bed.unit.writeRegister(AMDViRegister.exclusionLimit, 0x5FFF_F000)
        #expect(bed.read(0x5000_0000).physical == 0x5000_0000)
        #expect(bed.read(0x5FFF_FFFF, access: .write).physical == 0x5FFF_FFFF)
        #expect(bed.read(0x6000_0000).faultReason == .notPresent)
        #expect(bed.unit.statistics.excluded == 2)

        // Without EX in the entry the range does not apply, unless Allow is set.
        let other = try PCIAddress(bus: 0, device: 2, function: 0)
        try bed.memory.store64(bed.deviceTable + UInt64(other.requesterID) * 32 + 8, 9)
        try bed.memory.store64(bed.deviceTable + UInt64(other.requesterID) * 32,
                               AMDViDTE.valid | AMDViDTE.translationValid | 3 << 9 | root.value | 3 << 61)
        #expect(bed.unit.translate(IOVirtualAddress(0x5000_0000), requester: other, access: .read) == .faulted(.notPresent))
        bed.unit.writeRegister(AMDViRegister.exclusionBase, 0x5000_0000 | AMDViExclusion.enable | AMDViExclusion.allowAll)
        #expect(bed.unit.translate(IOVirtualAddress(0x5000_0000), requester: other, access: .read).physical == 0x5000_0000)
    }

    @Test func aDisabledUnitTranslatesNothing() throws {
        let bed = try HandBuiltAMDVi()
        try bed.memory.store64(bed.entry, AMDViDTE.valid | AMDViDTE.translationValid) // blocked entry
        bed.unit.writeRegister(AMDViRegister.control, 0)
        #expect(bed.read(0xABC000).physical == 0xABC000)
    }
}
