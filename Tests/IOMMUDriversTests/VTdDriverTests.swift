import Emulation
import IOMMUCore
import IOMMUDrivers
import Synchronization
import Testing

/// One VT-d unit covering a few devices, with the IOMMU-API on top.
struct VTdBed {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let bus: PlatformBus
    let unit: VTdUnit
    let subsystem: IOMMUSubsystem
    let nic: PCIDevice
    let usb: PCIDevice
    let behindBridgeA: PCIDevice
    let behindBridgeB: PCIDevice
    static let rmrr = ReservedRegion(range: 0x7F00_0000...0x7F00_3FFF, kind: .direct, permissions: .read, source: "RMRR")

    init(policy: DefaultDomainPolicy = .init()) throws {
        memory = try PhysicalMemory(size: 8 << 30)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0x7EFF_FFFF),
                                                                   PhysicalAddress(1 << 32)...PhysicalAddress((8 << 30) - 1)])
        bus = PlatformBus(memory: memory)
        unit = VTdUnit(name: "dmar0", memory: memory)
        nic = PCIDevice(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "nic", memory: memory)
        usb = PCIDevice(address: try PCIAddress(bus: 0, device: 0x14, function: 0), name: "usb", memory: memory)
        let bridge = try PCIAddress(bus: 4, device: 0, function: 0)
        behindBridgeA = PCIDevice(address: try PCIAddress(bus: 5, device: 1, function: 0), name: "old-a",
                                  requesterAlias: bridge, memory: memory)
        behindBridgeB = PCIDevice(address: try PCIAddress(bus: 5, device: 2, function: 0), name: "old-b",
                                  requesterAlias: bridge, memory: memory)
        let driver = try VTdDriver(units: [VTdUnitScope(unit: unit, includesAll: true)], pages: pages,
                                   directRegions: [usb.address: [Self.rmrr]])
        subsystem = IOMMUSubsystem(policy: policy)
        subsystem.register(driver)
        for device in [nic, usb, behindBridgeA, behindBridgeB] {
            try bus.plug(device, behind: unit)
            try subsystem.addDevice(device)
        }
    }

    func domain(of device: PCIDevice) throws -> IOMMUDomain {
        try #require(subsystem.device(at: device.address)?.domain)
    }
}

@Suite struct VTdDriverTests {
    @Test func everyDeviceGetsADefaultDomainThatReportsItsCapabilities() throws {
        let bed = try VTdBed()
        let domain = try bed.domain(of: bed.nic)
        #expect(domain.kind == .dma)
        #expect(domain.geometry.aperture == 0...((1 << 48) - 1))
        #expect(domain.geometry.outside == .blocked)
        #expect(domain.pageSizes.sizes == [PageSize.size4K, PageSize.size2M, PageSize.size1G])
        let regions = try #require(bed.subsystem.device(at: bed.nic.address)).reservedRegions
        #expect(regions.contains(ReservedRegion.x86MSIWindow))
    }

    @Test func devicesBehindOneBridgeShareAGroupAndADomain() throws {
        let bed = try VTdBed()
        let a = try #require(bed.subsystem.device(at: bed.behindBridgeA.address))
        let b = try #require(bed.subsystem.device(at: bed.behindBridgeB.address))
        #expect(a.group === b.group)
        #expect(a.domain === b.domain)
        #expect(bed.subsystem.groups.count == 3)
        #expect(throws: IOMMUError.deviceAlreadyAdded(bed.nic.address)) { try bed.subsystem.addDevice(bed.nic) }
    }

    @Test func deviceDMAsIntoAMappedBufferAndTheCPUReadsIt() throws {
        let bed = try VTdBed()
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate(pages: 2)
        try domain.map(iova: IOVirtualAddress(0x10_0000), physical: buffer, size: 0x2000, permissions: .write)
        let data = (0..<0x1800).map { UInt8(truncatingIfNeeded: $0 * 7) }
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x10_0400), bytes: data).completed)
        #expect(try bed.memory.read(buffer + 0x400, count: data.count) == data)
        #expect(domain.translate(IOVirtualAddress(0x10_1234)) == buffer + 0x1234)
    }

    @Test func unmappedOrWronglyPermittedAccessFaultsIsLoggedAndDeliveredAndChangesNothing() throws {
        let bed = try VTdBed()
        let domain = try bed.domain(of: bed.nic)
        let delivered = Mutex<[IOMMUFault]>([])
        domain.setFaultHandler { fault in delivered.withLock { $0.append(fault) } }
        let buffer = try bed.pages.allocate()
        try bed.memory.write(buffer, bytes: [1, 2, 3, 4])
        try domain.map(iova: IOVirtualAddress(0x4000), physical: buffer, size: 0x1000, permissions: .read)

        let write = bed.nic.engine.write(to: IOVirtualAddress(0x4000), bytes: [9, 9, 9, 9])
        #expect(write.fault?.reason == .permissionDenied)
        let stray = bed.nic.engine.read(from: IOVirtualAddress(0x9000), count: 4)
        #expect(stray.result.fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 4) == [1, 2, 3, 4])

        let faults = delivered.withLock { $0 }
        #expect(faults.map(\.address) == [0x4000, 0x9000])
        #expect(faults.map(\.access) == ["write", "read"])
        #expect(faults.allSatisfy { $0.requester == bed.nic.address && $0.unit == "dmar0" })
        #expect(faults[0].hardwareReason.contains("0x5"))
        #expect(bed.unit.statistics.faultsRecorded == 2)
        // The driver drained the records: the log is empty again.
        #expect(bed.unit.readRegister(VTdRegister.faultStatus) & UInt64(VTdFaultStatus.primaryPendingFault) == 0)
    }

    @Test func afterUnmapWithoutInvalidationTheIOTLBStillTranslatesAndAfterItFaults() throws {
        let bed = try VTdBed()
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate()
        try domain.map(iova: IOVirtualAddress(0x8000), physical: buffer, size: 0x1000, permissions: .readWrite)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [1]).completed) // fills the IOTLB
        var gather = IOTLBGather()
        try domain.unmap(iova: IOVirtualAddress(0x8000), size: 0x1000, gather: &gather)
        #expect(domain.translate(IOVirtualAddress(0x8000)) == nil)
        let stale = bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [2])
        #expect(stale.completed) // the hardware used its stale IOTLB entry
        #expect(try bed.memory.read(buffer, count: 1) == [2])
        domain.flush(gather)
        let after = bed.nic.engine.write(to: IOVirtualAddress(0x8000), bytes: [3])
        #expect(after.fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 1) == [2])
    }

    @Test func directRegionsAreIdentityMappedBeforeAttach() throws {
        let bed = try VTdBed()
        let domain = try bed.domain(of: bed.usb)
        #expect(domain.translate(IOVirtualAddress(0x7F00_2345)) == PhysicalAddress(0x7F00_2345))
        #expect(domain.lookup(0x7F00_2000)?.permissions == .read)
        try bed.memory.write(PhysicalAddress(0x7F00_0000), bytes: [0x55])
        #expect(bed.usb.engine.read(from: IOVirtualAddress(0x7F00_0000), count: 1).bytes == [0x55])
        #expect(bed.usb.engine.write(to: IOVirtualAddress(0x7F00_0000), bytes: [1]).fault?.reason == .permissionDenied)
    }

    @Test func identityAndBlockedDomainsBehaveAsNamed() throws {
        let bed = try VTdBed(policy: DefaultDomainPolicy(overrides: [
            try PCIAddress(bus: 1, device: 0, function: 0): .identity,
            try PCIAddress(bus: 0, device: 0x14, function: 0): .blocked,
        ]))
        #expect(try bed.domain(of: bed.nic).kind == .identity)
        try bed.memory.write(PhysicalAddress(0x20_0000), bytes: [7])
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x20_0000), count: 1).bytes == [7])
        #expect(try bed.domain(of: bed.usb).kind == .blocked)
        #expect(bed.usb.engine.read(from: IOVirtualAddress(0x20_0000), count: 1).result.fault?.reason == .requesterNotConfigured)
        #expect(throws: IOMMUError.domainDoesNotTranslate(.identity)) {
            try bed.domain(of: bed.nic).map(iova: IOVirtualAddress(0), physical: PhysicalAddress(0), size: 4096, permissions: .read)
        }
    }

    @Test func anUnmanagedDomainTakesOverTheGroupUntilReleased() throws {
        let bed = try VTdBed()
        let managed = try #require(bed.subsystem.device(at: bed.nic.address))
        let user = try bed.subsystem.makeDomain(.unmanaged, for: bed.nic.address)
        let buffer = try bed.pages.allocate()
        try user.map(iova: IOVirtualAddress(0x1000), physical: buffer, size: 0x1000, permissions: .readWrite)
        try bed.subsystem.attach(managed.group, to: user, owner: "vfio")
        #expect(managed.group.isClaimed)
        #expect(throws: IOMMUError.groupOwned(group: managed.group.identifier, by: "vfio")) {
            try bed.subsystem.attach(managed.group, to: user, owner: "someone-else")
        }
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [4]).completed)
        try bed.subsystem.release(managed.group, owner: "vfio")
        #expect(managed.domain === managed.group.defaultDomain)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [5]).fault != nil)
    }

    @Test func removedDeviceLosesItsContextEntry() throws {
        let bed = try VTdBed()
        let domain = try bed.domain(of: bed.nic)
        try domain.map(iova: IOVirtualAddress(0x1000), physical: try bed.pages.allocate(), size: 0x1000, permissions: .readWrite)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [1]).completed)
        try bed.subsystem.removeDevice(bed.nic.address)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x1000), bytes: [1]).fault?.reason == .requesterNotConfigured)
        #expect(throws: IOMMUError.deviceNotManaged(bed.nic.address)) { try bed.subsystem.removeDevice(bed.nic.address) }
    }
}
