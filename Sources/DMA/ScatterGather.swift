import Emulation
import IOMMUCore

/// One physically contiguous piece of a scatter-gather list.
public struct DMAScatterSegment: Sendable, Hashable {
    public var physical: PhysicalAddress
    public var length: Int
    public init(physical: PhysicalAddress, length: Int) {
        self.physical = physical
        self.length = length
    }
}

/// One segment as the device sees it after mapping.
public struct DMABusSegment: Sendable, Hashable {
    public var busAddress: IOVirtualAddress
    public var length: UInt64
}

/// A mapped scatter-gather list (dma_map_sg's result): the segments to give
/// the device, merged where the layout allowed. Unmap it as one.
public struct MappedScatterList: Sendable, Hashable {
    public let segments: [DMABusSegment]
    public let direction: DMADirection
    /// The IOMMU-API map calls the list took: one per run of physically contiguous pieces
    /// behind a translating IOMMU (Linux's iommu_map_sg), none for a direct mapping.
    public let iommuMapCalls: Int
    /// The input, kept for unmap (bounce copy-back and the translated range).
    let input: [DMAScatterSegment]
    /// For a translated list: the one IOVA range, as first address and bytes.
    let iovaRange: (first: UInt64, span: UInt64)?
    /// Each input piece's bus address before merging.
    let perPiece: [DMABusSegment]

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.segments == rhs.segments && lhs.direction == rhs.direction && lhs.input == rhs.input
    }
    public func hash(into hasher: inout Hasher) { hasher.combine(segments) }

    /// Bytes of IOVA space the list holds behind a translating IOMMU (0 for a direct mapping).
    public var iovaLength: UInt64 { iovaRange?.span ?? 0 }
}

extension DeviceDMA {
    /// Maps a scatter-gather list as Linux's iommu_dma_map_sg does. Behind a translating
    /// IOMMU the whole list gets one IOVA range: each piece takes whole granules from the
    /// start of its first one (so it keeps its in-granule offset), and a piece that would
    /// cross a ``DMAConfiguration/segmentBoundaryMask`` boundary starts at the next one. A
    /// piece joins the previous bus segment when it starts on a granule boundary, the previous
    /// piece filled its granules, the join is not at a segment boundary and stays within
    /// ``DMAConfiguration/maxSegmentSize``. Without translation (dma-direct) each piece is
    /// mapped, or bounced, on its own and is its own bus segment.
    /// - Throws: ``DMAError/emptyScatterList``, and what ``map(_:size:direction:)`` throws; nothing stays mapped then.
    public func mapScatterList(_ list: [DMAScatterSegment], direction: DMADirection) throws(DMAError) -> MappedScatterList {
        guard !list.isEmpty, list.allSatisfy({ $0.length > 0 }) else { throw .emptyScatterList }
        switch try checkUsable() {
        case let .translated(state) where !bouncesPartialPages && shadow == nil:
            return try mapTranslatedList(list, direction: direction, state: state)
        default:
            var mapped: [DMABusSegment] = []
            for piece in list {
                do {
                    let bus = try mapGeneral(piece.physical, size: UInt64(piece.length), direction: direction, call: "mapScatterList")
                    mapped.append(DMABusSegment(busAddress: bus, length: UInt64(piece.length)))
                } catch {
                    for (done, input) in zip(mapped, list) {
                        try? unmapGeneral(done.busAddress, size: UInt64(input.length), direction: direction, call: "mapScatterList")
                    }
                    throw error
                }
            }
            return MappedScatterList(segments: mapped, direction: direction, iommuMapCalls: 0, input: list,
                                     iovaRange: nil, perPiece: mapped)
        }
    }

    private func mapTranslatedList(_ list: [DMAScatterSegment], direction: DMADirection,
                                   state: DMADomainState) throws(DMAError) -> MappedScatterList {
        let limit = streamingLimit.load(ordering: .relaxed)
        guard let layout = ScatterLayout(list, granuleMask: state.granuleMask,
                                         boundaryMask: configuration.segmentBoundaryMask) else {
            throw .addressSpaceExhausted(.exhausted(size: .max, limit: limit))
        }
        let base: UInt64
        do { base = try state.allocateIOVA(size: layout.length, limit: limit, preferredLimit: preferredLimit(under: limit)) }
        catch { throw .addressSpaceExhausted(error) }
        var done = 0
        do {
            for run in layout.runs {
                try state.domain.map(iova: IOVirtualAddress(base + run.at), physical: PhysicalAddress(run.physical),
                                     size: run.span, permissions: direction.devicePermissions)
                done += 1
            }
        } catch {
            var gather = IOTLBGather()
            for run in layout.runs.prefix(done) {
                _ = try? state.domain.unmap(iova: IOVirtualAddress(base + run.at), size: run.span, gather: &gather)
            }
            state.domain.flush(gather)
            state.abandonIOVA(base, size: layout.length)
            throw .iommu(error)
        }
        state.ledger.record(iova: base, granules: layout.length / state.granule)
        let pieces = zip(list, layout.pieces).map { piece, place in
            DMABusSegment(busAddress: IOVirtualAddress(base + place.at + place.offset), length: UInt64(piece.length))
        }
        debug?.mapped(bus: base, size: layout.length, direction: direction, call: "mapScatterList")
        let slot = slots.current
        slot.pointee.bump(slot.pointee.maps, by: 1)
        slot.pointee.bump(slot.pointee.bytes, by: list.reduce(0) { $0 + UInt64($1.length) })
        return MappedScatterList(segments: layout.busSegments(at: base, configuration: configuration), direction: direction,
                                 iommuMapCalls: layout.runs.count, input: list, iovaRange: (base, layout.length),
                                 perPiece: pieces)
    }

    /// Unmaps a list mapped by ``mapScatterList(_:direction:)`` as one.
    /// - Throws: ``DMAError/notMapped(busAddress:)`` when it is not live (already unmapped), and with
    ///   debug checking ``DMAError/alreadyUnmapped(busAddress:)`` or ``DMAError/directionMismatch(busAddress:mapped:given:)``.
    public func unmapScatterList(_ list: MappedScatterList) throws(DMAError) {
        switch try checkUsable() {
        case let .translated(state) where list.iovaRange != nil:
            let range = list.iovaRange!
            try debug?.unmapping(bus: range.first, size: range.span, direction: list.direction, call: "unmapScatterList")
            try unmapTranslated(IOVirtualAddress(range.first), length: range.span, in: state)
            let slot = slots.current
            slot.pointee.bump(slot.pointee.unmaps, by: 1)
        default:
            var firstError: DMAError?
            for (bus, piece) in zip(list.perPiece, list.input) {
                do { try unmapGeneral(bus.busAddress, size: UInt64(piece.length), direction: list.direction, call: "unmapScatterList") }
                catch { firstError = firstError ?? error }
            }
            if let firstError { throw firstError }
        }
    }
}
