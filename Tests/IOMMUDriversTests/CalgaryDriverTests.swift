import Emulation
import IOMMUCore
import IOMMUDrivers
import Synchronization
import Testing

/// One Calgary chip, PHBs 0-2 on buses 0-2, a 256 MiB window per bus, two
/// devices on bus 0 and one each on buses 1 and 2.
struct CalgaryBed {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let unit: CalgaryUnit
    let subsystem: IOMMUSubsystem
    let usb: PCIDevice
    let audio: PCIDevice
    let nic: PCIDevice
    let disk: PCIDevice
    static let window: UInt64 = 256 << 20
    static let rmrr = ReservedRegion(range: 0x0800_0000...0x0800_1FFF, kind: .direct, permissions: .read, source: "RMRR")

    init(policy: DefaultDomainPolicy = .init(), window: UInt64 = Self.window, usbRegions: [ReservedRegion] = [Self.rmrr]) throws {
        memory = try PhysicalMemory(size: 8 << 30)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0xBFFF_FFFF),
                                                                   PhysicalAddress(1 << 32)...PhysicalAddress((8 << 30) - 1)])
        unit = CalgaryUnit(name: "calgary0", memory: memory,
                           configuration: CalgaryUnitConfiguration(phbBuses: [0...0, 1...1, 2...2, nil]))
        usb = PCIDevice(address: try PCIAddress(bus: 0, device: 0x14, function: 0), name: "usb", memory: memory)
        audio = PCIDevice(address: try PCIAddress(bus: 0, device: 0x1F, function: 3), name: "audio", memory: memory)
        nic = PCIDevice(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "nic", memory: memory)
        disk = PCIDevice(address: try PCIAddress(bus: 2, device: 0, function: 0), name: "disk", memory: memory)
        let driver = try CalgaryDriver(units: [CalgaryUnitScope(unit: unit, includesAll: true, windowBytes: window)],
                                       pages: pages, directRegions: [usb.address: usbRegions])
        subsystem = IOMMUSubsystem(policy: policy)
        subsystem.register(driver)
        for device in [usb, audio, nic, disk] {
            device.engine.translationUnit = unit
            try subsystem.addDevice(device)
        }
    }

    func domain(of device: PCIDevice) throws -> IOMMUDomain { try #require(subsystem.device(at: device.address)?.domain) }
}

@Suite struct CalgaryDriverTests {
    @Test func oneGroupPerBusWithADomainThatReportsTheWindow() throws {
        let bed = try CalgaryBed()
        #expect(bed.subsystem.groups.count == 3)
        #expect(try bed.domain(of: bed.usb) === bed.domain(of: bed.audio))
        #expect(try bed.domain(of: bed.usb) !== bed.domain(of: bed.nic))
        let domain = try bed.domain(of: bed.nic)
        #expect(domain.geometry == DomainGeometry(aperture: 0...0xFFF_FFFF, outside: .blocked, enforcesAperture: true))
        #expect(domain.pageSizes == PageSizeSet([4096]))
        let configuration = UInt32(bed.unit.readRegister(CalgaryRegister.phbConfiguration(phb: 1)))
        #expect(configuration & CalgaryPHBConfiguration.tceEnable != 0)
        #expect(configuration & CalgaryPHBConfiguration.dacDisable != 0)
        #expect(bed.unit.readRegister(CalgaryRegister.tableAddress(phb: 1)) & CalgaryTableAddress.sizeMask == 3)
    }

    @Test func outsideTheWindowEveryAccessIsBlockedAndReported() throws {
        let bed = try CalgaryBed()
        let domain = try bed.domain(of: bed.nic)
        let seen = Mutex<[IOMMUFault]>([])
        domain.setFaultHandler { fault in seen.withLock { $0.append(fault) } }
        let buffer = try bed.pages.allocate(zone: .above(PhysicalAddress(1 << 32)))
        for address in [buffer.value, 0x1000_0000, 0xFFFF_F000] {
            let result = bed.nic.engine.write(to: IOVirtualAddress(address), bytes: [1])
            #expect(result.fault?.reason == .beyondAddressWidth)
        }
        #expect(try bed.memory.read(buffer, count: 1) == [0])
        let faults = seen.withLock { $0 }
        #expect(faults.count == 3)
        #expect(faults.allSatisfy { $0.requester == bed.nic.address && $0.hardwareReason == "Calgary PHB 1: outside the DMA window" })
        #expect(bed.unit.readRegister(CalgaryRegister.channelStatus(phb: 1)) == 0, "the driver reset the channel status")
        #expect(throws: IOMMUError.outsideAperture(iova: 0x1000_0000, size: 4096, aperture: 0...0xFFF_FFFF)) {
            try domain.map(iova: IOVirtualAddress(0x1000_0000), physical: buffer, size: 4096, permissions: .read)
        }
    }

    @Test func readOnlyMappingsRefuseDeviceWrites() throws {
        let bed = try CalgaryBed()
        let domain = try bed.domain(of: bed.disk)
        let buffer = try bed.pages.allocate(zone: .above(PhysicalAddress(1 << 32)))
        try bed.memory.write(buffer, bytes: [7, 7])
        try domain.map(iova: IOVirtualAddress(0x40_0000), physical: buffer, size: 4096, permissions: .read)
        #expect(bed.disk.engine.read(from: IOVirtualAddress(0x40_0000), count: 2).bytes == [7, 7])
        #expect(bed.disk.engine.write(to: IOVirtualAddress(0x40_0000), bytes: [1]).fault?.reason == .permissionDenied)
        #expect(try bed.memory.read(buffer, count: 2) == [7, 7])
    }

    @Test func aStaleTCEIsUsedUntilTheDomainFlushes() throws {
        let bed = try CalgaryBed()
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate()
        try domain.map(iova: IOVirtualAddress(0x20_0000), physical: buffer, size: 8192, permissions: .readWrite)
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x20_0000), count: 8192).result.completed)
        var gather = IOTLBGather()
        try domain.unmap(iova: IOVirtualAddress(0x20_0000), size: 8192, gather: &gather)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x20_1000), bytes: [3]).completed, "still in the TCE cache")
        let invalidations = bed.unit.statistics.cacheInvalidations
        domain.flush(gather)
        #expect(bed.unit.statistics.cacheInvalidations == invalidations + 1, "one TAR rewrite for the one PHB using the table")
        #expect(bed.nic.engine.write(to: IOVirtualAddress(0x20_1000), bytes: [4]).fault?.reason == .notPresent)
        #expect(try bed.memory.read(buffer + 0x1000, count: 1) == [3])
    }

    @Test func identityDisablesTranslationOnThatBusOnly() throws {
        let bed = try CalgaryBed(policy: DefaultDomainPolicy(overrides: [try PCIAddress(bus: 1, device: 0, function: 0): .identity]))
        #expect(try bed.domain(of: bed.nic).kind == .identity)
        #expect(UInt32(bed.unit.readRegister(CalgaryRegister.phbConfiguration(phb: 1))) & CalgaryPHBConfiguration.tceEnable == 0)
        let far = PhysicalAddress(0x1_8000_0000)
        #expect(bed.nic.engine.write(to: IOVirtualAddress(far.value), bytes: [8]).completed)
        #expect(try bed.memory.read(far, count: 1) == [8])
        #expect(bed.disk.engine.write(to: IOVirtualAddress(far.value), bytes: [9]).fault?.reason == .beyondAddressWidth)
        #expect(try bed.memory.read(far, count: 1) == [8])
    }

    @Test func aBlockedDomainRefusesEverything() throws {
        let bed = try CalgaryBed()
        let group = try #require(bed.subsystem.device(at: bed.disk.address)?.group)
        let blocked = try bed.subsystem.makeDomain(.blocked, for: bed.disk.address)
        try bed.subsystem.attach(group, to: blocked, owner: "test")
        for address: UInt64 in [0x1000, 0x100_0000, 0x4000_0000] {
            #expect(bed.disk.engine.read(from: IOVirtualAddress(address), count: 4).result.fault != nil)
        }
        #expect(throws: IOMMUError.domainDoesNotTranslate(.blocked)) {
            try blocked.map(iova: IOVirtualAddress(0x1000), physical: PhysicalAddress(0x10_0000), size: 4096, permissions: .read)
        }
        try bed.subsystem.release(group, owner: "test")
        blocked.destroy()
    }

    @Test func reservedRegionsCoverTheLegacyRangeTheRMRRAndAReachableMSIWindow() throws {
        let bed = try CalgaryBed()
        let usb = try #require(bed.subsystem.device(at: bed.usb.address))
        #expect(usb.reservedRegions == [CalgaryDriver.legacyHole, CalgaryBed.rmrr])
        #expect(try bed.domain(of: bed.usb).translate(IOVirtualAddress(0x0800_1000)) == PhysicalAddress(0x0800_1000))
        let wide = try CalgaryBed(window: 4 << 30)
        #expect(wide.subsystem.device(at: wide.nic.address)?.reservedRegions == [CalgaryDriver.legacyHole, .x86MSIWindow])
    }

    @Test func anRMRROutsideTheWindowCannotBeHonoured() throws {
        let outside = ReservedRegion(range: 0x7F00_0000...0x7F00_0FFF, kind: .direct, source: "RMRR")
        #expect(throws: IOMMUError.outsideAperture(iova: 0x7F00_0000, size: 4096, aperture: 0...0xFFF_FFFF)) {
            _ = try CalgaryBed(usbRegions: [outside])
        }
    }

    @Test func theLastDeviceOfABusGoingAwayTurnsItsTranslationOff() throws {
        let bed = try CalgaryBed()
        try bed.subsystem.removeDevice(bed.usb.address)
        #expect(UInt32(bed.unit.readRegister(CalgaryRegister.phbConfiguration(phb: 0))) & CalgaryPHBConfiguration.tceEnable != 0)
        try bed.subsystem.removeDevice(bed.audio.address)
        #expect(UInt32(bed.unit.readRegister(CalgaryRegister.phbConfiguration(phb: 0))) & CalgaryPHBConfiguration.tceEnable == 0)
        #expect(bed.unit.readRegister(CalgaryRegister.tableAddress(phb: 0)) == 0)
    }

    @Test func aWindowTheTARCannotEncodeIsRefused() throws {
        let memory = try PhysicalMemory(size: 1 << 30)
        let pages = try PhysicalPageAllocator(memory: memory)
        let unit = CalgaryUnit(name: "calgary0", memory: memory)
        #expect(throws: IOMMUError.self) {
            try CalgaryDriver(units: [CalgaryUnitScope(unit: unit, includesAll: true, windowBytes: 8 << 30)], pages: pages)
        }
    }
}
