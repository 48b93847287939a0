import Emulation
import Synchronization
import Testing

/// A Calgary chip with PHB 0 on bus 0 and PHB 2 on buses 4-5, programmed by
/// hand: a 64 KiB TCE table (32 MiB window) for PHB 0 at 1 MiB.
struct HandBuiltCalgary {
    let memory: PhysicalMemory
    let unit: CalgaryUnit
    let table = PhysicalAddress(0x10_0000)
    let onBus0: PCIAddress
    let onBus5: PCIAddress

    init(configuration: CalgaryUnitConfiguration = CalgaryUnitConfiguration(phbBuses: [0...0, nil, 4...5, nil])) throws {
        memory = try PhysicalMemory(size: 8 << 30)
        unit = CalgaryUnit(name: "calgary-test", memory: memory, configuration: configuration)
        onBus0 = try PCIAddress(bus: 0, device: 3, function: 0)
        onBus5 = try PCIAddress(bus: 5, device: 0, function: 0)
        unit.writeRegister(CalgaryRegister.tableAddress(phb: 0), table.value | 0)
        unit.writeRegister(CalgaryRegister.phbConfiguration(phb: 0),
                           UInt64(CalgaryPHBConfiguration.tceEnable | CalgaryPHBConfiguration.dacDisable))
    }

    func setTCE(_ index: UInt64, _ entry: UInt64) throws { try memory.store64(table + index * 8, entry) }

    func translate(_ address: UInt64, _ access: BusAccess = .read, from requester: PCIAddress? = nil) -> TranslationOutcome {
        unit.translate(IOVirtualAddress(address), requester: requester ?? onBus0, access: access)
    }

    func record(_ slot: Int) -> CalgaryErrorRecord? {
        CalgaryErrorRecord(low: unit.readRegister(CalgaryRegister.errorLogBase + slot * 16),
                           high: unit.readRegister(CalgaryRegister.errorLogBase + slot * 16 + 8))
    }
}

@Suite struct CalgaryUnitTests {
    @Test func busRangeRegistersDescribeThePHBWiring() throws {
        let calgary = try HandBuiltCalgary()
        #expect(CalgaryBusRange.decode(calgary.unit.readRegister(CalgaryRegister.busRange(phb: 0))) == 0...0)
        #expect(CalgaryBusRange.decode(calgary.unit.readRegister(CalgaryRegister.busRange(phb: 1))) == nil)
        #expect(calgary.unit.readRegister(CalgaryRegister.busRange(phb: 2)) == CalgaryBusRange.present | 4 << 16 | 5 << 8)
        #expect(CalgaryRegister.tableAddress(phb: 3) == 0x598)
        #expect(CalgaryRegister.phbConfiguration(phb: 1) == 0x9160)
    }

    @Test func tceReadAndWriteBitsAreEnforced() throws {
        let calgary = try HandBuiltCalgary()
        try calgary.setTCE(2, 0x1_2345_6000 | CalgaryTCE.read)
        #expect(calgary.translate(0x2010)
            == .translated(Translation(physical: PhysicalAddress(0x1_2345_6010), contiguousBytes: 0xFF0, cached: false)))
        #expect(calgary.translate(0x2010, .write) == .faulted(.permissionDenied))
        #expect(calgary.record(0) == CalgaryErrorRecord(address: 0x2010, requester: calgary.onBus0.requesterID, phb: 0,
                                                        isWrite: true, kind: .permissionDenied))
        #expect(calgary.unit.readRegister(CalgaryRegister.channelStatus(phb: 0)) != 0)
        #expect(calgary.translate(0x3000) == .faulted(.notPresent))
        #expect(calgary.record(1)?.kind == .entryNotValid)
    }

    @Test func theWindowEndsWhereTheTableSizeCodeSaysAndBeyondIsBlocked() throws {
        let calgary = try HandBuiltCalgary()
        #expect(CalgaryTableAddress.windowBytes(sizeCode: 0) == 32 << 20)
        #expect(CalgaryTableAddress.windowBytes(sizeCode: 7) == 4 << 30)
        try calgary.setTCE(8191, 0x7000 | 3)
        #expect(calgary.translate(0x1FF_F000) == .translated(Translation(physical: PhysicalAddress(0x7000),
                                                                          contiguousBytes: 0x1000, cached: false)))
        #expect(calgary.translate(0x200_0000) == .faulted(.beyondAddressWidth))
        #expect(calgary.translate(0x1_0000_0000, .write) == .faulted(.beyondAddressWidth))
        #expect(calgary.record(0)?.kind == .outsideWindow)
        #expect(calgary.unit.statistics.tableReads == 1)
    }

    @Test func aPHBWithTranslationDisabledPassesItsBusesThrough() throws {
        let calgary = try HandBuiltCalgary()
        #expect(calgary.translate(0x7_0000_0123, .write, from: calgary.onBus5)
            == .translated(Translation(physical: PhysicalAddress(0x7_0000_0123), contiguousBytes: 0xEDD, cached: true)))
        #expect(calgary.unit.statistics.bypassed == 1)
        let elsewhere = try PCIAddress(bus: 9, device: 0, function: 0)
        #expect(calgary.translate(0x1000, from: elsewhere) == .faulted(.requesterNotConfigured))
        #expect(calgary.record(0)?.phb == 0xFF)
    }

    @Test func theTCECacheKeepsStaleEntriesUntilThatPHBsTARIsRewritten() throws {
        let calgary = try HandBuiltCalgary(configuration: CalgaryUnitConfiguration(phbBuses: [0...0, 1...1, nil, nil]))
        let onBus1 = try PCIAddress(bus: 1, device: 0, function: 0)
        let secondTable = PhysicalAddress(0x20_0000)
        calgary.unit.writeRegister(CalgaryRegister.tableAddress(phb: 1), secondTable.value)
        calgary.unit.writeRegister(CalgaryRegister.phbConfiguration(phb: 1), UInt64(CalgaryPHBConfiguration.tceEnable))
        try calgary.setTCE(1, 0x4000_0000 | 3)
        try calgary.memory.store64(secondTable + 8, 0x6000_0000 | 3)
        _ = calgary.translate(0x1000)
        _ = calgary.translate(0x1000, from: onBus1)
        try calgary.setTCE(1, 0)
        try calgary.memory.store64(secondTable + 8, 0)
        let tar = calgary.unit.readRegister(CalgaryRegister.tableAddress(phb: 1))
        calgary.unit.writeRegister(CalgaryRegister.tableAddress(phb: 1), tar) // the "TCE cache blast" of PHB 1 only
        #expect(calgary.translate(0x1000, .write)
            == .translated(Translation(physical: PhysicalAddress(0x4000_0000), contiguousBytes: 0x1000, cached: true)))
        #expect(calgary.translate(0x1000, .write, from: onBus1) == .faulted(.notPresent))
        calgary.unit.writeRegister(CalgaryRegister.tableAddress(phb: 0), calgary.table.value)
        #expect(calgary.translate(0x1000, .write) == .faulted(.notPresent))
    }

    @Test func theErrorLogIsBoundedCountsDropsAndSignalsOnce() throws {
        var configuration = CalgaryUnitConfiguration(phbBuses: [0...0, nil, nil, nil])
        configuration.errorLogCapacity = 3
        let calgary = try HandBuiltCalgary(configuration: configuration)
        let signals = Atomic<Int>(0)
        calgary.unit.connectErrorInterrupt { signals.add(1, ordering: .relaxed) }
        for page in 0..<7 as Range<UInt64> { _ = calgary.translate(page << 12, .write) }
        let status = calgary.unit.readRegister(CalgaryRegister.errorLogStatus)
        #expect(status & CalgaryErrorLogStatus.overflowed != 0)
        #expect(status >> 32 == 4)
        #expect(signals.load(ordering: .relaxed) == 1)
        #expect(calgary.unit.statistics.errorsRecorded == 3)
        #expect(calgary.record(2)?.address == 0x2000)
    }

    @Test func aTableOutsideMemoryIsAnErrorNotACrash() throws {
        let calgary = try HandBuiltCalgary()
        calgary.unit.writeRegister(CalgaryRegister.tableAddress(phb: 0), 0xFFFF_FFFF_8000)
        #expect(calgary.translate(0x1000) == .faulted(.invalidTable))
        #expect(calgary.record(0)?.kind == .tableUnreadable)
    }
}
