import DMA
import Emulation
import IOMMUCore

/// Everything one scenario run works with and records into: the platform,
/// its parameters, a seeded generator, the checks that passed or failed,
/// latencies and findings. One run uses it from one thread.
public final class ScenarioContext {
    public let platform: EmulatedPlatform
    public let parameters: ScenarioParameters
    var generator: SplitMix64
    var latencies = LatencyRecorder()
    /// I/O virtual address space held by the scenario's live mappings.
    var iovaBytesInUse: UInt64 = 0
    private(set) var checksPassed = 0
    private(set) var checksFailed = 0
    private(set) var notes: [String] = []
    var findings: [String: UInt64] = [:]
    /// Bytes moved by devices that were removed during the run (their counters left with them).
    var retiredBytesMoved: UInt64 = 0
    /// Physical runs the scenario allocated and not yet freed, by start address.
    private var ownedPages: [PhysicalAddress: UInt64] = [:]
    static let noteLimit = 24

    init(platform: EmulatedPlatform, parameters: ScenarioParameters) {
        self.platform = platform
        self.parameters = parameters
        generator = SplitMix64(seed: parameters.seed)
    }

    var memory: PhysicalMemory { platform.memory }

    func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        if condition { checksPassed += 1 } else {
            checksFailed += 1
            note("FAILED: " + what())
        }
    }

    func note(_ text: String) {
        if notes.count < Self.noteLimit { notes.append(text) }
    }

    func count(_ finding: String, _ amount: UInt64 = 1) { findings[finding, default: 0] += amount }

    func random(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &generator) }
    func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = generator.next()
            for _ in 0..<min(8, count - index) {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }

    /// The scenario's DMA handle for `device`.
    func dma(_ device: DeviceDMA) -> ScenarioDMA { ScenarioDMA(dma: device, context: self) }

    /// The scenario devices of the platform, in address order.
    func devices(named prefix: String) -> [DeviceDMA] {
        platform.devices.filter { $0.name.hasPrefix(prefix) }.compactMap { platform.dma[$0.address] }
    }

    /// Contiguous zeroed pages for buffers, remembered so that ``releaseAllPages()`` can give them back.
    /// - Throws: ``ScenarioError/setup(_:)`` when memory is exhausted.
    func allocatePages(_ count: UInt64, zone: PhysicalPageAllocator.Zone = .any) throws(ScenarioError) -> PhysicalAddress {
        do {
            let address = try platform.pages.allocate(pages: count, zone: zone)
            ownedPages[address] = count
            return address
        } catch { throw .setup("allocate \(count) pages in \(zone): \(error)") }
    }

    func freePages(_ address: PhysicalAddress) {
        guard let count = ownedPages.removeValue(forKey: address) else { return }
        do { try platform.pages.free(address, pages: count) } catch { check(false, "free \(count) pages at \(address): \(error)") }
    }

    func releaseAllPages() {
        for address in Array(ownedPages.keys) { freePages(address) }
    }
}

/// A physically contiguous piece of a buffer.
struct DMASegment: Hashable {
    var physical: PhysicalAddress
    var size: Int
}

/// A piece as the device sees it.
struct MappedSegment: Hashable {
    var bus: IOVirtualAddress
    var size: Int
}

/// The scenario's only way to the DMA API. Each call is timed here, with a
/// cheap clock, so that the DMA layer's hot path stays free of timing; and
/// scatter-gather lists go through ``mapScatterList(_:direction:)`` alone, so
/// that moving to the DMA layer's own scatter-gather API is one change.
struct ScenarioDMA {
    let dma: DeviceDMA
    unowned let context: ScenarioContext

    var device: PCIDevice { dma.device }
    var engine: DMAEngine { dma.device.engine }
    var translates: Bool { dma.domainKind?.usesDMALayer == true }

    /// - Throws: the DMA layer's ``DMAError``; nothing stays mapped then.
    func map(_ physical: PhysicalAddress, size: Int, direction: DMADirection) throws(DMAError) -> IOVirtualAddress {
        let start = ScenarioClock.nanoseconds()
        let bus = try dma.map(physical, size: size, direction: direction)
        context.latencies.recordMap(ScenarioClock.nanoseconds() &- start)
        if translates { context.iovaBytesInUse += Self.span(physical.value, size) }
        return bus
    }

    /// - Throws: the DMA layer's ``DMAError``.
    func unmap(_ bus: IOVirtualAddress, size: Int, direction: DMADirection) throws(DMAError) {
        let start = ScenarioClock.nanoseconds()
        try dma.unmap(bus, size: size, direction: direction)
        context.latencies.recordUnmap(ScenarioClock.nanoseconds() &- start)
        if translates { context.iovaBytesInUse -= min(context.iovaBytesInUse, Self.span(bus.value, size)) }
    }

    /// Maps every segment of a scatter-gather list; all or nothing.
    /// - Throws: the first ``DMAError``; segments mapped before it are unmapped again.
    func mapScatterList(_ segments: [DMASegment], direction: DMADirection) throws(DMAError) -> [MappedSegment] {
        var mapped: [MappedSegment] = []
        mapped.reserveCapacity(segments.count)
        for segment in segments {
            do {
                mapped.append(MappedSegment(bus: try map(segment.physical, size: segment.size, direction: direction),
                                            size: segment.size))
            } catch {
                unmapScatterList(mapped, direction: direction)
                throw error
            }
        }
        return mapped
    }

    /// Unmaps a list from ``mapScatterList(_:direction:)``; returns the failures, described.
    @discardableResult
    func unmapScatterList(_ mapped: [MappedSegment], direction: DMADirection) -> [String] {
        var failures: [String] = []
        for segment in mapped {
            do { try unmap(segment.bus, size: segment.size, direction: direction) } catch {
                failures.append("unmap \(segment.bus): \(error)")
            }
        }
        return failures
    }

    /// - Throws: the DMA layer's ``DMAError``.
    func allocateCoherent(size: Int) throws(DMAError) -> CoherentBuffer {
        let buffer = try dma.allocateCoherent(size: size)
        if translates { context.iovaBytesInUse += Self.span(0, size) }
        return buffer
    }

    /// - Throws: the DMA layer's ``DMAError``.
    func freeCoherent(_ buffer: CoherentBuffer) throws(DMAError) {
        try dma.freeCoherent(buffer)
        if translates { context.iovaBytesInUse -= min(context.iovaBytesInUse, Self.span(0, buffer.size)) }
    }

    /// The whole 4 KiB pages a mapping of `size` bytes starting at `address` covers.
    static func span(_ address: UInt64, _ size: Int) -> UInt64 {
        let offset = address & 0xFFF
        return (offset + UInt64(size) + 0xFFF) & ~0xFFF
    }

    // MARK: The device side

    /// The device reads `count` bytes from a list of bus segments, in order; stops at the first fault.
    func deviceGather(_ segments: [MappedSegment], count: Int) -> (bytes: [UInt8], completed: Bool) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for segment in segments where bytes.count < count {
            let (part, result) = engine.read(from: segment.bus, count: min(segment.size, count - bytes.count))
            bytes += part
            if !result.completed { return (bytes, false) }
        }
        return (bytes, bytes.count == count)
    }

    /// The device writes `bytes` across a list of bus segments, in order; false at the first fault.
    func deviceScatter(_ bytes: [UInt8], into segments: [MappedSegment]) -> Bool {
        var done = 0
        for segment in segments where done < bytes.count {
            let length = min(segment.size, bytes.count - done)
            let result = engine.write(to: segment.bus, bytes: Array(bytes[done..<(done + length)]))
            done += result.bytesTransferred
            if !result.completed { return false }
        }
        return done == bytes.count
    }
}
