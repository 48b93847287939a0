import Emulation
import IOMMUCore
import IOMMUDrivers
import Synchronization
import Testing

/// One GART (512 MiB aperture at 0xC0000000, placed as the BIOS would) over
/// three devices, with the IOMMU-API on top.
struct GARTBed {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let unit: GARTUnit
    let driver: GARTDriver
    let subsystem: IOMMUSubsystem
    let nic: PCIDevice
    let usb: PCIDevice
    let storage: PCIDevice
    static let outsideRMRR = ReservedRegion(range: 0x7F00_0000...0x7F00_3FFF, kind: .direct, source: "RMRR below the aperture")
    static let insideRMRR = ReservedRegion(range: 0xC000_0000...0xC000_1FFF, kind: .direct, source: "firmware range in the aperture")

    init(policy: DefaultDomainPolicy = .init(), apertureBase: UInt64 = 0xC000_0000, apertureOrder: UInt64 = 4,
         storageRegions: [ReservedRegion] = []) throws {
        memory = try PhysicalMemory(size: 8 << 30)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0x7EFF_FFFF),
                                                                   PhysicalAddress(1 << 32)...PhysicalAddress((8 << 30) - 1)])
        unit = GARTUnit(name: "gart0", memory: memory)
        unit.writeRegister(GARTRegister.apertureControl, apertureOrder << 1)
        unit.writeRegister(GARTRegister.apertureBase, apertureBase >> 25)
        nic = PCIDevice(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "nic", memory: memory)
        usb = PCIDevice(address: try PCIAddress(bus: 0, device: 0x14, function: 0), name: "usb", memory: memory)
        storage = PCIDevice(address: try PCIAddress(bus: 2, device: 0, function: 0), name: "disk", memory: memory)
        driver = try GARTDriver(units: [GARTUnitScope(unit: unit, includesAll: true)], pages: pages,
                                directRegions: [usb.address: [Self.outsideRMRR], storage.address: storageRegions])
        subsystem = IOMMUSubsystem(policy: policy)
        subsystem.register(driver)
        for device in [nic, usb, storage] {
            device.engine.translationUnit = unit
            try subsystem.addDevice(device)
        }
    }

    func domain(of device: PCIDevice) throws -> IOMMUDomain { try #require(subsystem.device(at: device.address)?.domain) }
}

@Suite struct GARTDriverTests {
    @Test func everyDeviceSharesOneGroupAndADomainThatReportsTheAperture() throws {
        let bed = try GARTBed()
        #expect(bed.subsystem.groups.count == 1)
        let domains = try [bed.nic, bed.usb, bed.storage].map { try bed.domain(of: $0) }
        #expect(domains.allSatisfy { $0 === domains[0] })
        let domain = domains[0]
        #expect(domain.kind == .dma)
        #expect(domain.geometry == DomainGeometry(aperture: 0xC000_0000...0xDFFF_FFFF, outside: .passThrough, enforcesAperture: true))
        #expect(domain.pageSizes == PageSizeSet([4096]))
        #expect(bed.unit.activeAperture == 0xC000_0000...0xDFFF_FFFF)
    }

    @Test func mappingsLieInsideTheApertureAndEverythingElsePassesThrough() throws {
        let bed = try GARTBed()
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate(zone: .above(PhysicalAddress(1 << 32)))
        try domain.map(iova: IOVirtualAddress(0xC123_4000), physical: buffer, size: 4096, permissions: .write)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0xC123_4010), bytes: [5, 6]).completed)
        #expect(try bed.memory.read(buffer + 0x10, count: 2) == [5, 6])
        // Outside the aperture the bus address is the physical address, for every device.
        let direct = try bed.pages.allocate()
        #expect(bed.storage.engine.write(to: IOVirtualAddress(direct.value), bytes: [9]).completed)
        #expect(try bed.memory.read(direct, count: 1) == [9])
        #expect(throws: IOMMUError.outsideAperture(iova: 0xE000_0000, size: 4096, aperture: 0xC000_0000...0xDFFF_FFFF)) {
            try domain.map(iova: IOVirtualAddress(0xE000_0000), physical: buffer, size: 4096, permissions: .write)
        }
        // A 2 MiB request is split into 4 KiB GATT entries; without permissions the first one is refused.
        #expect(throws: IOMMUError.pageTable(.noPermissions)) {
            try domain.map(iova: IOVirtualAddress(0xC000_0000), physical: PhysicalAddress(0), size: 0x20_0000, permissions: [])
        }
        #expect(domain.translate(IOVirtualAddress(0xC000_0000)) == nil)
    }

    @Test func aStaleTLBEntryIsUsedUntilTheDomainFlushes() throws {
        let bed = try GARTBed()
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate()
        try domain.map(iova: IOVirtualAddress(0xC000_8000), physical: buffer, size: 4096, permissions: .readWrite)
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0xC000_8000), count: 8).result.completed)
        var gather = IOTLBGather()
        try domain.unmap(iova: IOVirtualAddress(0xC000_8000), size: 4096, gather: &gather)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0xC000_8000), bytes: [0xAA]).completed, "the GART TLB still has it")
        #expect(try bed.memory.read(buffer, count: 1) == [0xAA])
        let flushes = bed.unit.statistics.cacheFlushes
        domain.flush(gather)
        #expect(bed.unit.statistics.cacheFlushes == flushes + 1)
        let refused = bed.nic.engine.write(to: IOVirtualAddress(0xC000_8000), bytes: [0xBB])
        #expect(refused.bytesTransferred == 0 && refused.fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer, count: 1) == [0xAA])
    }

    @Test func errorsReachTheCoreAndTheSharedDomain() throws {
        let bed = try GARTBed()
        let domain = try bed.domain(of: bed.usb)
        let seen = Mutex<[IOMMUFault]>([])
        domain.setFaultHandler { fault in seen.withLock { $0.append(fault) } }
        _ = bed.usb.engine.read(from: IOVirtualAddress(0xD000_0000), count: 4)
        let faults = seen.withLock { $0 }
        #expect(faults.count == 1)
        #expect(faults.first?.address == 0xD000_0000)
        #expect(faults.first?.requester == bed.usb.address)
        #expect(faults.first?.hardwareReason == "GART GATT entry not valid")
        #expect(bed.unit.readRegister(GARTRegister.cacheControl) & UInt64(GARTCacheControl.pteError) == 0, "the driver cleared GartPteErr")
        #expect(bed.unit.readRegister(GARTRegister.errorLogStatus) & GARTErrorLogStatus.pending == 0)
    }

    @Test func blockedCannotBeExpressedAndIdentityTurnsTheApertureOff() throws {
        let bed = try GARTBed(policy: DefaultDomainPolicy(passThrough: true))
        #expect(throws: IOMMUError.unsupportedDomainKind(.blocked, driver: "amd-gart")) {
            try bed.subsystem.makeDomain(.blocked, for: bed.nic.address)
        }
        let domain = try bed.domain(of: bed.nic)
        #expect(domain.kind == .identity)
        #expect(domain.geometry.outside == .passThrough)
        #expect(bed.unit.activeAperture == nil)
        let target = PhysicalAddress(0xC000_3000)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(target.value), bytes: [4, 2]).completed)
        #expect(try bed.memory.read(target, count: 2) == [4, 2])
    }

    @Test func reservedRegionsKeepOnlyWhatTheApertureHolds() throws {
        let bed = try GARTBed(storageRegions: [GARTBed.insideRMRR])
        #expect(bed.subsystem.device(at: bed.usb.address)?.reservedRegions == [], "pass-through already reaches the RMRR 1:1")
        #expect(bed.subsystem.device(at: bed.storage.address)?.reservedRegions == [GARTBed.insideRMRR])
        let domain = try bed.domain(of: bed.storage)
        #expect(domain.translate(IOVirtualAddress(0xC000_1000)) == PhysicalAddress(0xC000_1000), "mapped 1:1 before attach")
        let msiBed = try GARTBed(apertureBase: 0xFE00_0000, apertureOrder: 0)
        #expect(msiBed.subsystem.device(at: msiBed.nic.address)?.reservedRegions == [.x86MSIWindow])
    }

    @Test func anUnmanagedDomainTakesTheWholeGARTAndGivesItBack() throws {
        let bed = try GARTBed()
        let group = try #require(bed.subsystem.device(at: bed.nic.address)?.group)
        let defaultTable = bed.unit.readRegister(GARTRegister.tableBase)
        let user = try bed.subsystem.makeDomain(.unmanaged, for: bed.nic.address)
        try bed.subsystem.attach(group, to: user, owner: "vfio")
        #expect(bed.unit.readRegister(GARTRegister.tableBase) != defaultTable)
        #expect(bed.subsystem.device(at: bed.storage.address)?.domain === user, "the whole group moved")
        try bed.subsystem.release(group, owner: "vfio")
        #expect(bed.unit.readRegister(GARTRegister.tableBase) == defaultTable)
        user.destroy()
    }

    @Test func theLastDeviceGoingAwayTurnsTheGARTOff() throws {
        let bed = try GARTBed()
        for device in [bed.nic, bed.usb] { try bed.subsystem.removeDevice(device.address) }
        #expect(bed.unit.activeAperture != nil)
        try bed.subsystem.removeDevice(bed.storage.address)
        #expect(bed.unit.activeAperture == nil)
    }

    @Test func anApertureFirmwareLeftUnusableIsRefused() throws {
        let memory = try PhysicalMemory(size: 8 << 30)
        let pages = try PhysicalPageAllocator(memory: memory)
        let unit = GARTUnit(name: "gart0", memory: memory)
        unit.writeRegister(GARTRegister.apertureControl, 6 << 1) // 2 GiB
        unit.writeRegister(GARTRegister.apertureBase, 0xC000_0000 >> 25)
        #expect(throws: IOMMUError.self) { try GARTDriver(units: [GARTUnitScope(unit: unit, includesAll: true)], pages: pages) }
        unit.writeRegister(GARTRegister.apertureBase, 0)
        #expect(throws: IOMMUError.self) { try GARTDriver(units: [GARTUnitScope(unit: unit, includesAll: true)], pages: pages) }
    }
}
