import Emulation
import IOMMUCore
import IOMMUDrivers
import Synchronization
import Testing

/// One SMMU covering a few devices, with the IOMMU-API on top.
struct SMMUBed {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let bus: PlatformBus
    let unit: ARMSMMUUnit
    let driver: ARMSMMUDriver
    let subsystem: IOMMUSubsystem
    let nic: PCIDevice
    let usb: PCIDevice
    static let rmr = ReservedRegion(range: 0x7F00_0000...0x7F00_FFFF, kind: .direct, permissions: .read, source: "IORT RMR")

    init(granule: ARMTranslationGranule = .size4K, configuration: ARMSMMUUnitConfiguration = .init(),
         policy: DefaultDomainPolicy = .init()) throws {
        memory = try PhysicalMemory(size: 8 << 30)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0x7EFF_FFFF),
                                                                   PhysicalAddress(1 << 32)...PhysicalAddress((8 << 30) - 1)])
        bus = PlatformBus(memory: memory)
        unit = ARMSMMUUnit(name: "smmu0", memory: memory, configuration: configuration)
        nic = PCIDevice(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "nic", memory: memory)
        usb = PCIDevice(address: try PCIAddress(bus: 0, device: 0x14, function: 0), name: "usb", memory: memory)
        driver = try ARMSMMUDriver(units: [ARMSMMUUnitScope(unit: unit, includesAll: true, granule: granule)], pages: pages,
                                   directRegions: [usb.address: [Self.rmr]])
        subsystem = IOMMUSubsystem(policy: policy)
        subsystem.register(driver)
        for device in [nic, usb] {
            try bus.plug(device, behind: unit)
            try subsystem.addDevice(device)
        }
    }

    func domain(of device: PCIDevice) throws -> IOMMUDomain {
        try #require(subsystem.device(at: device.address)?.domain)
    }
}

@Suite struct ARMSMMUDriverTests {
    @Test(arguments: ARMTranslationGranule.allCases)
    func defaultDomainsDescribeTheGranuleAndDMAArrives(granule: ARMTranslationGranule) throws {
        let bed = try SMMUBed(granule: granule)
        let domain = try bed.domain(of: bed.nic)
        #expect(domain.kind == .dma)
        #expect(domain.geometry.aperture == 0...((1 << 48) - 1))
        #expect(domain.geometry.outside == .blocked)
        let expected: [UInt64] = switch granule {
        case .size4K: [1 << 12, 1 << 21, 1 << 30]
        case .size16K: [1 << 14, 1 << 25]
        case .size64K: [1 << 16, 1 << 29]
        }
        #expect(domain.pageSizes.sizes == expected)
        let size = granule.rawValue * 2
        let buffer = try bed.pages.allocate(pages: size >> 12, alignment: granule.rawValue)
        try domain.map(iova: IOVirtualAddress(0x40_0000_0000), physical: buffer, size: size, permissions: .readWrite)
        let data = (0..<Int(granule.rawValue)).map { UInt8(truncatingIfNeeded: $0 * 13) }
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x40_0000_0000 + granule.rawValue / 2), bytes: data).completed)
        #expect(try bed.memory.read(buffer + granule.rawValue / 2, count: data.count) == data)
        // The largest block of the granule is used when size and alignment allow.
        let block = expected[expected.count - 1]
        try domain.map(iova: IOVirtualAddress(block * 4), physical: PhysicalAddress(1 << 32), size: block, permissions: .read)
        #expect(domain.lookup(block * 4 + 0x1234)?.pageSize == block)
        #expect(bed.nic.engine.read(from: IOVirtualAddress(block * 4 + block - 8), count: 8).result.completed)
        #expect(throws: IOMMUError.outsideAperture(iova: 1 << 48, size: granule.rawValue, aperture: 0...((1 << 48) - 1))) {
            try domain.map(iova: IOVirtualAddress(1 << 48), physical: buffer, size: granule.rawValue, permissions: .read)
        }
    }

    @Test func aGranuleTheUnitLacksIsRefused() throws {
        var configuration = ARMSMMUUnitConfiguration()
        configuration.granules = [.size4K]
        #expect(throws: IOMMUError.hardware("smmu0 does not support the 64K granule")) {
            try SMMUBed(granule: .size64K, configuration: configuration)
        }
    }

    @Test func faultsReachTheDomainWithStreamIDAddressAndDirectionAndChangeNothing() throws {
        let bed = try SMMUBed()
        let domain = try bed.domain(of: bed.nic)
        let delivered = Mutex<[IOMMUFault]>([])
        domain.setFaultHandler { fault in delivered.withLock { $0.append(fault) } }
        let buffer = try bed.pages.allocate()
        try bed.memory.write(buffer, bytes: [1, 2, 3, 4])
        try domain.map(iova: IOVirtualAddress(0x4000), physical: buffer, size: 0x1000, permissions: .read)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x4010), bytes: [9, 9]).fault?.reason == .permissionDenied)
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x9000), count: 4).result.fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 4) == [1, 2, 3, 4])
        let faults = delivered.withLock { $0 }
        #expect(faults.map(\.address) == [0x4010, 0x9000])
        #expect(faults.map(\.access) == ["write", "read"])
        #expect(faults.map(\.reason) == [.permissionDenied, .notPresent])
        #expect(faults.allSatisfy { $0.requester == bed.nic.address && $0.unit == "smmu0" })
        #expect(faults[0].hardwareReason.contains("F_PERMISSION"))
        #expect(faults[1].hardwareReason.contains("F_TRANSLATION"))
        // The driver consumed the queue: CONS caught up with PROD.
        #expect(bed.unit.readRegister(ARMSMMURegister.eventQueueConsumer) & 0xFF
            == bed.unit.readRegister(ARMSMMURegister.eventQueueProducer) & 0xFF)
        #expect(bed.unit.statistics.eventsRecorded == 2)
    }

    @Test(arguments: ARMTranslationGranule.allCases)
    func theSoftwareMSIDoorbellIsReportedAndCanBeMappedOneToOne(granule: ARMTranslationGranule) throws {
        let bed = try SMMUBed(granule: granule)
        let regions = try #require(bed.subsystem.device(at: bed.nic.address)).reservedRegions
        #expect(regions.contains(ReservedRegion(range: 0x0800_0000...0x080F_FFFF, kind: .softwareMSI, permissions: .write,
                                                source: "SMMU software MSI doorbell")))
        #expect(!regions.contains { $0.kind == .msi }) // no x86 interrupt window on Arm
        let domain = try bed.domain(of: bed.nic)
        let doorbell = IOVirtualAddress(0x0800_0000)
        try domain.map(iova: doorbell, physical: PhysicalAddress(doorbell.value), size: granule.rawValue, permissions: .write)
        #expect(bed.nic.engine.write(to: doorbell + 0x40, bytes: [0x2A, 0, 0, 0]).completed)
        #expect(try bed.memory.read(PhysicalAddress(0x0800_0040), count: 4) == [0x2A, 0, 0, 0])
        try domain.unmap(iova: doorbell, size: granule.rawValue)
        #expect(bed.nic.engine.write(to: doorbell + 0x40, bytes: [7]).fault?.reason == .notPresent)
    }

    @Test func afterUnmapWithoutFlushTheTLBStillTranslatesAndAfterItFaults() throws {
        let bed = try SMMUBed()
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate()
        try domain.map(iova: IOVirtualAddress(0x8000), physical: buffer, size: 0x1000, permissions: .readWrite)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [1]).completed)
        var gather = IOTLBGather()
        try domain.unmap(iova: IOVirtualAddress(0x8000), size: 0x1000, gather: &gather)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [2]).completed) // stale TLB entry
        #expect(try bed.memory.read(buffer, count: 1) == [2])
        domain.flush(gather)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [3]).fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 1) == [2])
    }

    @Test(arguments: [true, false])
    func flushesUseRangesPagesOrTheWholeASID(rangeInvalidation: Bool) throws {
        var configuration = ARMSMMUUnitConfiguration()
        configuration.supportsRangeInvalidation = rangeInvalidation
        let bed = try SMMUBed(configuration: configuration)
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate(pages: 100)
        for (count, base) in [(3, 0x10_0000), (100, 0x20_0000)] as [(UInt64, UInt64)] {
            try domain.map(iova: IOVirtualAddress(base), physical: buffer, size: count << 12, permissions: .readWrite)
            for page in 0..<count {
                #expect(bed.nic.engine.write(to: IOVirtualAddress(base + page << 12), bytes: [1]).completed)
            }
            let before = bed.unit.statistics
            try domain.unmap(iova: IOVirtualAddress(base), size: count << 12)
            let after = bed.unit.statistics
            let commands = (after.addressInvalidations - before.addressInvalidations,
                            after.asidInvalidations - before.asidInvalidations)
            switch (rangeInvalidation, count) {
            case (true, _): #expect(commands == (1, 0)) // 3 = 3 × 2^0 and 100 = 25 × 2^2: one range command each
            case (false, 3): #expect(commands == (3, 0))
            default: #expect(commands == (0, 1))
            }
            for page in 0..<count {
                #expect(bed.nic.engine.write(to: IOVirtualAddress(base + page << 12), bytes: [1]).fault?.reason == .notPresent)
            }
        }
    }

    @Test func identityIsBypassBlockedIsAbortAndDirectRegionsAreMapped() throws {
        let bed = try SMMUBed(policy: DefaultDomainPolicy(overrides: [
            try PCIAddress(bus: 1, device: 0, function: 0): .identity,
        ]))
        #expect(try bed.domain(of: bed.nic).kind == .identity)
        try bed.memory.write(PhysicalAddress(0x20_0000), bytes: [7])
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x20_0000), count: 1).bytes == [7])
        let usbDomain = try bed.domain(of: bed.usb)
        #expect(usbDomain.translate(IOVirtualAddress(0x7F00_2345)) == PhysicalAddress(0x7F00_2345))
        #expect(bed.usb.engine.write(to: IOVirtualAddress(0x7F00_0000), bytes: [1]).fault?.reason == .permissionDenied)

        let blocked = try bed.subsystem.makeDomain(.blocked, for: bed.nic.address)
        let group = try #require(bed.subsystem.device(at: bed.nic.address)).group
        try bed.subsystem.attach(group, to: blocked, owner: "test")
        let events = bed.unit.statistics.eventsRecorded
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x20_0000), count: 1).result.fault?.reason == .blocked)
        #expect(bed.unit.statistics.eventsRecorded == events) // an abort STE terminates silently
        try bed.subsystem.release(group, owner: "test")
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x20_0000), count: 1).bytes == [7])
    }

    @Test func anUnmanagedDomainGetsItsOwnASIDAndARemovedDeviceIsAborted() throws {
        let bed = try SMMUBed()
        let managed = try #require(bed.subsystem.device(at: bed.nic.address))
        let user = try bed.subsystem.makeDomain(.unmanaged, for: bed.nic.address)
        let buffer = try bed.pages.allocate()
        try user.map(iova: IOVirtualAddress(0x1000), physical: buffer, size: 0x1000, permissions: .readWrite)
        try bed.subsystem.attach(managed.group, to: user, owner: "vfio")
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [4]).completed)
        try bed.subsystem.release(managed.group, owner: "vfio")
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [5]).fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 1) == [4])
        // Unmapping while detached must still reach the unit's TLB (tagged by ASID), or a re-attach finds it stale.
        try user.unmap(iova: IOVirtualAddress(0x1000), size: 0x1000)
        try bed.subsystem.attach(managed.group, to: user, owner: "vfio")
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [6]).fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 1) == [4])
        try bed.subsystem.release(managed.group, owner: "vfio")
        try bed.subsystem.removeDevice(bed.nic.address)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [1]).fault?.reason == .blocked)
    }
}
