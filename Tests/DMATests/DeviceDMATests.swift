import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

@Suite struct DeviceDMATests {
    let platform: EmulatedPlatform

    init() throws {
        platform = try EmulatedPlatform(.defaultPlatform())
    }

    func handle(_ name: String) throws -> DeviceDMA { try #require(platform.dma(for: name)) }

    @Test func streamingMappingKeepsTheOffsetAndMovesData() throws {
        let nic = try handle("nic0")
        let buffer = try platform.pages.allocate(pages: 2) + 0x7F0
        let bus = try nic.map(buffer, size: 3000, direction: .fromDevice)
        #expect(bus.value & 0xFFF == 0x7F0)
        let packet = (0..<3000).map { UInt8(truncatingIfNeeded: $0) }
        #expect(nic.device.engine.write(to: bus, bytes: packet).completed)
        try nic.unmap(bus, size: 3000, direction: .fromDevice)
        #expect(try platform.memory.read(buffer, count: 3000) == packet)
        #expect(nic.statistics.mappings == 1 && nic.statistics.unmappings == 1)
    }

    @Test func directionsBecomePermissions() throws {
        let nic = try handle("nic0")
        let buffer = try platform.pages.allocate()
        try platform.memory.write(buffer, bytes: [1, 2, 3])
        let bus = try nic.map(buffer, size: 64, direction: .toDevice)
        #expect(nic.device.engine.read(from: bus, count: 3).bytes == [1, 2, 3])
        #expect(nic.device.engine.write(to: bus, bytes: [9]).fault?.reason == .permissionDenied)
        #expect(try platform.memory.read(buffer, count: 3) == [1, 2, 3])
        try nic.unmap(bus, size: 64, direction: .toDevice)
    }

    @Test func strictUnmapLeavesNoTranslationBehind() throws {
        let nvme = try handle("nvme0")
        let buffer = try platform.pages.allocate(pages: 16)
        let bus = try nvme.map(buffer, size: 64 << 10, direction: .fromDevice)
        #expect(nvme.device.engine.write(to: bus, bytes: [UInt8](repeating: 1, count: 64 << 10)).completed)
        try nvme.unmap(bus, size: 64 << 10, direction: .fromDevice)
        #expect(nvme.device.engine.write(to: bus + 0x8000, bytes: [2]).fault?.reason == .notPresent)
    }

    @Test func badArgumentsGetSpecificErrorsAndChangeNothing() throws {
        let nic = try handle("nic0")
        let buffer = try platform.pages.allocate()
        #expect(throws: DMAError.zeroSize) { try nic.map(buffer, size: 0, direction: .toDevice) }
        #expect(throws: DMAError.negativeSize(-1)) { try nic.map(buffer, size: -1, direction: .toDevice) }
        #expect(throws: DMAError.notMapped(busAddress: 0x1234_5000)) {
            try nic.unmap(IOVirtualAddress(0x1234_5000), size: 4096, direction: .toDevice)
        }
        let bus = try nic.map(buffer, size: 8192, direction: .bidirectional)
        #expect(throws: DMAError.sizeMismatch(busAddress: bus.value, mapped: 8192, given: 4096)) {
            try nic.unmap(bus, size: 4096, direction: .bidirectional)
        }
        #expect(nic.device.engine.write(to: bus + 4096, bytes: [1]).completed) // still fully mapped
        try nic.unmap(bus, size: 8192, direction: .bidirectional)
        #expect(throws: DMAError.notMapped(busAddress: bus.value)) { try nic.unmap(bus, size: 8192, direction: .bidirectional) }
        #expect(throws: DMAError.invalidMask(bits: 8)) { try nic.setMasks(streamingBits: 8) }
    }

    @Test func aLegacyDeviceGetsBusAddressesBelowFourGiBForBuffersAboveIt() throws {
        let legacy = try handle("legacy-dma")
        #expect(legacy.streamingMask == 0xFFFF_FFFF)
        let buffer = try platform.pages.allocate(zone: .above(PhysicalAddress(1 << 34)))
        let bus = try legacy.map(buffer, size: 4096, direction: .fromDevice)
        #expect(bus.value < 1 << 32)
        #expect(legacy.device.engine.write(to: bus, bytes: [0xAB]).completed)
        #expect(try platform.memory.read(buffer, count: 1) == [0xAB])
    }

    @Test func theMSIWindowAndDirectRegionsAreNeverHandedOut() throws {
        // Exhaust the legacy device's 4 GiB of IOVA with 64 MiB mappings of one buffer.
        let legacy = try handle("legacy-dma")
        let usb = try handle("usb-xhci")
        let chunk = 64 << 20
        let buffer = try platform.pages.allocate(pages: UInt64(chunk) / 4096, alignment: 1 << 21)
        var mapped: [IOVirtualAddress] = []
        while let bus = try? legacy.map(buffer, size: chunk, direction: .toDevice) { mapped.append(bus) }
        #expect(mapped.count >= 60)
        for bus in mapped {
            let last = bus.value + UInt64(chunk) - 1
            #expect(last < 0xFEE0_0000 || bus.value > 0xFEEF_FFFF)
        }
        #expect(throws: DMAError.self) { try legacy.map(buffer, size: chunk, direction: .toDevice) }
        // The USB controller's RMRR sits in its own domain's IOVA space, never allocated.
        var usbMapped: [IOVirtualAddress] = []
        while usbMapped.count < 70, let bus = try? usb.map(buffer, size: chunk, direction: .toDevice) { usbMapped.append(bus) }
        #expect(usbMapped.count == 70)
        for bus in usbMapped {
            let last = bus.value + UInt64(chunk) - 1
            #expect(last < 0x7F00_0000 || bus.value > 0x7F0F_FFFF)
        }
        for bus in mapped { try legacy.unmap(bus, size: chunk, direction: .toDevice) }
    }

    @Test func identityDomainMapsDirectlyAndChecksTheMask() throws {
        let audio = try handle("audio")
        #expect(audio.domainKind == .identity)
        let buffer = try platform.pages.allocate(zone: .above(PhysicalAddress(1 << 33)))
        #expect(try audio.map(buffer, size: 100, direction: .toDevice) == IOVirtualAddress(buffer.value))
        try audio.setMasks(streamingBits: 32)
        // Beyond the mask the data goes through a bounce buffer below it (issue #4: swiotlb).
        try platform.memory.write(buffer, bytes: [1, 2, 3])
        let bounced = try audio.map(buffer, size: 100, direction: .toDevice)
        #expect(bounced.value + 99 <= 0xFFFF_FFFF)
        #expect(audio.device.engine.read(from: bounced, count: 3).bytes == [1, 2, 3])
        try audio.unmap(bounced, size: 100, direction: .toDevice)
        #expect(audio.statistics.bounced == 1)
    }

    @Test func coherentBuffersAreSharedByCPUAndDevice() throws {
        let nvme = try handle("nvme0")
        let ring = try nvme.allocateCoherent(size: 10_000)
        #expect(ring.store(0xFEED_FACE as UInt32, at: 0))
        #expect(nvme.device.engine.read(from: ring.busAddress, count: 4).bytes == [0xCE, 0xFA, 0xED, 0xFE])
        #expect(nvme.device.engine.write(to: ring.busAddress + 8000, bytes: [7]).completed)
        #expect(ring.load(at: 8000, as: UInt8.self) == 7)
        try nvme.freeCoherent(ring)
        #expect(throws: DMAError.notMapped(busAddress: ring.busAddress.value)) { try nvme.freeCoherent(ring) }
    }

    @Test func aClaimedGroupRefusesTheDMAAPI() throws {
        let nic = try handle("nic0")
        let managed = try #require(nic.managed)
        let user = try platform.subsystem.makeDomain(.unmanaged, for: nic.device.address)
        try platform.subsystem.attach(managed.group, to: user, owner: "vfio")
        #expect(throws: DMAError.self) { try nic.map(try platform.pages.allocate(), size: 64, direction: .toDevice) }
        try platform.subsystem.release(managed.group, owner: "vfio")
        let bus = try nic.map(try platform.pages.allocate(), size: 64, direction: .toDevice)
        try nic.unmap(bus, size: 64, direction: .toDevice)
    }
}

@Suite struct LazyInvalidationTests {
    @Test func unmappedRangesStayReachableUntilTheFlushQueueIsFlushed() throws {
        let platform = try EmulatedPlatform(.defaultPlatform(policy: DefaultDomainPolicy(invalidation: .lazy)))
        let nic = try #require(platform.dma(for: "nic0"))
        #expect(nic.domainKind == .dmaLazy)
        let buffer = try platform.pages.allocate()
        let bus = try nic.map(buffer, size: 4096, direction: .fromDevice)
        #expect(nic.device.engine.write(to: bus, bytes: [1]).completed)
        try nic.unmap(bus, size: 4096, direction: .fromDevice)
        #expect(nic.deferredUnmaps == 1)
        #expect(nic.device.engine.write(to: bus, bytes: [2]).completed) // the lazy window, as documented
        nic.flushDeferred()
        #expect(nic.deferredUnmaps == 0)
        #expect(nic.device.engine.write(to: bus, bytes: [3]).fault != nil)
        #expect(try platform.memory.read(buffer, count: 1) == [2])
    }
}
