import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// A DMA handle outliving its device's removal from the IOMMU-API: the removal destroyed the
/// group's default domain and returned its page-table pages to the allocator, so a call that
/// still reached the domain would write page-table entries into whoever owns those pages now.
@Suite struct DeviceRemovalTests {
    static let cases: [(IOMMUFamily, DefaultDomainPolicy.Invalidation, UInt8)] =
        IOMMUFamily.allCases.flatMap { family in
            [(family, .strict, 0x00), (family, .lazy, 0x00), (family, .strict, 0xA5), (family, .lazy, 0xA5)]
        }

    @Test(arguments: cases)
    func aRemovedDeviceIsRefusedAndItsOldTablePagesStayUntouched(family: IOMMUFamily, policy: DefaultDomainPolicy.Invalidation,
                                                                  fill: UInt8) throws {
        let platform = try EmulatedPlatform(.defaultPlatform(family: family, policy: DefaultDomainPolicy(invalidation: policy)))
        let nic = try #require(platform.dma(for: "nic0"))
        let buffer = try platform.pages.allocate()
        let bus = try nic.map(buffer, size: 4096, direction: .bidirectional)
        try nic.unmap(bus, size: 4096, direction: .bidirectional)
        try nic.deviceRemoved()
        let before = platform.pages.allocatedPages
        try platform.subsystem.removeDevice(nic.device.address)
        let freed = before - platform.pages.allocatedPages

        // Take every page the removal freed (the old tables among them) and fill it: zeros look
        // like empty entries (a walk would install tables and leaves), 0xA5 like present ones.
        let pattern = [UInt8](repeating: fill, count: 4096)
        var taken: [PhysicalAddress] = []
        for _ in 0..<max(freed, 0) {
            let page = try platform.pages.allocate()
            try platform.memory.write(page, bytes: pattern)
            taken.append(page)
        }
        let calls = nic.statistics
        #expect(throws: DMAError.deviceUnavailable(nic.device.address, reason: "it was removed from its IOMMU")) {
            _ = try nic.map(buffer, size: 4096, direction: .toDevice)
        }
        #expect(throws: DMAError.deviceUnavailable(nic.device.address, reason: "it was removed from its IOMMU")) {
            try nic.unmap(bus, size: 4096, direction: .bidirectional)
        }
        #expect(throws: DMAError.deviceUnavailable(nic.device.address, reason: "it was removed from its IOMMU")) {
            _ = try nic.mapScatterList([DMAScatterSegment(physical: buffer, length: 4096)], direction: .toDevice)
        }
        #expect(throws: DMAError.deviceUnavailable(nic.device.address, reason: "it was removed from its IOMMU")) {
            _ = try nic.allocateCoherent(size: 8192)
        }
        nic.flushDeferred()
        for page in taken { #expect(try platform.memory.read(page, count: 4096) == pattern) }
        #expect(nic.statistics == calls)
    }

    @Test func theOtherDevicesOfTheDomainKeepWorkingAfterOneLeaves() throws {
        let platform = try EmulatedPlatform(.defaultPlatform())
        let nic = try #require(platform.dma(for: "nic0"))
        // A second handle on the same device shares its domain; removing the device retires both.
        let second = try DeviceDMA(device: nic.device, subsystem: platform.subsystem, pages: platform.pages)
        let nvme = try #require(platform.dma(for: "nvme0"))
        try platform.subsystem.removeDevice(nic.device.address)
        let buffer = try platform.pages.allocate()
        #expect(throws: DMAError.self) { _ = try second.map(buffer, size: 64, direction: .toDevice) }
        let bus = try nvme.map(buffer, size: 64, direction: .toDevice)
        #expect(nvme.device.engine.read(from: bus, count: 1).result.completed)
        try nvme.unmap(bus, size: 64, direction: .toDevice)
    }
}
