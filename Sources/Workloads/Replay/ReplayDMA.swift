import DMA
import Emulation
import IOMMUCore

/// One DMA segment as the device sees it.
public struct ReplaySegment: Sendable, Hashable {
    public var bus: UInt64
    public var length: UInt64
}

/// The only place the replay calls the DMA API.
///
/// It also counts the IOMMU-API calls the DMA layer issues: for a translated
/// default domain `DeviceDMA` performs exactly one `IOMMUDomain.map` per
/// successful streaming map (of the granule-rounded span), one per physically
/// contiguous run of a coherent buffer's pages or of a scatter list (which the
/// list reports), and one `unmap` per unmap; an identity domain issues none. Counting
/// at this seam needs no hook inside IOMMUDomain and is valid for every driver.
struct ReplayDMA {
    let handle: DeviceDMA
    let granule: UInt64 = 4096
    let translated: Bool
    private(set) var iommuMapCalls: UInt64 = 0
    private(set) var iommuMapBytes: UInt64 = 0
    private(set) var iommuUnmapCalls: UInt64 = 0
    private(set) var iommuUnmapBytes: UInt64 = 0

    init(_ handle: DeviceDMA) {
        self.handle = handle
        translated = handle.domainKind == .dma || handle.domainKind == .dmaLazy
    }

    private func span(_ address: UInt64, _ length: UInt64) -> UInt64 {
        let offset = address & (granule - 1)
        return (offset + length + granule - 1) & ~(granule - 1)
    }

    /// - Throws: the DMA layer's ``DMAError``.
    mutating func map(_ physical: UInt64, size: UInt64, direction: DMADirection) throws(DMAError) -> UInt64 {
        let bus = try handle.map(PhysicalAddress(physical), size: Int(clamping: size), direction: direction).value
        if translated { iommuMapCalls += 1; iommuMapBytes += span(physical, size) }
        return bus
    }

    /// - Throws: the DMA layer's ``DMAError``.
    mutating func unmap(_ bus: UInt64, size: UInt64, direction: DMADirection) throws(DMAError) {
        try handle.unmap(IOVirtualAddress(bus), size: Int(clamping: size), direction: direction)
        if translated { iommuUnmapCalls += 1; iommuUnmapBytes += span(bus, size) }
    }

    /// Maps a scatter list with the DMA layer's dma_map_sg (one IOVA range, merged bus segments).
    /// - Throws: the DMA layer's ``DMAError``; nothing stays mapped then.
    mutating func mapScatterList(_ elements: [ReplaySegment], direction: DMADirection) throws(DMAError) -> MappedScatterList {
        let list = elements.map { DMAScatterSegment(physical: PhysicalAddress($0.bus), length: Int(clamping: $0.length)) }
        let mapped = try handle.mapScatterList(list, direction: direction)
        iommuMapCalls += UInt64(mapped.iommuMapCalls)
        if translated { iommuMapBytes += elements.reduce(0) { $0 + span($1.bus, $1.length) } }
        return mapped
    }

    /// - Throws: the DMA layer's ``DMAError``.
    mutating func unmapScatterList(_ mapped: MappedScatterList) throws(DMAError) {
        try handle.unmapScatterList(mapped)
        if translated { iommuUnmapCalls += 1; iommuUnmapBytes += mapped.iovaLength }
    }

    /// - Throws: the DMA layer's ``DMAError``.
    mutating func allocateCoherent(size: UInt64) throws(DMAError) -> CoherentBuffer {
        let buffer = try handle.allocateCoherent(size: Int(clamping: size))
        if translated {
            // The DMA layer maps each physically contiguous run of the buffer's pages with one call.
            iommuMapCalls += 1 + UInt64(buffer.pages.indices.dropFirst().count { buffer.pages[$0] != buffer.pages[$0 - 1] + granule })
            iommuMapBytes += span(0, size)
        }
        return buffer
    }

    /// - Throws: the DMA layer's ``DMAError``.
    mutating func freeCoherent(_ buffer: CoherentBuffer) throws(DMAError) {
        try handle.freeCoherent(buffer)
        if translated { iommuUnmapCalls += 1; iommuUnmapBytes += span(0, UInt64(buffer.size)) }
    }

    func flushDeferred() { handle.flushDeferred() }
}
