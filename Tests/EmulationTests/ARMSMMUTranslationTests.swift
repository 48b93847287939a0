import Emulation
import Testing

@Suite struct ARMSMMUTranslationTests {
    @Test func idRegistersAdvertiseGranulesOutputSizeAndStage1() {
        var configuration = ARMSMMUUnitConfiguration()
        configuration.granules = [.size4K, .size64K]
        let unit = ARMSMMUUnit(name: "smmu", memory: try! PhysicalMemory(size: 1 << 20), configuration: configuration)
        // IDR5: OAS = 0b101 (48 bits), GRAN4K (bit 4), GRAN64K (bit 6).
        #expect(unit.readRegister(ARMSMMURegister.idr5) == 0b101 | 1 << 4 | 1 << 6)
        // IDR0: S1P (bit 1), TTF = AArch64 (0b10 at 3:2), COHACC (bit 4), ASID16 (bit 12).
        #expect(unit.readRegister(ARMSMMURegister.idr0) == 1 << 1 | 2 << 2 | 1 << 4 | 1 << 12)
        #expect(unit.readRegister(ARMSMMURegister.idr1) & 0x3F == 16)
        #expect(unit.readRegister(ARMSMMURegister.idr3) & 1 << 10 != 0)
    }

    @Test func walksA4KTableAndCachesTheTranslationByASID() throws {
        var smmu = try HandBuiltSMMU()
        let root = try smmu.attachStage1(granule: .size4K)
        try smmu.map(0x7_1234_5000, leaf: 0x8000_0000 | HandBuiltSMMU.pageBits, level: 3, granule: .size4K, root: root)
        #expect(smmu.translate(0x7_1234_5678, .write)
            == .translated(Translation(physical: PhysicalAddress(0x8000_0678), contiguousBytes: 0x988, cached: false)))
        #expect(smmu.translate(0x7_1234_5000)
            == .translated(Translation(physical: PhysicalAddress(0x8000_0000), contiguousBytes: 0x1000, cached: true)))
        #expect(smmu.unit.statistics.pageWalks == 1)
        #expect(smmu.unit.statistics.configCacheMisses == 1)
    }

    /// One block or page per granule and level, at an address whose every index is non-zero.
    @Test(arguments: [
        (ARMTranslationGranule.size4K, 1, UInt64(1) << 30), (.size4K, 2, 1 << 21), (.size4K, 3, 1 << 12),
        (.size16K, 2, 1 << 25), (.size16K, 3, 1 << 14),
        (.size64K, 2, 1 << 29), (.size64K, 3, 1 << 16),
    ])
    func translatesBlocksAndPagesAtEveryGranule(granule: ARMTranslationGranule, level: Int, size: UInt64) throws {
        var smmu = try HandBuiltSMMU()
        let root = try smmu.attachStage1(granule: granule)
        let iova: UInt64 = 0x8123_4567_8000 & ~(size - 1)
        let physical: UInt64 = 0x3_0000_0000 + size
        try smmu.map(iova, leaf: physical | (level == 3 ? HandBuiltSMMU.pageBits : HandBuiltSMMU.blockBits), level: level,
                     granule: granule, root: root)
        let offset = size / 2 + 0x18
        #expect(smmu.translate(iova + offset, .write)
            == .translated(Translation(physical: PhysicalAddress(physical + offset), contiguousBytes: size - offset,
                                       cached: false)))
        // The neighbouring page or block is not mapped.
        #expect(smmu.translate(iova + size) == .faulted(.notPresent))
        #expect(try smmu.event(0)?.type == .translation)
    }

    @Test func blocksWhereTheGranuleHasNoneAreTranslationFaults() throws {
        var smmu = try HandBuiltSMMU()
        let root = try smmu.attachStage1(granule: .size16K)
        // A 16K level-1 block (64 GiB) needs 52-bit addresses; with 48 bits it is invalid.
        try smmu.map(0x10_0000_0000, leaf: 0x10_0000_0000 | HandBuiltSMMU.blockBits, level: 1, granule: .size16K, root: root)
        #expect(smmu.translate(0x10_0000_0000) == .faulted(.notPresent))
        // A level-3 entry with bits 1:0 = 0b01 is reserved: also a translation fault.
        try smmu.map(0x4000, leaf: 0x8000 | HandBuiltSMMU.blockBits, level: 3, granule: .size16K, root: root)
        #expect(smmu.translate(0x4000) == .faulted(.notPresent))
        #expect(try smmu.event(1)?.type == .translation)
    }

    @Test func apBitsMakePagesReadOnlyOrUnreachableAndTheAccessFlagIsChecked() throws {
        var smmu = try HandBuiltSMMU()
        let root = try smmu.attachStage1(granule: .size4K)
        try smmu.map(0x1000, leaf: 0x9000 | HandBuiltSMMU.pageBits | 1 << 7, level: 3, granule: .size4K, root: root)
        try smmu.map(0x2000, leaf: 0xA000 | (HandBuiltSMMU.pageBits & ~(1 << 6)), level: 3, granule: .size4K, root: root)
        try smmu.map(0x3000, leaf: 0xB000 | (HandBuiltSMMU.pageBits & ~(1 << 10)), level: 3, granule: .size4K, root: root)
        try smmu.memory.store64(PhysicalAddress(0x9000), 0x1122)
        guard case .translated = smmu.translate(0x1000, .read) else { Issue.record("AP[2] page not readable"); return }
        #expect(smmu.translate(0x1000, .write) == .faulted(.permissionDenied))
        #expect(try smmu.event(0) == ARMSMMUEvent(type: .permission, streamID: smmu.streamID, isRead: false, address: 0x1000))
        // AP[1] clear: privileged only; device accesses are unprivileged.
        #expect(smmu.translate(0x2008, .read) == .faulted(.permissionDenied))
        #expect(try smmu.event(1) == ARMSMMUEvent(type: .permission, streamID: smmu.streamID, isRead: true, address: 0x2008))
        #expect(smmu.translate(0x3000, .read) == .faulted(.notPresent))
        #expect(try smmu.event(2)?.type == .access)
        #expect(try smmu.memory.load64(PhysicalAddress(0x9000)) == 0x1122)
    }

    @Test func accessFlagFaultsCanBeDisabledInTheCD() throws {
        var smmu = try HandBuiltSMMU()
        let root = try smmu.attachStage1(granule: .size4K, extra: ARMSMMUCD.recordFaults | ARMSMMUCD.accessFlagFaultDisable)
        try smmu.map(0x3000, leaf: 0xB000 | (HandBuiltSMMU.pageBits & ~(1 << 10)), level: 3, granule: .size4K, root: root)
        guard case .translated = smmu.translate(0x3000) else { Issue.record("AFFD did not disable the access flag fault"); return }
    }

    @Test func addressesBeyondT0SZFaultAndOutputAddressesBeyondIPSAreAddressSizeFaults() throws {
        var smmu = try HandBuiltSMMU()
        // 39-bit input space (the walk starts at level 1), 40-bit output (IPS = 0b010).
        let root = try smmu.attachStage1(granule: .size4K, t0sz: 25, ips: 2)
        #expect(smmu.translate(1 << 39) == .faulted(.beyondAddressWidth))
        #expect(try smmu.event(0) == ARMSMMUEvent(type: .translation, streamID: smmu.streamID, isRead: true, address: 1 << 39))
        try smmu.map(0x5000, leaf: (1 << 44) | HandBuiltSMMU.pageBits, level: 3, granule: .size4K, inputBits: 39, root: root)
        try smmu.map(0x6000, leaf: 0x6000 | HandBuiltSMMU.pageBits, level: 3, granule: .size4K, inputBits: 39, root: root)
        #expect(smmu.translate(0x5000) == .faulted(.beyondAddressWidth))
        #expect(try smmu.event(1)?.type == .addressSize)
        guard case .translated = smmu.translate(0x6000) else { Issue.record("a 39-bit walk failed"); return }
    }

    @Test func bypassPassesThroughAndAbortBlocksSilently() throws {
        let smmu = try HandBuiltSMMU()
        try smmu.writeSTE(ARMSMMUSTE.word0(config: .bypass))
        guard case let .translated(translation) = smmu.translate(0x1234_5678, .write) else {
            Issue.record("bypass STE faulted")
            return
        }
        #expect(translation.physical == PhysicalAddress(0x1234_5678))
        let other: UInt32 = 0x0100
        try smmu.writeSTE(ARMSMMUSTE.word0(config: .abort), for: other)
        #expect(smmu.unit.translate(IOVirtualAddress(0x1000), requester: PCIAddress(requesterID: 0x0100), access: .read)
            == .faulted(.blocked))
        #expect(smmu.unit.statistics.eventsRecorded == 0)
        #expect(smmu.unit.readRegister(ARMSMMURegister.eventQueueProducer) == 0)
        #expect(smmu.unit.statistics.faultsNotRecorded == 1)
    }

    @Test func badStreamTableEntriesAndContextDescriptorsAreReported() throws {
        var smmu = try HandBuiltSMMU()
        #expect(smmu.translate(0x1000) == .faulted(.invalidTable)) // V = 0
        #expect(try smmu.event(0) == ARMSMMUEvent(type: .badSTE, streamID: smmu.streamID, isRead: true, address: 0x1000))
        try smmu.writeSTE(1 | 0b110 << 1) // stage 2 only: this unit has no stage 2
        #expect(smmu.translate(0x1000) == .faulted(.invalidTable))
        #expect(try smmu.event(1)?.type == .badSTE)
        _ = try smmu.attachStage1(granule: .size4K)
        try smmu.memory.store64(smmu.contextDescriptor, try smmu.memory.load64(smmu.contextDescriptor) & ~ARMSMMUCD.valid)
        #expect(smmu.translate(0x1000) == .faulted(.invalidTable))
        #expect(try smmu.event(2)?.type == .badCD)
        try smmu.writeSTE(ARMSMMUSTE.word0(config: .stage1, contextDescriptor: 1 << 40)) // beyond memory
        #expect(smmu.translate(0x1000) == .faulted(.invalidTable))
        #expect(try smmu.event(3) == ARMSMMUEvent(type: .cdFetch, streamID: smmu.streamID, isRead: true, address: 1 << 40))
        // A StreamID beyond STRTAB_BASE_CFG.LOG2SIZE.
        smmu.unit.writeRegister(ARMSMMURegister.cr0, ARMSMMUControl.eventQueueEnable)
        smmu.unit.writeRegister(ARMSMMURegister.streamTableConfig, 8)
        smmu.unit.writeRegister(ARMSMMURegister.cr0, ARMSMMUControl.eventQueueEnable | ARMSMMUControl.smmuEnable)
        #expect(smmu.translate(0x1000) == .faulted(.requesterNotConfigured))
        #expect(try smmu.event(4)?.type == .badStreamID)
        // A stream table the unit cannot read: F_STE_FETCH with the STE's address.
        smmu.unit.writeRegister(ARMSMMURegister.cr0, ARMSMMUControl.eventQueueEnable)
        smmu.unit.writeRegister(ARMSMMURegister.streamTableBase, 1 << 40)
        smmu.unit.writeRegister(ARMSMMURegister.streamTableConfig, 16)
        smmu.unit.writeRegister(ARMSMMURegister.cr0, ARMSMMUControl.eventQueueEnable | ARMSMMUControl.smmuEnable)
        #expect(smmu.translate(0x1000) == .faulted(.invalidTable))
        #expect(try smmu.event(5) == ARMSMMUEvent(type: .steFetch, streamID: smmu.streamID, isRead: true,
                                                  address: 1 << 40 + UInt64(smmu.streamID) * 64))
        #expect(smmu.interrupts.value == 6)
    }

    @Test func disabledUnitFollowsGBPA() throws {
        let smmu = try HandBuiltSMMU()
        smmu.unit.writeRegister(ARMSMMURegister.cr0, 0)
        guard case .translated = smmu.translate(0x5000) else { Issue.record("GBPA bypass faulted"); return }
        smmu.unit.writeRegister(ARMSMMURegister.gbpa, ARMSMMUGlobalBypass.update | ARMSMMUGlobalBypass.abort)
        #expect(smmu.translate(0x5000) == .faulted(.blocked))
    }
}
