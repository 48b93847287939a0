import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// Issue #4: streaming, scatter-gather, coherent, masks, bouncing, untrusted devices, sync, handles.
@Suite struct CompleteDMAAPITests {
    let platform: EmulatedPlatform
    init() throws { platform = try EmulatedPlatform(Self.specification()) }
    func handle(_ name: String) throws -> DeviceDMA { try #require(platform.dma(for: name)) }

    /// The default platform plus an untrusted external device, a plain one and a 32-bit device behind no IOMMU.
    static func specification() throws -> PlatformSpecification {
        var specification = try PlatformSpecification.defaultPlatform()
        specification.devices += [
            DeviceSpecification(address: try PCIAddress(bus: 9, device: 0, function: 0), name: "thunderbolt",
                                deviceClass: .other, isUntrusted: true),
            DeviceSpecification(address: try PCIAddress(bus: 8, device: 0, function: 0), name: "plain", deviceClass: .other),
            DeviceSpecification(address: try PCIAddress(bus: 0, device: 0x1E, function: 0), name: "isa-dma",
                                deviceClass: .legacy, addressBits: 32, behindIOMMU: false),
        ]
        return specification
    }

    @Test(arguments: DMADirection.allCases)
    func dataArrivesBothWaysInEveryDirection(direction: DMADirection) throws {
        let nic = try handle("nic0")
        let buffer = try platform.pages.allocate(pages: 2) + 0x123
        let pattern = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try platform.memory.write(buffer, bytes: pattern)
        let bus = try nic.map(buffer, size: pattern.count, direction: direction)
        #expect(bus.value & 0xFFF == 0x123)
        let read = nic.device.engine.read(from: bus, count: pattern.count)
        #expect(read.result.completed == (direction != .fromDevice))
        if direction != .fromDevice { #expect(read.bytes == pattern) }
        let write = nic.device.engine.write(to: bus, bytes: [UInt8](repeating: 0x5A, count: 100))
        #expect(write.completed == (direction != .toDevice))
        try nic.unmap(bus, size: pattern.count, direction: direction)
        let after = try platform.memory.read(buffer, count: 100)
        #expect(after == (direction == .toDevice ? Array(pattern.prefix(100)) : [UInt8](repeating: 0x5A, count: 100)))
    }

    @Test func aDeviceNeverReachesMemoryAfterAStrictUnmap() throws {
        let nic = try handle("nic0")
        let buffer = try platform.pages.allocate()
        let bus = try nic.map(buffer, size: 4096, direction: .bidirectional)
        #expect(nic.device.engine.write(to: bus, bytes: [1]).completed) // the IOTLB now caches it
        try nic.unmap(bus, size: 4096, direction: .bidirectional)
        #expect(nic.device.engine.write(to: bus, bytes: [2]).fault?.reason == .notPresent)
        #expect(nic.device.engine.read(from: bus, count: 1).result.fault != nil)
        #expect(try platform.memory.read(buffer, count: 1) == [1])
    }

    @Test func aThirtyTwoBitDeviceReachesHighMemoryThroughTheIOMMUWithoutBouncing() throws {
        let legacy = try handle("legacy-dma")
        let buffer = try platform.pages.allocate(zone: .above(PhysicalAddress(1 << 34)))
        let bus = try legacy.map(buffer, size: 512, direction: .fromDevice)
        #expect(bus.value <= 0xFFFF_FFFF)
        #expect(legacy.device.engine.write(to: bus, bytes: [9, 8, 7]).completed)
        try legacy.unmap(bus, size: 512, direction: .fromDevice)
        #expect(try platform.memory.read(buffer, count: 3) == [9, 8, 7])
        #expect(legacy.statistics.bounced == 0)
    }

    @Test func aThirtyTwoBitDeviceWithoutAnIOMMUBouncesBelowItsMask() throws {
        let legacy = try handle("isa-dma")
        #expect(!legacy.isTranslated)
        let buffer = try platform.pages.allocate(zone: .above(PhysicalAddress(1 << 34))) + 0x40
        try platform.memory.write(buffer, bytes: [1, 2, 3, 4])
        let bus = try legacy.map(buffer, size: 64, direction: .bidirectional)
        #expect(bus.value + 63 <= 0xFFFF_FFFF && bus.value & 0xFFF == 0x40)
        #expect(legacy.device.engine.read(from: bus, count: 4).bytes == [1, 2, 3, 4]) // copied in on map
        #expect(legacy.device.engine.write(to: bus, bytes: [0xAA]).completed)
        #expect(try platform.memory.read(buffer, count: 1) == [1]) // not yet: the CPU sees it on sync
        try legacy.syncForCPU(bus, size: 64, direction: .bidirectional)
        #expect(try platform.memory.read(buffer, count: 1) == [0xAA])
        try platform.memory.write(buffer + 1, bytes: [0xBB])
        try legacy.syncForDevice(bus, size: 64, direction: .bidirectional)
        #expect(legacy.device.engine.read(from: bus + 1, count: 1).bytes == [0xBB])
        #expect(legacy.device.engine.write(to: bus + 2, bytes: [0xCC]).completed)
        try legacy.unmap(bus, size: 64, direction: .bidirectional)
        #expect(try platform.memory.read(buffer, count: 4) == [0xAA, 0xBB, 0xCC, 4])
        #expect(legacy.statistics.bounced == 1)
    }

    @Test func masksBoundEveryBusAddress() throws {
        let nvme = try handle("nvme0")
        for bits in [24, 32, 40, 64] {
            try nvme.setMasks(streamingBits: bits)
            let bus = try nvme.map(try platform.pages.allocate(zone: .above(PhysicalAddress(1 << 35))), size: 4096,
                                   direction: .toDevice)
            #expect(bus.value <= nvme.streamingMask)
            try nvme.unmap(bus, size: 4096, direction: .toDevice)
        }
        try nvme.setMasks(streamingBits: 24)
        #expect(throws: DMAError.self) {
            try nvme.map(try platform.pages.allocate(pages: 8192, alignment: 1 << 21), size: 32 << 20, direction: .toDevice)
        }
    }

    @Test func anUntrustedDeviceNeverSeesTheRestOfAPage() throws {
        let thunderbolt = try handle("thunderbolt")
        let page = try platform.pages.allocate()
        try platform.memory.write(page, bytes: [UInt8](repeating: 0x77, count: 4096))
        try platform.memory.write(page + 100, bytes: [1, 2, 3])
        let bus = try thunderbolt.map(page + 100, size: 3, direction: .bidirectional)
        #expect(bus.value & 0xFFF == 100)
        #expect(thunderbolt.device.engine.read(from: bus, count: 3).bytes == [1, 2, 3])
        let neighbour = thunderbolt.device.engine.read(from: IOVirtualAddress(bus.value - 100), count: 100).bytes
        #expect(!neighbour.contains(0x77)) // the secret beside the buffer is not in the bounce page
        #expect(thunderbolt.device.engine.write(to: bus, bytes: [9]).completed)
        try thunderbolt.unmap(bus, size: 3, direction: .bidirectional)
        #expect(try platform.memory.read(page + 99, count: 5) == [0x77, 9, 2, 3, 0x77])
        let whole = try thunderbolt.map(page, size: 4096, direction: .toDevice) // whole pages are not bounced
        try thunderbolt.unmap(whole, size: 4096, direction: .toDevice)
        #expect(thunderbolt.statistics.bounced == 1)
    }

    @Test func aScatterListGetsOneIOVARangeWithMergedSegments() throws {
        let nvme = try handle("nvme0")
        let a = try platform.pages.allocate(pages: 2), b = try platform.pages.allocate(), c = try platform.pages.allocate()
        let list = [DMAScatterSegment(physical: a + 0x200, length: 8192 - 0x200), DMAScatterSegment(physical: b, length: 4096),
                    DMAScatterSegment(physical: c, length: 100)]
        let mapped = try nvme.mapScatterList(list, direction: .fromDevice)
        #expect(mapped.segments.count == 1)
        #expect(mapped.segments[0].length == UInt64(8192 - 0x200 + 4096 + 100))
        #expect(mapped.segments[0].busAddress.value & 0xFFF == 0x200)
        let data = [UInt8](repeating: 0xE1, count: Int(mapped.segments[0].length))
        #expect(nvme.device.engine.write(to: mapped.segments[0].busAddress, bytes: data).completed)
        try nvme.unmapScatterList(mapped)
        #expect(try platform.memory.read(b, count: 4096) == [UInt8](repeating: 0xE1, count: 4096))
        #expect(try platform.memory.read(c, count: 100) == [UInt8](repeating: 0xE1, count: 100))
        #expect(throws: DMAError.notMapped(busAddress: mapped.segments[0].busAddress.value & ~0xFFF)) {
            try nvme.unmapScatterList(mapped)
        }
        #expect(throws: DMAError.emptyScatterList) { try nvme.mapScatterList([], direction: .toDevice) }
    }

    @Test func scatterSegmentsHonourTheMaximumSegmentSize() throws {
        let device = try handle("plain")
        let pieces = try (0..<20).map { _ in DMAScatterSegment(physical: try platform.pages.allocate(), length: 4096) }
        let mapped = try device.mapScatterList(pieces, direction: .toDevice)
        #expect(mapped.segments.allSatisfy { $0.length <= device.configuration.maxSegmentSize })
        #expect(mapped.segments.count == 2) // 64 KiB + 16 KiB
        #expect(mapped.segments.reduce(0) { $0 + $1.length } == 20 * 4096)
        try device.unmapScatterList(mapped)
    }

    @Test func aCoherentBufferIsContiguousOnTheBusButNotInMemory() throws {
        let nic = try handle("nic0")
        let ring = try nic.allocateCoherent(size: 3 * 4096 + 10, placement: .scattered)
        #expect(ring.pages.count == 4)
        #expect(ring.store(0xDEAD_BEEF_0102_0304 as UInt64, at: 4092)) // crosses a page boundary
        #expect(nic.device.engine.read(from: ring.busAddress + 4092, count: 8).bytes == [4, 3, 2, 1, 0xEF, 0xBE, 0xAD, 0xDE])
        #expect(nic.device.engine.write(to: ring.busAddress + 3 * 4096, bytes: [5, 6]).completed)
        #expect(ring.read(at: 3 * 4096, count: 2) == [5, 6])
        #expect(ring.load(at: 4092, as: UInt64.self) == 0xDEAD_BEEF_0102_0304)
        #expect(!ring.write([1, 2], at: ring.size - 1))
        try nic.freeCoherent(ring)
        #expect(nic.device.engine.read(from: ring.busAddress, count: 1).result.fault != nil)
    }

    @Test func anOwnedMappingIsConsumedByUnmap() throws {
        let nic = try handle("nic0")
        let buffer = try platform.pages.allocate()
        let mapping = try nic.mapOwned(buffer, size: 256, direction: .fromDevice)
        #expect(nic.device.engine.write(to: mapping.busAddress, bytes: [4]).completed)
        let bus = mapping.busAddress
        try mapping.unmap()
        // `try mapping.unmap()` again would not compile: the handle was consumed.
        #expect(nic.device.engine.write(to: bus, bytes: [5]).fault != nil)
        do { _ = try nic.mapOwned(buffer, size: 64, direction: .toDevice) } // dropped: unmapped by its deinit
        #expect(nic.statistics.mappings == nic.statistics.unmappings)
    }
}
