import Emulation
import Testing

/// Programs a VT-d unit by hand, the way a driver would, to pin the
/// hardware model's reading of the specification's formats.
struct HandBuiltVTd {
    let memory: PhysicalMemory
    let unit: VTdUnit
    let root: PhysicalAddress = PhysicalAddress(0x10_0000)
    let context: PhysicalAddress = PhysicalAddress(0x10_1000)
    let queue: PhysicalAddress = PhysicalAddress(0x10_2000)
    let status: PhysicalAddress = PhysicalAddress(0x10_3000)
    var nextTable: UInt64 = 0x20_0000
    let requester: PCIAddress

    init(configuration: VTdUnitConfiguration = .init()) throws {
        memory = try PhysicalMemory(size: 1 << 32)
        unit = VTdUnit(name: "dmar-test", memory: memory, configuration: configuration)
        requester = try PCIAddress(bus: 3, device: 2, function: 1)
        try memory.store64(root + UInt64(requester.bus) * 16, context.value | 1)
        unit.writeRegister(VTdRegister.rootTableAddress, root.value)
        unit.writeRegister(VTdRegister.globalCommand, UInt64(VTdGlobal.setRootTablePointer))
        unit.writeRegister(VTdRegister.invalidationQueueAddress, queue.value)
        unit.writeRegister(VTdRegister.globalCommand, UInt64(VTdGlobal.queuedInvalidationEnable | VTdGlobal.translationEnable))
    }

    var contextEntry: PhysicalAddress { context + UInt64(requester.requesterID & 0xFF) * 16 }

    /// Points the requester at a 4-level table with domain 7.
    mutating func attachFourLevelTable() throws -> PhysicalAddress {
        let top = allocateTable()
        try memory.store64(contextEntry + 8, 2 | 7 << 8) // AW = 4-level, DID 7
        try memory.store64(contextEntry, top.value | 1)
        return top
    }

    mutating func allocateTable() -> PhysicalAddress {
        defer { nextTable += 0x1000 }
        return PhysicalAddress(nextTable)
    }

    /// Writes the entries for one 4 KiB page by hand.
    mutating func map4K(_ iova: UInt64, to physical: UInt64, permissions: UInt64, in top: PhysicalAddress) throws {
        var table = top
        for level in stride(from: 4, to: 1, by: -1) {
            let slot = table + ((iova >> UInt64(12 + 9 * (level - 1))) & 0x1FF) * 8
            var entry = try memory.load64(slot)
            if entry == 0 {
                entry = allocateTable().value | 3
                try memory.store64(slot, entry)
            }
            table = PhysicalAddress(entry & VTdPTE.addressMask)
        }
        try memory.store64(table + ((iova >> 12) & 0x1FF) * 8, physical | permissions)
    }

    /// Queues one descriptor and a wait, then moves the tail.
    func invalidate(_ low: UInt64, _ high: UInt64, tail: inout Int) throws {
        try memory.store64(queue + UInt64(tail) * 16, low)
        try memory.store64(queue + UInt64(tail) * 16 + 8, high)
        try memory.store64(queue + UInt64(tail + 1) * 16, VTdDescriptor.waitType | VTdDescriptor.waitStatusWrite | 0xAB << 32)
        try memory.store64(queue + UInt64(tail + 1) * 16 + 8, status.value)
        tail += 2
        unit.writeRegister(VTdRegister.invalidationQueueTail, UInt64(tail) << 4)
    }
}

@Suite struct VTdUnitTests {
    @Test func walksAFourLevelTableAndCachesTheTranslation() throws {
        var platform = try HandBuiltVTd()
        let top = try platform.attachFourLevelTable()
        try platform.map4K(0x7_1234_5000, to: 0x8000_0000, permissions: VTdPTE.read | VTdPTE.write, in: top)
        let first = platform.unit.translate(IOVirtualAddress(0x7_1234_5678), requester: platform.requester, access: .write)
        #expect(first == .translated(Translation(physical: PhysicalAddress(0x8000_0678), contiguousBytes: 0x988, cached: false)))
        let second = platform.unit.translate(IOVirtualAddress(0x7_1234_5000), requester: platform.requester, access: .read)
        #expect(second == .translated(Translation(physical: PhysicalAddress(0x8000_0000), contiguousBytes: 0x1000, cached: true)))
        #expect(platform.unit.statistics.pageWalks == 1)
    }

    @Test func largePagesAndPermissionBitsFollowTheSpecification() throws {
        var platform = try HandBuiltVTd()
        let top = try platform.attachFourLevelTable()
        // Level 4 -> level 3 table whose entry 1 is a 1 GiB read-only page (PS = bit 7).
        let level3 = platform.allocateTable()
        try platform.memory.store64(top, level3.value | 3)
        try platform.memory.store64(level3 + 8, 0x4000_0000 | VTdPTE.pageSize | VTdPTE.read)
        let read = platform.unit.translate(IOVirtualAddress(0x4123_4567), requester: platform.requester, access: .read)
        #expect(read == .translated(Translation(physical: PhysicalAddress(0x4123_4567), contiguousBytes: 0x4000_0000 - 0x123_4567,
                                                cached: false)))
        let write = platform.unit.translate(IOVirtualAddress(0x4123_4567), requester: platform.requester, access: .write)
        #expect(write == .faulted(.permissionDenied))
        let record = VTdFaultRecord(low: platform.unit.readRegister(VTdRegister.faultRecordingBase),
                                    high: platform.unit.readRegister(VTdRegister.faultRecordingBase + 8))
        #expect(record == VTdFaultRecord(sourceID: platform.requester.requesterID, pageAddress: 0x4123_4000, access: .write,
                                         reason: .writeNotPermitted))
    }

    @Test func passThroughContextTranslatesOneToOne() throws {
        let platform = try HandBuiltVTd()
        try platform.memory.store64(platform.contextEntry + 8, 2 | 9 << 8)
        try platform.memory.store64(platform.contextEntry, 1 | VTdTranslationType.passThrough.rawValue << 2)
        let outcome = platform.unit.translate(IOVirtualAddress(0x1234_5678), requester: platform.requester, access: .write)
        guard case let .translated(translation) = outcome else { Issue.record("pass-through faulted"); return }
        #expect(translation.physical == PhysicalAddress(0x1234_5678))
    }

    @Test func missingContextFaultsWithItsReason() throws {
        let platform = try HandBuiltVTd()
        let other = try PCIAddress(bus: 9, device: 0, function: 0)
        #expect(platform.unit.translate(IOVirtualAddress(0x1000), requester: other, access: .read) == .faulted(.requesterNotConfigured))
        #expect(platform.unit.translate(IOVirtualAddress(0x1000), requester: platform.requester, access: .read)
            == .faulted(.requesterNotConfigured))
        let record = VTdFaultRecord(low: platform.unit.readRegister(VTdRegister.faultRecordingBase + 16),
                                    high: platform.unit.readRegister(VTdRegister.faultRecordingBase + 24))
        #expect(record?.reason == .contextNotPresent)
    }

    @Test func staleIOTLBEntryIsUsedUntilInvalidated() throws {
        var platform = try HandBuiltVTd()
        let top = try platform.attachFourLevelTable()
        try platform.map4K(0x5000, to: 0x9000_0000, permissions: 3, in: top)
        _ = platform.unit.translate(IOVirtualAddress(0x5000), requester: platform.requester, access: .read)
        try platform.map4K(0x5000, to: 0, permissions: 0, in: top) // clear the leaf without telling the unit
        let stale = platform.unit.translate(IOVirtualAddress(0x5000), requester: platform.requester, access: .read)
        #expect(stale == .translated(Translation(physical: PhysicalAddress(0x9000_0000), contiguousBytes: 0x1000, cached: true)))
        var tail = 0
        // Page-selective invalidation of DID 7 at 0x5000 (granularity 3, AM 0).
        try platform.invalidate(VTdDescriptor.iotlbType | VTdDescriptor.pageOrDeviceGranularity | 7 << 16, 0x5000, tail: &tail)
        #expect(try platform.memory.load64(platform.status) & 0xFFFF_FFFF == 0xAB)
        #expect(platform.unit.translate(IOVirtualAddress(0x5000), requester: platform.requester, access: .read) == .faulted(.notPresent))
        #expect(platform.unit.statistics.pageInvalidations == 1)
    }

    /// The address-mask field is six bits; its largest values name the whole address space
    /// (a 2^64-byte span), which once overflowed the unit's arithmetic and trapped.
    @Test(arguments: [52, 63]) func theLargestAddressMaskInvalidatesEverything(mask: UInt64) throws {
        var platform = try HandBuiltVTd()
        let top = try platform.attachFourLevelTable()
        try platform.map4K(0x7_0000_5000, to: 0x9000_0000, permissions: 3, in: top)
        _ = platform.unit.translate(IOVirtualAddress(0x7_0000_5000), requester: platform.requester, access: .read)
        try platform.map4K(0x7_0000_5000, to: 0, permissions: 0, in: top)
        var tail = 0
        try platform.invalidate(VTdDescriptor.iotlbType | VTdDescriptor.pageOrDeviceGranularity | 7 << 16, mask, tail: &tail)
        #expect(try platform.memory.load64(platform.status) & 0xFFFF_FFFF == 0xAB)
        #expect(platform.unit.translate(IOVirtualAddress(0x7_0000_5000), requester: platform.requester, access: .read)
            == .faulted(.notPresent))
    }

    @Test func faultLogIsBoundedAndCountsOverflow() throws {
        var configuration = VTdUnitConfiguration()
        configuration.faultRecordCount = 4
        var platform = try HandBuiltVTd(configuration: configuration)
        _ = try platform.attachFourLevelTable()
        for page in 0..<10 as Range<UInt64> {
            _ = platform.unit.translate(IOVirtualAddress(page << 12), requester: platform.requester, access: .read)
        }
        let stats = platform.unit.statistics
        #expect(stats.faultsRecorded == 4)
        #expect(stats.faultsOverflowed == 6)
        #expect(platform.unit.readRegister(VTdRegister.faultStatus) & UInt64(VTdFaultStatus.primaryFaultOverflow) != 0)
        // Clearing one record frees exactly that slot for the next fault.
        platform.unit.writeRegister(VTdRegister.faultRecordingBase + 8, 1 << 63)
        _ = platform.unit.translate(IOVirtualAddress(0x99000), requester: platform.requester, access: .read)
        #expect(platform.unit.statistics.faultsRecorded == 5)
    }

    @Test func addressesBeyondTheTableWidthFault() throws {
        var platform = try HandBuiltVTd()
        _ = try platform.attachFourLevelTable()
        #expect(platform.unit.translate(IOVirtualAddress(1 << 48), requester: platform.requester, access: .read)
            == .faulted(.beyondAddressWidth))
    }

    @Test func unknownInvalidationDescriptorStopsTheQueueWithAnError() throws {
        let platform = try HandBuiltVTd()
        var tail = 0
        try platform.invalidate(0xF, 0, tail: &tail)
        #expect(platform.unit.readRegister(VTdRegister.faultStatus) & UInt64(VTdFaultStatus.invalidationQueueError) != 0)
        #expect(platform.unit.readRegister(VTdRegister.invalidationQueueHead) == 0)
    }
}
