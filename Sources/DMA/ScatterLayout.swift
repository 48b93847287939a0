import Emulation

/// Where each piece of a scatter-gather list goes in its one IOVA range, laid out from 0
/// (iommu_dma_map_sg's first pass). The range is allocated size-aligned, so boundaries found
/// from 0 hold at the real base: a range no bigger than the boundary cannot cross one, and a
/// bigger one starts on one.
struct ScatterLayout {
    struct Place {
        /// First byte of the piece's granules, from the start of the range.
        var at: UInt64
        /// The piece's offset in its first granule.
        var offset: UInt64
        /// The piece's granules.
        var span: UInt64
        /// `span` plus the gap left after it so the next piece starts on a segment boundary.
        var reach: UInt64
        var length: UInt64
    }

    /// A run of pieces that are contiguous both physically and in the range: one IOMMU-API map.
    struct Run {
        var at: UInt64
        var physical: UInt64
        var span: UInt64
    }

    private(set) var pieces: [Place] = []
    private(set) var runs: [Run] = []
    /// Bytes of IOVA space the list needs.
    private(set) var length: UInt64 = 0

    /// Nil when the list does not fit in the 64-bit space.
    init?(_ list: [DMAScatterSegment], granuleMask: UInt64, boundaryMask: UInt64) {
        pieces.reserveCapacity(list.count)
        for piece in list {
            let offset = piece.physical.value & granuleMask
            let (end, overflow) = (offset + UInt64(piece.length)).addingReportingOverflow(granuleMask)
            guard !overflow else { return nil }
            let span = end & ~granuleMask
            // The distance to the next boundary; a piece that would cross it starts there,
            // and the gap stays unmapped (Linux maps the pages after the previous piece there).
            let gap = (boundaryMask &- length &+ 1) & boundaryMask
            if gap != 0, gap < span - 1, !pieces.isEmpty {
                pieces[pieces.count - 1].reach += gap
                length += gap
            }
            pieces.append(Place(at: length, offset: offset, span: span, reach: span, length: UInt64(piece.length)))
            let (next, tooLong) = length.addingReportingOverflow(span)
            guard !tooLong else { return nil }
            length = next
            let physical = piece.physical.value - offset
            if let last = runs.last, last.at + last.span == pieces[pieces.count - 1].at,
               last.physical + last.span == physical {
                runs[runs.count - 1].span += span
            } else {
                runs.append(Run(at: pieces[pieces.count - 1].at, physical: physical, span: span))
            }
        }
    }

    /// The bus segments the device is given (__finalise_sg): a piece extends the current
    /// segment when it starts its granule, the segment's last piece filled its granules (and
    /// left no gap), it does not start on a segment boundary and the segment stays within
    /// the maximum segment size.
    func busSegments(at base: UInt64, configuration: DMAConfiguration) -> [DMABusSegment] {
        let maximum = configuration.maxSegmentSize, boundaryMask = configuration.segmentBoundaryMask
        var segments: [DMABusSegment] = []
        var open: UInt64 = 0
        for place in pieces {
            let address = base + place.at
            if open != 0, place.offset == 0, address & boundaryMask != 0, open <= maximum, maximum - open >= place.length {
                open += place.length
                segments[segments.count - 1].length = open
            } else {
                segments.append(DMABusSegment(busAddress: IOVirtualAddress(address + place.offset), length: place.length))
                open = place.length
            }
            if place.offset + place.length < place.reach { open = 0 }
        }
        return segments
    }
}
