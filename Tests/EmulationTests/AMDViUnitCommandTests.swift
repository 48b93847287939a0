import Emulation
import Synchronization
import Testing

/// The AMD-Vi unit's command buffer, IOTLB invalidation and event log.
@Suite struct AMDViUnitCommandTests {
    /// A mode-3 table mapping 0x5000 → 0x4000_0000 and 0x6000 → 0x4000_1000; returns the leaf table.
    static func mappedBed() throws -> (HandBuiltAMDVi, PhysicalAddress) {
        var bed = try HandBuiltAMDVi()
        let (root, middle, leaf) = (bed.allocateTable(), bed.allocateTable(), bed.allocateTable())
        try bed.store(root, index: 0, HandBuiltAMDVi.directory(middle, next: 2))
        try bed.store(middle, index: 0, HandBuiltAMDVi.directory(leaf, next: 1))
        try bed.store(leaf, index: 5, 0x4000_0000 | 1 | 3 << 61)
        try bed.store(leaf, index: 6, 0x4000_1000 | 1 | 3 << 61)
        try bed.writeEntry(mode: 3, root: root)
        return (bed, leaf)
    }

    @Test func aStaleIOTLBEntryIsUsedUntilInvalidateIOMMUPagesNamesItsPage() throws {
        var (bed, leaf) = try Self.mappedBed()
        #expect(bed.read(0x5000).physical == 0x4000_0000)
        try bed.store(leaf, index: 5, 0x4800_0000 | 1 | 3 << 61) // remapped without telling the unit
        #expect(bed.read(0x5000).translation?.cached == true)
        #expect(bed.read(0x5000).physical == 0x4000_0000)

        try bed.submit([HandBuiltAMDVi.invalidatePages(domain: HandBuiltAMDVi.domain, address: 0x6000, sized: false)])
        #expect(bed.read(0x5000).physical == 0x4000_0000) // another page: still stale
        try bed.submit([HandBuiltAMDVi.invalidatePages(domain: 0x2B, address: 0x5000, sized: false)])
        #expect(bed.read(0x5000).physical == 0x4000_0000) // another domain: still stale
        try bed.submit([HandBuiltAMDVi.invalidatePages(domain: HandBuiltAMDVi.domain, address: 0x5000, sized: false)])
        #expect(bed.read(0x5000).physical == 0x4800_0000)
        #expect(bed.unit.statistics.pageInvalidations == 3)
    }

    @Test func theSizeBitInvalidatesTheNaturallyAlignedRangeTheAddressEncodes() throws {
        var (bed, leaf) = try Self.mappedBed()
        _ = bed.read(0x5000)
        _ = bed.read(0x6000)
        try bed.store(leaf, index: 5, 0x4800_0000 | 1 | 3 << 61)
        try bed.store(leaf, index: 6, 0x4800_1000 | 1 | 3 << 61)
        // S = 1, address 0x4000 with bit 12 clear: the 8 KiB range 0x4000-0x5FFF.
        try bed.submit([HandBuiltAMDVi.invalidatePages(domain: HandBuiltAMDVi.domain, address: 0x4000, sized: true)])
        #expect(bed.read(0x5000).physical == 0x4800_0000)
        #expect(bed.read(0x6000).physical == 0x4000_1000)
        // S = 1, address 0x7000: bits 14:12 = 111b, bit 15 clear: the 64 KiB range 0x0-0xFFFF.
        try bed.submit([HandBuiltAMDVi.invalidatePages(domain: HandBuiltAMDVi.domain, address: 0x7000, sized: true)])
        #expect(bed.read(0x6000).physical == 0x4800_1000)
    }

    @Test func theAllPagesAddressAndInvalidateAllEmptyTheDomain() throws {
        var (bed, leaf) = try Self.mappedBed()
        _ = bed.read(0x5000)
        try bed.store(leaf, index: 5, 0x4800_0000 | 1 | 3 << 61)
        try bed.submit([HandBuiltAMDVi.invalidatePages(domain: HandBuiltAMDVi.domain, address: AMDViCommand.allPagesAddress,
                                                       sized: true)])
        #expect(bed.read(0x5000).physical == 0x4800_0000)
        #expect(bed.unit.statistics.domainInvalidations == 1)

        try bed.store(leaf, index: 5, 0x4000_0000 | 1 | 3 << 61)
        try bed.submit([(AMDViCommand.invalidateIOMMUAll << 60, 0)])
        #expect(bed.read(0x5000).physical == 0x4000_0000)
        #expect(bed.unit.statistics.globalInvalidations == 1)
    }

    @Test func aCachedDeviceTableEntryIsUsedUntilInvalidateDevtabEntry() throws {
        var (bed, _) = try Self.mappedBed()
        #expect(bed.read(0x5000).physical == 0x4000_0000)
        try bed.memory.store64(bed.entry, AMDViDTE.valid | AMDViDTE.translationValid) // now blocked
        #expect(bed.read(0x6000).physical == 0x4000_1000)
        try bed.submit([(UInt64(bed.requester.requesterID) | AMDViCommand.invalidateDeviceTableEntry << 60, 0)])
        #expect(bed.read(0x6000).faultReason == .blocked)
    }

    @Test func completionWaitStoresItsDataAndCanFlagTheStatus() throws {
        var bed = try HandBuiltAMDVi()
        try bed.submit([(bed.waitWord.value | AMDViCommand.waitStore | AMDViCommand.completionWait << 60,
                         0x1122_3344_5566_7788)])
        #expect(try bed.memory.load64(bed.waitWord) == 0x1122_3344_5566_7788)
        #expect(bed.unit.readRegister(AMDViRegister.status) & AMDViStatus.completionWaitInterrupt == 0)
        try bed.submit([((bed.waitWord.value + 8) | AMDViCommand.waitStore | AMDViCommand.waitInterrupt
                            | AMDViCommand.completionWait << 60, 7)])
        #expect(try bed.memory.load64(bed.waitWord + 8) == 7)
        #expect(bed.unit.readRegister(AMDViRegister.status) & AMDViStatus.completionWaitInterrupt != 0)
        #expect(bed.unit.readRegister(AMDViRegister.commandBufferHead) == 2 * 16)
    }

    @Test func anUnknownCommandStopsTheBufferAndIsLogged() throws {
        var bed = try HandBuiltAMDVi()
        try bed.submit([(0xF << 60, 0), (bed.waitWord.value | AMDViCommand.waitStore | AMDViCommand.completionWait << 60, 1)])
        #expect(try bed.memory.load64(bed.waitWord) == 0) // the wait behind it never ran
        #expect(bed.unit.readRegister(AMDViRegister.commandBufferHead) == 0)
        #expect(bed.unit.readRegister(AMDViRegister.status) & AMDViStatus.commandBufferRunning == 0)
        #expect(try bed.loggedEvents().map(\.code) == [.illegalCommand])
    }

    @Test func theEventLogRecordsFaultsRaisesItsInterruptAndOverflowsWhenFull() throws {
        var bed = try HandBuiltAMDVi()
        let root = bed.allocateTable()
        try bed.writeEntry(mode: 3, root: root) // empty table: every access faults
        let interrupts = Atomic<Int>(0)
        bed.unit.connectEventInterrupt { interrupts.add(1, ordering: .relaxed) }

        // 256 slots hold 255 events: the tail may never catch up with the head.
        for page in UInt64(0)..<256 { _ = bed.read(page << 12, access: page % 2 == 0 ? .read : .write) }
        let events = try bed.loggedEvents()
        #expect(events.count == 255)
        #expect(events[1] == AMDViEvent(code: .ioPageFault, deviceID: 0x08, domainID: 0x2A, flags: [.write], address: 0x1000))
        #expect(interrupts.load(ordering: .relaxed) == 255)
        let status = bed.unit.readRegister(AMDViRegister.status)
        #expect(status & AMDViStatus.eventOverflow != 0)
        #expect(status & AMDViStatus.eventLogRunning == 0)
        #expect(bed.unit.statistics.eventsOverflowed == 1)

        // Stopped: nothing more is written until the driver consumes, clears and restarts.
        _ = bed.read(0x100_0000)
        #expect(try bed.loggedEvents().count == 255)
        bed.unit.writeRegister(AMDViRegister.eventLogHead, bed.unit.readRegister(AMDViRegister.eventLogTail))
        bed.unit.writeRegister(AMDViRegister.status, AMDViStatus.eventOverflow)
        let control = bed.unit.readRegister(AMDViRegister.control)
        bed.unit.writeRegister(AMDViRegister.control, control & ~AMDViControl.eventLogEnable)
        bed.unit.writeRegister(AMDViRegister.control, control)
        _ = bed.read(0x200_0000)
        #expect(try bed.loggedEvents().map(\.address) == [0x200_0000])
        #expect(bed.unit.readRegister(AMDViRegister.status) & AMDViStatus.eventOverflow == 0)
    }

    @Test func suppressedEventsAreCountedButNotLogged() throws {
        var bed = try HandBuiltAMDVi()
        let root = bed.allocateTable()
        try bed.writeEntry(mode: 3, root: root, extraSecond: AMDViDTE.suppressEvents)
        #expect(bed.read(0x1000).faultReason == .notPresent)
        #expect(try bed.loggedEvents().isEmpty)
        #expect(bed.unit.statistics.eventsSuppressed == 1)
    }

    @Test func eventEntriesRoundTripThroughTheirMemoryImage() {
        let event = AMDViEvent(code: .ioPageFault, deviceID: 0xBEEF, domainID: 0x1234,
                               flags: [.present, .permission, .write], address: 0xDEAD_B000)
        let image = event.image
        // Code 2 in bits 63:60, flags 0x70 in 59:48, domain in 47:32, device in 15:0.
        #expect(image.low == 0x2070_1234_0000_BEEF)
        #expect(image.high == 0xDEAD_B000)
        #expect(AMDViEvent(low: image.low, high: image.high) == event)
    }
}
