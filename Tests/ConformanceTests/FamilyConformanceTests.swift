import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// One suite, run against every emulated IOMMU family: what the generic DMA
/// layer relies on must hold whatever the hardware.
@Suite struct FamilyConformanceTests {
    static let families = IOMMUFamily.allCases.filter(\.isEmulated)

    static func platform(_ family: IOMMUFamily, _ policy: DefaultDomainPolicy = .init()) throws -> EmulatedPlatform {
        try EmulatedPlatform(.defaultPlatform(family: family, policy: policy))
    }

    @Test(arguments: families)
    func theDefaultWorkloadPassesUnderEveryPolicy(family: IOMMUFamily) throws {
        for policy in [DefaultDomainPolicy(), DefaultDomainPolicy(invalidation: .lazy), DefaultDomainPolicy(passThrough: true)] {
            let report = DefaultWorkload(iterations: 12, seed: 3).run(on: try Self.platform(family, policy))
            #expect(report.checksFailed == 0, "\(family) \(policy): \(report.platform.devices.compactMap(\.workload).flatMap(\.notes))")
        }
    }

    @Test(arguments: families)
    func everyManagedDeviceHasADefaultDomainThatDescribesItself(family: IOMMUFamily) throws {
        let platform = try Self.platform(family)
        for device in platform.devices {
            let managed = try #require(platform.subsystem.device(at: device.address), "\(device) has no IOMMU")
            let domain = try #require(managed.group.defaultDomain)
            #expect(domain.pageSizes.smallest >= 4096)
            #expect(domain.geometry.aperture.lowerBound <= domain.geometry.aperture.upperBound)
            #expect(managed.reservedRegions.allSatisfy { $0.range.lowerBound <= $0.range.upperBound })
        }
    }

    @Test(arguments: families)
    func busAddressesStayInsideTheApertureAndOutsideReservedRegions(family: IOMMUFamily) throws {
        let platform = try Self.platform(family)
        for name in ["nic0", "legacy-dma", "usb-xhci"] {
            let dma = try #require(platform.dma(for: name))
            guard let managed = dma.managed, let domain = managed.group.defaultDomain, domain.kind.usesDMALayer else { continue }
            let buffer = try platform.pages.allocate(pages: 16)
            var mapped: [IOVirtualAddress] = []
            for _ in 0..<64 {
                let bus = try dma.map(buffer, size: 64 << 10, direction: .bidirectional)
                mapped.append(bus)
                let last = bus.value + (64 << 10) - 1
                #expect(domain.geometry.aperture.contains(bus.value) && domain.geometry.aperture.contains(last))
                #expect(last <= dma.streamingMask)
                for region in managed.reservedRegions {
                    #expect(last < region.range.lowerBound || bus.value > region.range.upperBound,
                            "\(family) \(name): \(bus) overlaps \(region)")
                }
            }
            for bus in mapped { try dma.unmap(bus, size: 64 << 10, direction: .bidirectional) }
        }
    }

    @Test(arguments: families)
    func aStrictUnmapKeepsTheDeviceOutOfTheBuffer(family: IOMMUFamily) throws {
        let platform = try Self.platform(family)
        let nic = try #require(platform.dma(for: "nic0"))
        let buffer = try platform.pages.allocate()
        try platform.memory.write(buffer, bytes: [1, 2, 3, 4])
        let bus = try nic.map(buffer, size: 4096, direction: .bidirectional)
        #expect(nic.device.engine.read(from: bus, count: 4).bytes == [1, 2, 3, 4])
        try nic.unmap(bus, size: 4096, direction: .bidirectional)
        _ = nic.device.engine.write(to: bus, bytes: [9, 9, 9, 9])
        #expect(try platform.memory.read(buffer, count: 4) == [1, 2, 3, 4])
    }

    @Test(arguments: families.filter(\.enforcesPermissions))
    func aToDeviceMappingCannotBeWritten(family: IOMMUFamily) throws {
        let platform = try Self.platform(family)
        let nic = try #require(platform.dma(for: "nic0"))
        let buffer = try platform.pages.allocate()
        let bus = try nic.map(buffer, size: 512, direction: .toDevice)
        #expect(nic.device.engine.write(to: bus, bytes: [7]).fault != nil)
        #expect(try platform.memory.read(buffer, count: 1) == [0])
        try nic.unmap(bus, size: 512, direction: .toDevice)
    }

    @Test(arguments: families)
    func badArgumentsAreRefusedAlike(family: IOMMUFamily) throws {
        let platform = try Self.platform(family)
        let nic = try #require(platform.dma(for: "nic0"))
        let buffer = try platform.pages.allocate()
        #expect(throws: DMAError.zeroSize) { try nic.map(buffer, size: 0, direction: .toDevice) }
        let bus = try nic.map(buffer, size: 4096, direction: .toDevice)
        try nic.unmap(bus, size: 4096, direction: .toDevice)
        #expect(throws: DMAError.notMapped(busAddress: bus.value)) { try nic.unmap(bus, size: 4096, direction: .toDevice) }
    }
}
