import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// Shadow buffers: streaming mappings copied through a per-device pool mapped once.
@Suite struct ShadowBufferTests {
    static func platform(granules: Int = 16, debug: Bool = false, family: IOMMUFamily = .intelVTd) throws -> EmulatedPlatform {
        try EmulatedPlatform(.defaultPlatform(family: family),
                             dmaConfiguration: DMAConfiguration(debugChecks: debug,
                                                                streamingProtection: .shadowBuffers(granules: granules)))
    }

    /// IOTLB invalidations of every kind the platform's units performed so far.
    static func invalidations(_ platform: EmulatedPlatform) -> UInt64 {
        platform.units.map(\.unitReport).reduce(0) { $0 + $1.pageInvalidations + $1.domainInvalidations + $1.globalInvalidations }
    }

    @Test func dataArrivesBothWaysThroughTheSlotsAndTheCallersPagesAreNeverMapped() throws {
        let platform = try Self.platform()
        let nic = try #require(platform.dma(for: "nic0"))
        let layout = try #require(nic.shadowPoolLayout)
        #expect(nic.usesShadowBuffers && layout.bytes == 16 * 4096)
        let buffer = try platform.pages.allocate(pages: 2) + 0x7F0
        let outgoing = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try platform.memory.write(buffer, bytes: outgoing)
        let bus = try nic.map(buffer, size: 3000, direction: .bidirectional)
        #expect(bus.value & 0xFFF == 0x7F0)
        #expect(bus.value >= layout.busAddress.value && bus.value + 3000 <= layout.busAddress.value + layout.bytes)
        #expect(nic.device.engine.read(from: bus, count: 3000).bytes == outgoing)
        // The device's write lands in the slot only; the caller sees it at unmap.
        let incoming = [UInt8](repeating: 0x5A, count: 3000)
        #expect(nic.device.engine.write(to: bus, bytes: incoming).completed)
        #expect(try platform.memory.read(buffer, count: 3000) == outgoing)
        #expect(nic.managed?.domain?.translate(bus) != buffer)
        try nic.unmap(bus, size: 3000, direction: .bidirectional)
        #expect(try platform.memory.read(buffer, count: 3000) == incoming)
        let statistics = try #require(nic.shadowPoolStatistics)
        #expect(statistics.mappings == 1 && statistics.unmappings == 1 && statistics.bytesCopiedIn == 3000
                && statistics.bytesCopiedOut == 3000 && statistics.granulesFree == 16)
    }

    @Test func aToDeviceBufferIsNotCopiedBackSoADeviceWriteNeverReachesTheCaller() throws {
        let platform = try Self.platform()
        let nic = try #require(platform.dma(for: "nic0"))
        let buffer = try platform.pages.allocate()
        try platform.memory.write(buffer, bytes: [1, 2, 3, 4])
        let bus = try nic.map(buffer, size: 4, direction: .toDevice)
        // The pool is mapped read+write: the write completes, but only changes the shadow copy.
        #expect(nic.device.engine.write(to: bus, bytes: [9, 9, 9, 9]).completed)
        try nic.unmap(bus, size: 4, direction: .toDevice)
        #expect(try platform.memory.read(buffer, count: 4) == [1, 2, 3, 4])
    }

    @Test func syncCopiesEachWayAsTheDirectionSays() throws {
        let platform = try Self.platform()
        let nic = try #require(platform.dma(for: "nic0"))
        let buffer = try platform.pages.allocate()
        let bus = try nic.map(buffer, size: 256, direction: .bidirectional)
        #expect(nic.device.engine.write(to: bus + 16, bytes: [0xAB, 0xCD]).completed)
        try nic.syncForCPU(bus + 16, size: 2, direction: .bidirectional)
        #expect(try platform.memory.read(buffer + 16, count: 2) == [0xAB, 0xCD])
        try platform.memory.write(buffer + 32, bytes: [0x11, 0x22])
        #expect(nic.device.engine.read(from: bus + 32, count: 2).bytes == [0, 0])
        try nic.syncForDevice(bus + 32, size: 2, direction: .bidirectional)
        #expect(nic.device.engine.read(from: bus + 32, count: 2).bytes == [0x11, 0x22])
        #expect(throws: DMAError.syncOfUnmapped(busAddress: bus.value + 200, size: 100)) {
            try nic.syncForCPU(bus + 200, size: 100, direction: .bidirectional)
        }
        try nic.unmap(bus, size: 256, direction: .bidirectional)
        #expect(throws: DMAError.syncOfUnmapped(busAddress: bus.value, size: 2)) {
            try nic.syncForCPU(bus, size: 2, direction: .bidirectional)
        }
    }

    @Test func theStreamingPathNeitherMapsNorUnmapsNorInvalidates() throws {
        let platform = try Self.platform(granules: 64)
        let nic = try #require(platform.dma(for: "nic0"))
        let domain = try #require(nic.managed?.domain)
        let buffer = try platform.pages.allocate(pages: 8)
        let layout = try #require(nic.shadowPoolLayout)
        let before = Self.invalidations(platform)
        for round in 0..<200 {
            let size = 64 + (round % 5) * 4096
            let bus = try nic.map(buffer + UInt64(round % 3) * 512, size: size, direction: .fromDevice)
            try nic.unmap(bus, size: size, direction: .fromDevice)
        }
        let list = try nic.mapScatterList([DMAScatterSegment(physical: buffer, length: 4096),
                                           DMAScatterSegment(physical: buffer + 8192, length: 100)], direction: .toDevice)
        try nic.unmapScatterList(list)
        #expect(Self.invalidations(platform) == before)
        // Every page of the pool still translates to the pool, and nothing else was mapped.
        for page in stride(from: 0, to: layout.bytes, by: 4096) {
            #expect(domain.translate(layout.busAddress + page) == layout.physical + page)
        }
        #expect(nic.shadowPoolStatistics?.mappings == 202)
        // The counter does move for what does unmap: a coherent buffer's free is strict.
        try nic.freeCoherent(try nic.allocateCoherent(size: 4096))
        #expect(Self.invalidations(platform) > before)
    }

    @Test func exhaustionIsAnExactErrorAndLeavesLiveMappingsIntact() throws {
        let platform = try Self.platform(granules: 4)
        let nic = try #require(platform.dma(for: "nic0"))
        let buffer = try platform.pages.allocate(pages: 8)
        try platform.memory.write(buffer, bytes: [7, 7, 7])
        let first = try nic.map(buffer, size: 3 * 4096, direction: .bidirectional)
        #expect(throws: DMAError.shadowPoolExhausted(size: 8192, granulesFree: 1)) {
            try nic.map(buffer + 4096, size: 8192, direction: .toDevice)
        }
        #expect(throws: DMAError.shadowPoolExhausted(size: 5 * 4096, granulesFree: 1)) {
            try nic.map(buffer, size: 5 * 4096, direction: .toDevice)
        }
        #expect(nic.device.engine.read(from: first, count: 3).bytes == [7, 7, 7])
        let last = try nic.map(buffer, size: 4096, direction: .toDevice)
        try nic.unmap(last, size: 4096, direction: .toDevice)
        try nic.unmap(first, size: 3 * 4096, direction: .bidirectional)
        #expect(nic.shadowPoolStatistics?.granulesFree == 4)
        // A run that straddles the search hint is found once the slots around it are free.
        let whole = try nic.map(buffer, size: 4 * 4096, direction: .toDevice)
        try nic.unmap(whole, size: 4 * 4096, direction: .toDevice)
    }

    @Test func aPartialPageBufferNeverShowsItsNeighboursThroughTheSlot() throws {
        let platform = try Self.platform()
        let nic = try #require(platform.dma(for: "nic0"))
        let page = try platform.pages.allocate()
        let secret = [UInt8](repeating: 0xC3, count: 4096)
        try platform.memory.write(page, bytes: secret)
        let bus = try nic.map(page + 2048, size: 512, direction: .bidirectional)
        let (bytes, result) = nic.device.engine.read(from: IOVirtualAddress(bus.value - 2048), count: 4096)
        #expect(result.completed)
        #expect(bytes[2048..<2560].allSatisfy { $0 == 0xC3 })
        #expect(bytes[0..<2048].allSatisfy { $0 == 0 } && bytes[2560...].allSatisfy { $0 == 0 })
        #expect(nic.device.engine.write(to: IOVirtualAddress(bus.value - 2048), bytes: [UInt8](repeating: 0xEE, count: 4096)).completed)
        try nic.unmap(bus, size: 512, direction: .bidirectional)
        let after = try platform.memory.read(page, count: 4096)
        #expect(after[0..<2048] == secret[0..<2048] && after[2560...] == secret[2560...])
        #expect(after[2048..<2560].allSatisfy { $0 == 0xEE })
    }

    @Test func misuseGetsTheSameErrorsWithAndWithoutDebugChecking() throws {
        for debug in [false, true] {
            let platform = try Self.platform(debug: debug)
            let nic = try #require(platform.dma(for: "nic0"))
            let layout = try #require(nic.shadowPoolLayout)
            let buffer = try platform.pages.allocate()
            let bus = try nic.map(buffer, size: 100, direction: .toDevice)
            #expect(throws: DMAError.notMapped(busAddress: layout.busAddress.value + 0x3000)) {
                try nic.unmap(layout.busAddress + 0x3000, size: 100, direction: .toDevice)
            }
            #expect(throws: DMAError.sizeMismatch(busAddress: bus.value, mapped: 100, given: 50)) {
                try nic.unmap(bus, size: 50, direction: .toDevice)
            }
            try nic.unmap(bus, size: 100, direction: .toDevice)
            let second = debug ? DMAError.alreadyUnmapped(busAddress: bus.value) : .notMapped(busAddress: bus.value)
            #expect(throws: second) { try nic.unmap(bus, size: 100, direction: .toDevice) }
            #expect(nic.debugReports.count == (debug ? 3 : 0))
        }
    }

    @Test func removalGivesThePoolBackAndTheDeviceReachesNothingThere() throws {
        let platform = try Self.platform(granules: 8)
        let nic = try #require(platform.dma(for: "nic0"))
        let layout = try #require(nic.shadowPoolLayout)
        let domain = try #require(nic.managed?.domain)
        let allocated = platform.pages.allocatedPages
        let buffer = try platform.pages.allocate()
        let bus = try nic.map(buffer, size: 64, direction: .toDevice)
        #expect(nic.device.engine.read(from: bus, count: 8).result.completed) // warms the IOTLB
        try nic.unmap(bus, size: 64, direction: .toDevice)
        try nic.deviceRemoved()
        #expect(!nic.usesShadowBuffers && nic.shadowPoolLayout == nil)
        #expect(domain.translate(layout.busAddress) == nil)
        #expect(nic.device.engine.read(from: bus, count: 8).result.fault != nil)
        #expect(platform.pages.allocatedPages == allocated + 1 - 8)
        #expect(throws: DMAError.deviceUnavailable(nic.device.address, reason: "its shadow pool was released at removal")) {
            try nic.map(buffer, size: 64, direction: .toDevice)
        }
    }

    @Test func coherentBuffersAndIdentityDevicesKeepTheirUsualPath() throws {
        let platform = try Self.platform()
        let nic = try #require(platform.dma(for: "nic0"))
        let audio = try #require(platform.dma(for: "audio"))
        #expect(!audio.usesShadowBuffers)
        let layout = try #require(nic.shadowPoolLayout)
        let ring = try nic.allocateCoherent(size: 8192)
        #expect(ring.busAddress.value < layout.busAddress.value || ring.busAddress.value >= layout.busAddress.value + layout.bytes)
        #expect(nic.device.engine.write(to: ring.busAddress, bytes: [1]).completed && ring.read(at: 0, count: 1) == [1])
        try nic.freeCoherent(ring)
        let buffer = try platform.pages.allocate()
        #expect(try audio.map(buffer, size: 64, direction: .toDevice).value == buffer.value)
    }

    @Test(arguments: [IOMMUFamily.amdVi, .armSMMU, .amdGART, .ibmCalgary])
    func everyFamilyMovesDataThroughItsPool(family: IOMMUFamily) throws {
        let platform = try Self.platform(family: family)
        let nvme = try #require(platform.dma(for: "nvme0"))
        let legacy = try #require(platform.dma(for: "legacy-dma"))
        for dma in [nvme, legacy] {
            let layout = try #require(dma.shadowPoolLayout)
            #expect(layout.busAddress.value + layout.bytes - 1 <= dma.streamingMask)
            let buffer = try platform.pages.allocate(zone: .above(PhysicalAddress(1 << 33))) + 100
            let bus = try dma.map(buffer, size: 1500, direction: .fromDevice)
            let pattern = (0..<1500).map { UInt8(truncatingIfNeeded: $0) }
            #expect(dma.device.engine.write(to: bus, bytes: pattern).completed)
            try dma.unmap(bus, size: 1500, direction: .fromDevice)
            #expect(try platform.memory.read(buffer, count: 1500) == pattern)
        }
    }
}
