import DMA
import Emulation

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
