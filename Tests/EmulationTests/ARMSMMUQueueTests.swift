import Emulation
import Testing

@Suite struct ARMSMMUQueueTests {
    @Test func aChangedSTEIsIgnoredUntilCFGISTE() throws {
        var smmu = try HandBuiltSMMU()
        try smmu.writeSTE(ARMSMMUSTE.word0(config: .bypass))
        guard case .translated = smmu.translate(0x1000) else { Issue.record("bypass faulted"); return }
        try smmu.writeSTE(ARMSMMUSTE.word0(config: .abort))
        guard case .translated = smmu.translate(0x1000) else { Issue.record("the cached STE was not used"); return }
        // CFGI_STE for another stream changes nothing; for this one it does.
        try smmu.command((ARMSMMUCommand.configInvalidateSTE | 0x42 << 32, 1), smmu.sync)
        guard case .translated = smmu.translate(0x1000) else { Issue.record("an unrelated CFGI dropped the STE"); return }
        try smmu.command((ARMSMMUCommand.configInvalidateSTE | UInt64(smmu.streamID) << 32, 1), smmu.sync)
        #expect(smmu.translate(0x1000) == .faulted(.blocked))
        #expect(smmu.unit.statistics.configInvalidations == 2)
    }

    @Test func aClearedLeafKeepsTranslatingUntilTLBIAndSync() throws {
        var smmu = try HandBuiltSMMU()
        let root = try smmu.attachStage1(granule: .size4K, asid: 7)
        try smmu.map(0x5000, leaf: 0x9000_0000 | HandBuiltSMMU.pageBits, level: 3, granule: .size4K, root: root)
        _ = smmu.translate(0x5000)
        try smmu.map(0x5000, leaf: 0, level: 3, granule: .size4K, root: root) // clear it without telling the unit
        #expect(smmu.translate(0x5000)
            == .translated(Translation(physical: PhysicalAddress(0x9000_0000), contiguousBytes: 0x1000, cached: true)))
        // The same address under another ASID is a different translation.
        try smmu.command((ARMSMMUCommand.tlbiNonHypVA | 8 << 48, 0x5000 | 1), smmu.sync)
        guard case .translated = smmu.translate(0x5000) else { Issue.record("TLBI of ASID 8 dropped ASID 7"); return }
        #expect(try smmu.memory.load64(smmu.syncWord) == 0xC0DE) // CMD_SYNC signalled completion by a write
        try smmu.memory.store64(smmu.syncWord, 0)
        try smmu.command((ARMSMMUCommand.tlbiNonHypVA | 7 << 48, 0x5000 | 1), smmu.sync)
        #expect(try smmu.memory.load64(smmu.syncWord) == 0xC0DE)
        #expect(smmu.translate(0x5000) == .faulted(.notPresent))
        #expect(smmu.unit.statistics.addressInvalidations == 2)
        #expect(smmu.unit.readRegister(ARMSMMURegister.commandQueueConsumer) == smmu.commandProducer)
    }

    @Test func rangeAndASIDInvalidationsDropExactlyTheirEntries() throws {
        var smmu = try HandBuiltSMMU()
        let root = try smmu.attachStage1(granule: .size16K, asid: 3)
        for page in 0..<8 as Range<UInt64> {
            try smmu.map(page << 14, leaf: (0x1000_0000 + page << 14) | HandBuiltSMMU.pageBits, level: 3,
                         granule: .size16K, root: root)
            _ = smmu.translate(page << 14)
        }
        #expect(smmu.unit.tlbOccupancy == 8)
        // Range: TG = 16K (0b10), NUM = 2 (3 granules), SCALE = 1: 6 pages from page 1.
        try smmu.command((ARMSMMUCommand.tlbiNonHypVA | 2 << 12 | 1 << 20 | 3 << 48, 1 << 14 | 2 << 10 | 1), smmu.sync)
        #expect(smmu.unit.tlbOccupancy == 2)
        #expect(smmu.unit.statistics.tlbEntriesDropped == 6)
        try smmu.command((ARMSMMUCommand.tlbiNonHypASID | 4 << 48, 0), smmu.sync)
        #expect(smmu.unit.tlbOccupancy == 2)
        try smmu.command((ARMSMMUCommand.tlbiNonHypASID | 3 << 48, 0), smmu.sync)
        #expect(smmu.unit.tlbOccupancy == 0)
        #expect(smmu.unit.statistics.asidInvalidations == 2)
    }

    @Test func eventsCarryStreamIDAddressAndDirectionAndTheQueueOverflowsBoundedly() throws {
        var smmu = try HandBuiltSMMU(eventLog2: 2) // four records
        _ = try smmu.attachStage1(granule: .size4K)
        for page in 0..<10 as Range<UInt64> { _ = smmu.translate(page << 12 | 0x24, page % 2 == 0 ? .read : .write) }
        let stats = smmu.unit.statistics
        #expect(stats.eventsRecorded == 4)
        #expect(stats.eventsLost == 6)
        #expect(smmu.interrupts.value == 10)
        for index in 0..<4 as Range<UInt64> {
            #expect(try smmu.event(index) == ARMSMMUEvent(type: .translation, streamID: smmu.streamID, isRead: index % 2 == 0,
                                                          address: index << 12 | 0x24))
        }
        // PROD = 4 with the wrap bit (index 0, wrap 1) and OVFLG toggled once.
        let producer = smmu.unit.readRegister(ARMSMMURegister.eventQueueProducer)
        #expect(producer == 1 << 2 | ARMSMMUQueue.overflowFlag)
        // The driver consumes everything and acknowledges the overflow: the next event fits again.
        smmu.unit.writeRegister(ARMSMMURegister.eventQueueConsumer, producer)
        _ = smmu.translate(0x7_7000)
        #expect(smmu.unit.statistics.eventsRecorded == 5)
        #expect(try smmu.event(0)?.address == 0x7_7000)
        #expect(smmu.unit.readRegister(ARMSMMURegister.eventQueueProducer) == (1 << 2 | 1) | ARMSMMUQueue.overflowFlag)
    }

    @Test func faultsOfAContextThatDoesNotRecordThemLeaveNoEvent() throws {
        var smmu = try HandBuiltSMMU()
        _ = try smmu.attachStage1(granule: .size4K, extra: 0) // CD.R = 0
        #expect(smmu.translate(0x1000) == .faulted(.notPresent))
        #expect(smmu.unit.statistics.eventsRecorded == 0)
        #expect(smmu.unit.statistics.faultsNotRecorded == 1)
        #expect(smmu.interrupts.value == 0)
    }

    @Test func anIllegalCommandStopsTheQueueUntilTheErrorIsAcknowledged() throws {
        var smmu = try HandBuiltSMMU()
        try smmu.command((0x7F, 0), smmu.sync)
        let consumer = smmu.unit.readRegister(ARMSMMURegister.commandQueueConsumer)
        #expect(consumer & 0xFF == 0) // stopped on the bad command
        #expect(consumer >> 24 & 0x7F == ARMSMMUCommandError.illegal.rawValue)
        let gerror = smmu.unit.readRegister(ARMSMMURegister.globalError)
        #expect((gerror ^ smmu.unit.readRegister(ARMSMMURegister.globalErrorAck)) & ARMSMMUGlobalError.commandQueueError != 0)
        #expect(try smmu.memory.load64(smmu.syncWord) == 0)
        // Replace the command by a CMD_SYNC and acknowledge: the queue resumes.
        try smmu.memory.store64(smmu.commandQueue, ARMSMMUCommand.sync)
        smmu.unit.writeRegister(ARMSMMURegister.globalErrorAck, gerror)
        #expect(smmu.unit.readRegister(ARMSMMURegister.commandQueueConsumer) == 2)
        #expect(try smmu.memory.load64(smmu.syncWord) == 0xC0DE)
        #expect(smmu.unit.statistics.commandErrors == 1)
    }

    @Test func withTheEventQueueDisabledFaultsAreDiscarded() throws {
        var smmu = try HandBuiltSMMU()
        _ = try smmu.attachStage1(granule: .size4K)
        smmu.unit.writeRegister(ARMSMMURegister.cr0, ARMSMMUControl.smmuEnable | ARMSMMUControl.commandQueueEnable)
        #expect(smmu.translate(0x1000) == .faulted(.notPresent))
        #expect(smmu.unit.statistics.eventsDiscarded == 1)
        #expect(smmu.unit.readRegister(ARMSMMURegister.eventQueueProducer) == 0)
    }
}
