import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// The two aperture families end to end, through the unchanged DMA layer:
/// what a device reaches outside the aperture is the difference between them.
@Suite struct ApertureFamilyTests {
    static func platform(_ family: IOMMUFamily, units: ((inout UnitSpecification) -> Void)? = nil) throws -> EmulatedPlatform {
        var specification = try PlatformSpecification.defaultPlatform(family: family)
        if let units { units(&specification.units[0]) }
        return try EmulatedPlatform(specification)
    }

    @Test func gartPassesStrayAddressesThroughWhileTheDMALayerStaysInTheAperture() throws {
        let platform = try Self.platform(.amdGART)
        let nic = try #require(platform.dma(for: "nic0"))
        let aperture = try #require(nic.managed?.domain?.geometry.aperture)
        #expect(aperture == 0xC000_0000...0xDFFF_FFFF)
        let buffer = try platform.pages.allocate(pages: 4, zone: .above(PhysicalAddress(1 << 32)))
        var mapped: [IOVirtualAddress] = []
        for page in 0..<4 as Range<UInt64> {
            let bus = try nic.map(buffer + page * 4096, size: 4096, direction: .fromDevice)
            #expect(aperture.contains(bus.value))
            mapped.append(bus)
        }
        #expect(nic.device.engine.write(to: mapped[2], bytes: [1, 2, 3]).completed)
        #expect(try platform.memory.read(buffer + 2 * 4096, count: 3) == [1, 2, 3])
        // The same memory by its physical address: outside the aperture, so the GART lets it through.
        #expect(nic.device.engine.write(to: IOVirtualAddress(buffer.value + 3 * 4096), bytes: [4, 5]).completed)
        #expect(try platform.memory.read(buffer + 3 * 4096, count: 2) == [4, 5])
        for bus in mapped { try nic.unmap(bus, size: 4096, direction: .fromDevice) }
        #expect(platform.subsystem.faultCount == 0)
    }

    @Test func calgaryBlocksTheSameStrayAccess() throws {
        let platform = try Self.platform(.ibmCalgary)
        let nic = try #require(platform.dma(for: "nic0"))
        #expect(nic.managed?.domain?.geometry == DomainGeometry(aperture: 0...0x7FFF_FFFF, outside: .blocked))
        let buffer = try platform.pages.allocate(zone: .above(PhysicalAddress(1 << 32)))
        let bus = try nic.map(buffer, size: 4096, direction: .fromDevice)
        #expect(bus.value <= 0x7FFF_FFFF)
        #expect(nic.device.engine.write(to: bus, bytes: [6]).completed)
        let stray = nic.device.engine.write(to: IOVirtualAddress(buffer.value + 8), bytes: [7])
        #expect(stray.bytesTransferred == 0 && stray.fault?.reason == .beyondAddressWidth)
        #expect(try platform.memory.read(buffer, count: 9) == [6, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(platform.subsystem.recentFaults.last?.address == buffer.value + 8)
        try nic.unmap(bus, size: 4096, direction: .fromDevice)
    }

    @Test(arguments: [IOMMUFamily.amdGART, .ibmCalgary])
    func aThirtyTwoBitDeviceReachesMemoryAboveFourGiBThroughTheWindow(family: IOMMUFamily) throws {
        let platform = try Self.platform(family)
        let legacy = try #require(platform.dma(for: "legacy-dma"))
        let buffer = try platform.pages.allocate(zone: .above(PhysicalAddress(1 << 34)))
        try platform.memory.write(buffer, bytes: [0x5A])
        let bus = try legacy.map(buffer, size: 1, direction: .toDevice)
        #expect(bus.value <= 0xFFFF_FFFF)
        #expect(legacy.device.engine.read(from: bus, count: 1).bytes == [0x5A])
        try legacy.unmap(bus, size: 1, direction: .toDevice)
    }

    @Test func unitsReportTheirFamilyAndCounters() throws {
        for family in [IOMMUFamily.amdGART, .ibmCalgary] {
            let platform = try Self.platform(family)
            let report = DefaultWorkload(iterations: 4, seed: 9).run(on: platform)
            #expect(report.checksFailed == 0)
            let unit = try #require(report.platform.units.first)
            #expect(unit.family == family.rawValue)
            #expect(unit.pageWalks > 0)
            #expect(unit.faultsRecorded == 5, "one deliberate stray write per device")
        }
    }

    @Test func specificationsTheHardwareCannotHoldAreRefused() throws {
        #expect(throws: PlatformError.self) { try Self.platform(.amdGART) { $0.apertureSize = 48 << 20 } }
        #expect(throws: PlatformError.self) { try Self.platform(.amdGART) { $0.apertureBase = 0xF000_0000; $0.apertureSize = 512 << 20 } }
        #expect(throws: PlatformError.self) { try Self.platform(.ibmCalgary) { $0.apertureBase = 0x8000_0000 } }
        #expect(throws: PlatformError.self) { try Self.platform(.ibmCalgary) { $0.apertureSize = 8 << 30 } }
        var crowded = try PlatformSpecification.defaultPlatform(family: .ibmCalgary)
        crowded.devices.append(DeviceSpecification(address: try PCIAddress(bus: 9, device: 0, function: 0), name: "extra",
                                                   deviceClass: .other))
        #expect(throws: PlatformError.invalidSpecification("calgary0: a Calgary chip has 4 PHBs but its devices sit on 5 buses")) {
            try EmulatedPlatform(crowded)
        }
        let small = try Self.platform(.amdGART) { $0.apertureBase = 0xE000_0000; $0.apertureSize = 64 << 20 }
        #expect(small.subsystem.devices.first?.domain?.geometry.aperture == 0xE000_0000...0xE3FF_FFFF)
    }
}
