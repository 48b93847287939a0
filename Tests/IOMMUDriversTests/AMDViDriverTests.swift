import Emulation
import IOMMUCore
import IOMMUDrivers
import IOPageTable
import Synchronization
import Testing

/// One AMD-Vi unit covering a few devices, with the IOMMU-API on top.
struct AMDViBed {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let bus: PlatformBus
    let unit: AMDViUnit
    let driver: AMDViDriver
    let subsystem: IOMMUSubsystem
    let nic: PCIDevice
    let usb: PCIDevice
    let storage: PCIDevice
    static let unity = ReservedRegion(range: 0x7F00_0000...0x7F00_3FFF, kind: .direct, permissions: .read, source: "IVMD")
    static let exclusion: ClosedRange<UInt64> = 0x6000_0000...0x6000_FFFF

    init(policy: DefaultDomainPolicy = .init(), options: AMDViDriverOptions = .init(),
         exclusions: [AMDViExclusionRange]? = nil) throws {
        memory = try PhysicalMemory(size: 8 << 30)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0x5FFF_FFFF),
                                                                   PhysicalAddress(1 << 32)...PhysicalAddress((8 << 30) - 1)])
        bus = PlatformBus(memory: memory)
        unit = AMDViUnit(name: "amd-vi0", memory: memory)
        nic = PCIDevice(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "nic", memory: memory)
        usb = PCIDevice(address: try PCIAddress(bus: 0, device: 0x14, function: 0), name: "usb", memory: memory)
        storage = PCIDevice(address: try PCIAddress(bus: 2, device: 0, function: 0), name: "nvme", memory: memory)
        let ranges = exclusions ?? [AMDViExclusionRange(range: Self.exclusion, devices: [storage.address])]
        driver = try AMDViDriver(units: [AMDViUnitScope(unit: unit, includesAll: true, exclusionRanges: ranges)],
                                 pages: pages, unityRanges: [usb.address: [Self.unity]], options: options)
        subsystem = IOMMUSubsystem(policy: policy)
        subsystem.register(driver)
        for device in [nic, usb, storage] {
            try bus.plug(device, behind: unit)
            try subsystem.addDevice(device)
        }
    }

    func domain(of device: PCIDevice) throws -> IOMMUDomain {
        try #require(subsystem.device(at: device.address)?.domain)
    }
}

@Suite struct AMDViDriverTests {
    @Test func defaultDomainsReportAThreeLevelApertureAndEveryPageSizeButThe512GErratum() throws {
        let bed = try AMDViBed()
        let domain = try #require(try bed.domain(of: bed.nic) as? AMDViDomain)
        #expect(domain.kind == .dma)
        #expect(domain.geometry.aperture == 0...((1 << 39) - 1))
        #expect(domain.geometry.outside == .blocked)
        #expect(domain.pageSizes.bitmap == AMDViPageTableEncoding.pageSizes(levels: 3))
        #expect(domain.pageSizes.smallest == 4096)
        #expect(domain.table?.levels == 3)
        #expect(domain.usesLeafArray)
        let regions = try #require(bed.subsystem.device(at: bed.nic.address)).reservedRegions
        #expect(regions.contains(ReservedRegion.x86MSIWindow))
        #expect(regions.contains(AMDViDriver.hyperTransportHole))

        let widest = try AMDViBed(options: AMDViDriverOptions(widestAddressSpace: true))
        let wide = try #require(try widest.domain(of: widest.nic) as? AMDViDomain)
        #expect(wide.table?.levels == 6)
        #expect(wide.geometry.aperture == 0...UInt64.max)
    }

    @Test func deviceDMAsThroughANextLevelSevenPageAndTheCPUReadsIt() throws {
        let bed = try AMDViBed()
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate(pages: 16, alignment: 1 << 16)
        try domain.map(iova: IOVirtualAddress(0x10_0000), physical: buffer, size: 1 << 16, permissions: .write)
        #expect(domain.lookup(0x10_0000)?.pageSize == 1 << 16)
        let data = (0..<0x3000).map { UInt8(truncatingIfNeeded: $0 * 13) }
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x10_0800), bytes: data).completed)
        #expect(try bed.memory.read(buffer + 0x800, count: data.count) == data)
        #expect(bed.unit.statistics.pageWalks == 1) // one IOTLB entry for the whole 64 KiB page
    }

    @Test func unityRangesAreMappedOneToOneBeforeAttach() throws {
        let bed = try AMDViBed()
        let domain = try bed.domain(of: bed.usb)
        #expect(domain.translate(IOVirtualAddress(0x7F00_2345)) == PhysicalAddress(0x7F00_2345))
        #expect(domain.lookup(0x7F00_3000)?.permissions == .read)
        try bed.memory.write(PhysicalAddress(0x7F00_0000), bytes: [0x55])
        #expect(bed.usb.engine.read(from: IOVirtualAddress(0x7F00_0000), count: 1).bytes == [0x55])
        #expect(bed.usb.engine.write(to: IOVirtualAddress(0x7F00_0000), bytes: [1]).fault?.reason == .permissionDenied)
        #expect(try bed.subsystem.device(at: bed.usb.address)?.reservedRegions.contains(AMDViBed.unity) == true)
    }

    @Test func faultsAreReadFromTheEventLogAndDeliveredToTheDomain() throws {
        let bed = try AMDViBed()
        let domain = try bed.domain(of: bed.nic)
        let delivered = Mutex<[IOMMUFault]>([])
        domain.setFaultHandler { fault in delivered.withLock { $0.append(fault) } }
        let buffer = try bed.pages.allocate()
        try bed.memory.write(buffer, bytes: [1, 2, 3, 4])
        try domain.map(iova: IOVirtualAddress(0x4000), physical: buffer, size: 0x1000, permissions: .read)

        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x4000), bytes: [9, 9, 9, 9]).fault?.reason == .permissionDenied)
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x9000), count: 4).result.fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 4) == [1, 2, 3, 4])

        let faults = delivered.withLock { $0 }
        #expect(faults.map(\.address) == [0x4000, 0x9000])
        #expect(faults.map(\.access) == ["write", "read"])
        #expect(faults.map(\.reason) == [.permissionDenied, .notPresent])
        #expect(faults.allSatisfy { $0.requester == bed.nic.address && $0.unit == "amd-vi0" })
        #expect(faults[0].hardwareReason.contains("IO_PAGE_FAULT"))
        // The driver consumed the log: head caught up with tail.
        #expect(bed.unit.readRegister(AMDViRegister.eventLogHead) == bed.unit.readRegister(AMDViRegister.eventLogTail))
    }

    @Test func moreFaultsThanTheLogHoldsAreAllDeliveredBecauseTheDriverDrainsAsTheyCome() throws {
        let bed = try AMDViBed()
        for page in UInt64(0)..<600 { _ = bed.nic.engine.read(from: IOVirtualAddress(0x100_0000 + page << 12), count: 1) }
        #expect(bed.subsystem.faultCount == 600)
        #expect(bed.unit.statistics.eventsOverflowed == 0)
    }

    @Test func aFaultHandlerThatMakesTheDeviceFaultAgainGetsThatFaultToo() throws {
        let bed = try AMDViBed()
        let domain = try bed.domain(of: bed.nic)
        let seen = Mutex<[UInt64]>([])
        let nic = bed.nic
        domain.setFaultHandler { fault in
            let count = seen.withLock { $0.append(fault.address); return $0.count }
            if count == 1 { _ = nic.engine.read(from: IOVirtualAddress(0x7000), count: 1) } // faults from inside the handler
        }
        _ = bed.nic.engine.read(from: IOVirtualAddress(0x6000), count: 1)
        #expect(seen.withLock { $0 } == [0x6000, 0x7000])
    }

    @Test func afterUnmapWithoutInvalidationTheIOTLBStillTranslatesAndAfterItFaults() throws {
        let bed = try AMDViBed()
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate()
        try domain.map(iova: IOVirtualAddress(0x8000), physical: buffer, size: 0x1000, permissions: .readWrite)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [1]).completed)
        var gather = IOTLBGather()
        try domain.unmap(iova: IOVirtualAddress(0x8000), size: 0x1000, gather: &gather)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [2]).completed) // stale IOTLB entry
        domain.flush(gather)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [3]).fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 1) == [2])
    }

    @Test func identityAndBlockedDomainsBehaveAsNamed() throws {
        let bed = try AMDViBed(policy: DefaultDomainPolicy(overrides: [
            try PCIAddress(bus: 1, device: 0, function: 0): .identity,
            try PCIAddress(bus: 0, device: 0x14, function: 0): .blocked,
        ]))
        #expect(try bed.domain(of: bed.nic).kind == .identity)
        try bed.memory.write(PhysicalAddress(0x20_0000), bytes: [7])
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x20_0000), count: 1).bytes == [7])
        #expect(try bed.domain(of: bed.usb).kind == .blocked)
        #expect(bed.usb.engine.read(from: IOVirtualAddress(0x20_0000), count: 1).result.fault?.reason == .blocked)
        #expect(bed.subsystem.recentFaults.last?.reason == .blocked)
    }

    @Test func theHardwareExclusionRangeBypassesTranslationAndIsReservedForItsDevice() throws {
        let bed = try AMDViBed()
        try bed.memory.write(PhysicalAddress(0x6000_1000), bytes: [0x42])
        #expect(bed.storage.engine.read(from: IOVirtualAddress(0x6000_1000), count: 1).bytes == [0x42])
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x6000_1000), count: 1).result.fault?.reason == .notPresent)
        let regions = try #require(bed.subsystem.device(at: bed.storage.address)).reservedRegions
        #expect(regions.contains { $0.range == AMDViBed.exclusion && $0.kind == .reserved })
        #expect(try bed.subsystem.device(at: bed.nic.address)?.reservedRegions.contains { $0.range == AMDViBed.exclusion } == false)
    }

    @Test func exclusionRangesBeyondTheOneRegisterAreUnityMapped() throws {
        let second: ClosedRange<UInt64> = 0x6100_0000...0x6100_1FFF
        let bed = try AMDViBed(exclusions: [AMDViExclusionRange(range: AMDViBed.exclusion),
                                            AMDViExclusionRange(range: second)])
        let domain = try bed.domain(of: bed.nic)
        #expect(domain.translate(IOVirtualAddress(0x6100_1234)) == PhysicalAddress(0x6100_1234))
        #expect(domain.lookup(0x6000_0000) == nil) // the hardware range is never mapped: the unit bypasses it (Allow)
        try bed.memory.write(PhysicalAddress(0x6000_0010), bytes: [5])
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x6000_0010), count: 1).bytes == [5])
        let kinds = try #require(bed.subsystem.device(at: bed.nic.address)).reservedRegions
            .filter { $0.source.contains("exclusion") }.map(\.kind)
        #expect(kinds == [.reserved, .directRelaxable])
    }

    @Test func removedDeviceIsBlockedAgain() throws {
        let bed = try AMDViBed()
        let domain = try bed.domain(of: bed.nic)
        try domain.map(iova: IOVirtualAddress(0x1000), physical: try bed.pages.allocate(), size: 0x1000, permissions: .readWrite)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [1]).completed)
        try bed.subsystem.removeDevice(bed.nic.address)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [1]).fault?.reason == .blocked)
    }
}
