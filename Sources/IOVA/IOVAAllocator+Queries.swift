import Synchronization

extension IOVAAllocator {
    /// Punches a hole: `range`, rounded outward to whole granules and clipped to ``space``, is
    /// never handed out. Overlapping or adjacent holes merge. A range wholly outside the space
    /// changes nothing.
    /// - Throws: ``IOVAError/reserveOverlapsAllocation(first:last:)`` if the rounded range covers
    ///   a live allocation (cached blocks are drained first and do not count). Nothing changes then.
    public func reserve(_ range: ClosedRange<UInt64>) throws(IOVAError) {
        let first = max(range.lowerBound >> shift, firstPfn)
        let last = min(range.upperBound >> shift, lastPfn)
        guard first <= last else { return }
        for attempt in 0..<2 {
            let overlaps = core.pointee.tree.withLock { t -> Bool in
                if t.allocationOverlapping(first: first, last: last) != nil { return true }
                t.reserve(first: first, last: last)
                return false
            }
            if !overlaps { return }
            if attempt == 1 || !cachesEnabled || drainAllCaches() == 0 { break }
        }
        throw .reserveOverlapsAllocation(first: first << shift, last: (last << shift) | mask)
    }

    /// The allocation containing `address` as a byte range: a live one, or one parked in a cache
    /// (not yet reused). Nil if `address` is free, reserved or outside the space.
    public func allocation(containing address: UInt64) -> ClosedRange<UInt64>? {
        let pfn = address >> shift
        guard pfn >= firstPfn, pfn <= lastPfn else { return nil }
        return core.pointee.tree.withLock { t -> ClosedRange<UInt64>? in
            guard let n = t.allocation(containing: pfn) else { return nil }
            return bytes(n.start, n.length)
        }
    }

    /// The size, in bytes rounded to whole granules, that the live allocation starting exactly
    /// at `address` was requested with; nil if no live allocation starts there (cached blocks
    /// are not live). Lock-free for sizes up to ``maxCachedGranules`` granules, so a DMA unmap
    /// can check its length without touching the tree lock.
    public func allocatedSize(at address: UInt64) -> UInt64? {
        let pfn = address >> shift
        guard address & mask == 0, pfn >= firstPfn, pfn <= lastPfn else { return nil }
        if cachesEnabled, let slot = live.slot(pfn) {
            let state = slot.pointee.load(ordering: .acquiring)
            if state == LiveTable.cachedMarker { return nil }
            if state != 0 { return UInt64(state) << shift }
        }
        return core.pointee.tree.withLock { t -> UInt64? in
            guard let n = t.allocation(startingAt: pfn), n.tag & RangeTree.cacheManaged == 0 else { return nil }
            return n.length << shift
        }
    }

    /// The reserved hole (after merging) containing `address`, as a byte range; nil if none.
    public func reservedRange(containing address: UInt64) -> ClosedRange<UInt64>? {
        let pfn = address >> shift
        guard pfn >= firstPfn, pfn <= lastPfn else { return nil }
        return core.pointee.tree.withLock { t -> ClosedRange<UInt64>? in
            guard let n = t.reservation(containing: pfn) else { return nil }
            return bytes(n.start, n.length)
        }
    }

    /// Moves every cached block (all threads' magazines and the depot) back into the tree.
    public func drainCaches() {
        drainAllCaches()
    }

    /// A consistent snapshot of the counters (all caches are briefly taken from their threads).
    public var statistics: IOVAStatistics {
        withAllCachesStolen { reg in
            var s = IOVAStatistics()
            var cachedRanges: UInt64 = 0
            var cachedGranules: UInt64 = 0
            var hits = reg.retiredHits
            var preferred = reg.retiredPreferredHits
            for c in reg.caches {
                let (r, g) = c.pointer.pointee.contents()
                cachedRanges += r
                cachedGranules += g
                hits += c.pointer.pointee.state.pointee.hits
                preferred += c.pointer.pointee.state.pointee.preferredHits
            }
            depot.withLock { d in
                let (r, g) = d.contents()
                cachedRanges += r
                cachedGranules += g
            }
            core.pointee.tree.withLock { t in
                s.allocatedBytes = (t.allocatedGranules - cachedGranules) << shift
                s.freeBytes = (t.freeGranules + cachedGranules) << shift
                s.reservedBytes = t.reservedGranules << shift
                s.liveAllocations = UInt64(t.allocated.count) - cachedRanges
                s.largestFreeBlock = t.free.largestLength << shift
            }
            s.cachedBytes = cachedGranules << shift
            s.cacheHits = hits
            s.cacheMisses = cacheMisses.load(ordering: .relaxed)
            s.preferredHits = preferred + treePreferredHits.load(ordering: .relaxed)
            s.preferredFallbacks = preferredFallbacks.load(ordering: .relaxed)
            s.exhaustionRetries = exhaustionRetries.load(ordering: .relaxed)
            s.failures = failures.load(ordering: .relaxed)
            return s
        }
    }
}
