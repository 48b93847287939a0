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
}

extension DeviceDMA {
    /// Maps a scatter-gather list. Behind a translating IOMMU the whole list
    /// gets one contiguous IOVA range: each piece keeps its offset in its
    /// first page, and pieces that meet on page boundaries come out as one
    /// bus segment, up to ``DMAConfiguration/maxSegmentSize`` and never across
    /// ``DMAConfiguration/segmentBoundaryMask``. Without translation each piece
    /// is mapped (or bounced) directly and physically adjacent pieces merge.
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
            return MappedScatterList(segments: merge(mapped), direction: direction, input: list,
                                     iovaRange: nil, perPiece: mapped)
        }
    }

    private func mapTranslatedList(_ list: [DMAScatterSegment], direction: DMADirection,
                                   state: DMADomainState) throws(DMAError) -> MappedScatterList {
        let granule = state.granule, mask = state.granuleMask
        let boundary = configuration.segmentBoundaryMask &+ 1
        // Lay the pieces out from IOVA 0; the allocation is aligned to its
        // power-of-two size, so boundaries found here hold at the real base.
        var layout: [(at: UInt64, offset: UInt64, span: UInt64)] = []
        var cursor: UInt64 = 0
        for piece in list {
            let offset = piece.physical.value & mask
            let span = (offset + UInt64(piece.length) + mask) & ~mask
            if boundary != 0, span <= boundary, cursor / boundary != (cursor + span - 1) / boundary {
                cursor = (cursor / boundary + 1) * boundary
            }
            layout.append((cursor, offset, span))
            cursor += span
        }
        let limit = streamingLimit.load(ordering: .relaxed)
        let base: UInt64
        do { base = try state.allocator.allocate(size: cursor, limit: limit, preferredLimit: preferredLimit(under: limit)) }
        catch { throw .addressSpaceExhausted(error) }
        var done = 0
        do {
            for (piece, place) in zip(list, layout) {
                try state.domain.map(iova: IOVirtualAddress(base + place.at),
                                     physical: PhysicalAddress(piece.physical.value - place.offset), size: place.span,
                                     permissions: direction.devicePermissions)
                done += 1
            }
        } catch {
            var gather = IOTLBGather()
            for place in layout.prefix(done) {
                _ = try? state.domain.unmap(iova: IOVirtualAddress(base + place.at), size: place.span, gather: &gather)
            }
            state.domain.flush(gather)
            try? state.allocator.free(address: base, size: cursor)
            throw .iommu(error)
        }
        state.ledger.record(iova: base, granules: cursor / granule)
        let pieces = zip(list, layout).map { piece, place in
            DMABusSegment(busAddress: IOVirtualAddress(base + place.at + place.offset), length: UInt64(piece.length))
        }
        debug?.mapped(bus: base, size: cursor, direction: direction, call: "mapScatterList")
        let slot = slots.current
        slot.pointee.bump(slot.pointee.maps, by: 1)
        slot.pointee.bump(slot.pointee.bytes, by: list.reduce(0) { $0 + UInt64($1.length) })
        return MappedScatterList(segments: merge(pieces), direction: direction, input: list,
                                 iovaRange: (base, cursor), perPiece: pieces)
    }

    /// Joins bus-contiguous pieces within the segment size and boundary limits.
    func merge(_ pieces: [DMABusSegment]) -> [DMABusSegment] {
        let boundary = configuration.segmentBoundaryMask
        var merged: [DMABusSegment] = []
        for piece in pieces {
            if var last = merged.last, last.busAddress.value + last.length == piece.busAddress.value,
               last.length + piece.length <= configuration.maxSegmentSize,
               last.busAddress.value & ~boundary == (piece.busAddress.value + piece.length - 1) & ~boundary {
                last.length += piece.length
                merged[merged.count - 1] = last
            } else {
                merged.append(piece)
            }
        }
        return merged
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
