import Emulation
import Synchronization
import Testing

/// Programs a GART by hand, as the BIOS and a driver would: a 512 MiB
/// aperture at 0xC0000000 and a GATT at 1 MiB.
struct HandBuiltGART {
    let memory: PhysicalMemory
    let unit: GARTUnit
    let gatt = PhysicalAddress(0x10_0000)
    let requester: PCIAddress
    static let apertureBase: UInt64 = 0xC000_0000

    init(configuration: GARTUnitConfiguration = .init()) throws {
        memory = try PhysicalMemory(size: 8 << 30)
        unit = GARTUnit(name: "gart-test", memory: memory, configuration: configuration)
        requester = try PCIAddress(bus: 1, device: 0, function: 0)
        unit.writeRegister(GARTRegister.apertureControl, 4 << 1) // GartSize 4: 32 MiB << 4 = 512 MiB
        unit.writeRegister(GARTRegister.apertureBase, Self.apertureBase >> 25)
        unit.writeRegister(GARTRegister.tableBase, (gatt.value >> 12) << 4)
        unit.writeRegister(GARTRegister.apertureControl, 4 << 1 | UInt64(GARTControl.enable))
    }

    /// Writes GATT entry `index` (a 32-bit word) straight into memory.
    func setEntry(_ index: UInt64, _ entry: UInt32) throws {
        try memory.write(gatt + index * 4, bytes: withUnsafeBytes(of: entry.littleEndian) { Array($0) })
    }

    func translate(_ address: UInt64, _ access: BusAccess = .read) -> TranslationOutcome {
        unit.translate(IOVirtualAddress(address), requester: requester, access: access)
    }
}

@Suite struct GARTUnitTests {
    @Test func apertureRegistersDecodeAsTheBKDGDescribesThem() throws {
        let gart = try HandBuiltGART()
        #expect(gart.unit.activeAperture == 0xC000_0000...0xDFFF_FFFF)
        #expect((0...6).map { GARTApertureSize.bytes(forEncoding: $0) } == [32, 64, 128, 256, 512, 1024, 2048].map { UInt64($0) << 20 })
        #expect(GARTApertureSize.encoding(of: 2 << 30) == 6)
        #expect(GARTApertureSize.encoding(of: 16 << 20) == nil)
        #expect(GARTApertureSize.encoding(of: 48 << 20) == nil)
        #expect(gart.unit.readRegister(GARTRegister.tableBase) == 0x100 << 4)
        gart.unit.writeRegister(GARTRegister.apertureControl, 0)
        #expect(gart.unit.activeAperture == nil)
    }

    @Test func addressesOutsideTheAperturePassStraightToMemory() throws {
        let gart = try HandBuiltGART()
        #expect(gart.translate(0x1234_5678, .write)
            == .translated(Translation(physical: PhysicalAddress(0x1234_5678), contiguousBytes: 0x988, cached: true)))
        #expect(gart.translate(0xE000_0000) == .translated(Translation(physical: PhysicalAddress(0xE000_0000),
                                                                        contiguousBytes: 0x1000, cached: true)))
        #expect(gart.translate(0xBFFF_FFFF) == .translated(Translation(physical: PhysicalAddress(0xBFFF_FFFF),
                                                                        contiguousBytes: 1, cached: true)))
        // With GartEn clear, the aperture range itself passes through as well.
        gart.unit.writeRegister(GARTRegister.apertureControl, 4 << 1)
        #expect(gart.translate(0xC000_1000) == .translated(Translation(physical: PhysicalAddress(0xC000_1000),
                                                                        contiguousBytes: 0x1000, cached: true)))
        #expect(gart.unit.statistics.tableReads == 0)
    }

    @Test func aValidEntryTranslatesUsingPhysicalBits39To32FromBits11To4() throws {
        let gart = try HandBuiltGART()
        try gart.setEntry(3, 0x3456_7000 | 0x1 << 4 | 3) // physical 0x1_3456_7000, valid + coherent
        #expect(gart.translate(0xC000_3ABC, .write)
            == .translated(Translation(physical: PhysicalAddress(0x1_3456_7ABC), contiguousBytes: 0x544, cached: false)))
        #expect(gart.translate(0xC000_3000)
            == .translated(Translation(physical: PhysicalAddress(0x1_3456_7000), contiguousBytes: 0x1000, cached: true)))
        #expect(gart.unit.statistics.tableReads == 1)
        #expect(gart.unit.statistics.tlbHits == 1)
    }

    @Test func theTLBKeepsAStaleEntryUntilInvGartIsWritten() throws {
        let gart = try HandBuiltGART()
        try gart.setEntry(0, GARTEntry.encode(physical: 0x4000_0000))
        _ = gart.translate(0xC000_0000)
        try gart.setEntry(0, GARTEntry.encode(physical: 0x5000_0000))
        #expect(gart.translate(0xC000_0000)
            == .translated(Translation(physical: PhysicalAddress(0x4000_0000), contiguousBytes: 0x1000, cached: true)))
        gart.unit.writeRegister(GARTRegister.cacheControl, UInt64(GARTCacheControl.invalidate))
        #expect(gart.unit.readRegister(GARTRegister.cacheControl) & UInt64(GARTCacheControl.invalidate) == 0)
        #expect(gart.translate(0xC000_0000)
            == .translated(Translation(physical: PhysicalAddress(0x5000_0000), contiguousBytes: 0x1000, cached: false)))
        try gart.setEntry(0, 0)
        #expect(gart.translate(0xC000_0000, .write) != .faulted(.notPresent), "stale until flushed")
        gart.unit.writeRegister(GARTRegister.cacheControl, UInt64(GARTCacheControl.invalidate))
        #expect(gart.translate(0xC000_0000, .write) == .faulted(.notPresent))
        #expect(gart.unit.statistics.cacheFlushes == 2)
    }

    @Test func anInvalidEntryAbortsTheAccessSetsGartPteErrAndIsLogged() throws {
        let gart = try HandBuiltGART()
        let engine = DMAEngine(memory: gart.memory, requester: gart.requester)
        engine.translationUnit = gart.unit
        try gart.setEntry(0, GARTEntry.encode(physical: 0x2000_0000))
        let result = engine.write(to: IOVirtualAddress(0xC000_0FFE), bytes: [1, 2, 3, 4])
        #expect(result.bytesTransferred == 2)
        #expect(result.fault == DeviceFault(address: IOVirtualAddress(0xC000_1000), access: .write, reason: .notPresent))
        #expect(try gart.memory.read(PhysicalAddress(0x2000_0FFE), count: 2) == [1, 2])
        #expect(try gart.memory.read(PhysicalAddress(0xC000_1000), count: 2) == [0, 0])
        #expect(gart.unit.readRegister(GARTRegister.cacheControl) == UInt64(GARTCacheControl.pteError))
        let record = GARTErrorRecord(low: gart.unit.readRegister(GARTRegister.errorLogBase),
                                     high: gart.unit.readRegister(GARTRegister.errorLogBase + 8))
        #expect(record == GARTErrorRecord(address: 0xC000_1000, requester: gart.requester.requesterID, isWrite: true,
                                          kind: .invalidEntry))
        gart.unit.writeRegister(GARTRegister.cacheControl, UInt64(GARTCacheControl.pteError))
        #expect(gart.unit.readRegister(GARTRegister.cacheControl) == 0)
    }

    @Test func theErrorLogIsBoundedCountsDropsAndSignalsOnce() throws {
        var configuration = GARTUnitConfiguration()
        configuration.errorLogCapacity = 2
        let gart = try HandBuiltGART(configuration: configuration)
        let signals = Atomic<Int>(0)
        gart.unit.connectErrorInterrupt { signals.add(1, ordering: .relaxed) }
        for page in 0..<5 as Range<UInt64> { _ = gart.translate(0xC000_0000 + page << 12) }
        let status = gart.unit.readRegister(GARTRegister.errorLogStatus)
        #expect(status & GARTErrorLogStatus.pending != 0)
        #expect(status & GARTErrorLogStatus.overflowed != 0)
        #expect(status >> 32 == 3)
        #expect(signals.load(ordering: .relaxed) == 1)
        #expect(gart.unit.statistics.errorsRecorded == 2)
        #expect(gart.unit.statistics.errorsDropped == 3)
        gart.unit.writeRegister(GARTRegister.errorLogBase + 8, 1 << 63)
        gart.unit.writeRegister(GARTRegister.errorLogBase + 24, 1 << 63)
        gart.unit.writeRegister(GARTRegister.errorLogStatus, GARTErrorLogStatus.overflowed)
        #expect(gart.unit.readRegister(GARTRegister.errorLogStatus) & 3 == 0)
    }

    @Test func aTableOutsideMemoryIsAnErrorNotACrash() throws {
        let gart = try HandBuiltGART()
        gart.unit.writeRegister(GARTRegister.tableBase, (0xFF_FFFF_F000 >> 12) << 4)
        #expect(gart.translate(0xC000_0000) == .faulted(.invalidTable))
        let record = GARTErrorRecord(low: gart.unit.readRegister(GARTRegister.errorLogBase),
                                     high: gart.unit.readRegister(GARTRegister.errorLogBase + 8))
        #expect(record?.kind == .tableUnreadable)
        #expect(gart.unit.readRegister(GARTRegister.cacheControl) & UInt64(GARTCacheControl.pteError) == 0)
    }
}
