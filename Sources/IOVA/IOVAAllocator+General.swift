import Synchronization

/// The general allocate and free: every case the fast paths in IOVAAllocator.swift decline
/// (uncached sizes, unaligned requests, limits, preferred-limit fallbacks, empty or full
/// magazines, and every error).
extension IOVAAllocator {
    @usableFromInline @inline(never)
    func allocateGeneral(size: UInt64, limit: UInt64, preferredLimit: UInt64?,
                         sizeAligned: Bool) throws(IOVAError) -> UInt64 {
        guard size != 0 else { throw .zeroSize }
        let granules = ((size &- 1) >> shift) &+ 1
        guard let limitPfn = limitPfn(limit) else {
            failures.add(1, ordering: .relaxed)
            throw .exhausted(size: size, limit: limit)
        }
        var preferredPfn: UInt64? = nil
        if let p = preferredLimit, let pp = self.limitPfn(p), pp < limitPfn { preferredPfn = pp }
        if cachesEnabled && sizeAligned && granules <= Self.maxCachedGranules {
            let order = granules == 1 ? 0 : 64 - (granules &- 1).leadingZeroBitCount
            let tc = currentCache()
            if let pp = preferredPfn {
                if let pfn = cachedAllocate(tc, order: order, granules: granules, limitPfn: pp, preferred: true) {
                    return pfn << shift
                }
                if let pfn = windowAllocate(tc, granules: granules, limitPfn: pp, order: order)
                    ?? treeAllocate(granules: granules, limitPfn: pp, sizeAligned: true, order: order) {
                    cacheMisses.add(1, ordering: .relaxed)
                    treePreferredHits.add(1, ordering: .relaxed)
                    return pfn << shift
                }
                preferredFallbacks.add(1, ordering: .relaxed)
            }
            if let pfn = cachedAllocate(tc, order: order, granules: granules, limitPfn: limitPfn, preferred: false) {
                return pfn << shift
            }
            cacheMisses.add(1, ordering: .relaxed)
            if let pfn = windowAllocate(tc, granules: granules, limitPfn: limitPfn, order: order) { return pfn << shift }
            return try slowAllocate(size: size, limit: limit, granules: granules, limitPfn: limitPfn,
                                    sizeAligned: true, order: order) << shift
        }
        if let pp = preferredPfn {
            if let pfn = treeAllocate(granules: granules, limitPfn: pp, sizeAligned: sizeAligned, order: nil) {
                treePreferredHits.add(1, ordering: .relaxed)
                return pfn << shift
            }
            preferredFallbacks.add(1, ordering: .relaxed)
        }
        return try slowAllocate(size: size, limit: limit, granules: granules, limitPfn: limitPfn,
                                sizeAligned: sizeAligned, order: nil) << shift
    }

    /// The last granule whose last byte is `<= limit`, clamped to the space; nil if none.
    @inline(__always)
    func limitPfn(_ limit: UInt64) -> UInt64? {
        var p = limit >> shift
        if limit & mask != mask {
            if p == 0 { return nil }
            p -= 1
        }
        if p > lastPfn { p = lastPfn }
        return p < firstPfn ? nil : p
    }

    /// Pops a cached block of class `order` lying at or below `limitPfn` and marks it live.
    @inline(__always)
    func cachedAllocate(_ tc: UnsafeMutablePointer<ThreadCache>, order: Int, granules: UInt64,
                        limitPfn: UInt64, preferred: Bool) -> UInt64? {
        let blockMinusOne = (UInt64(1) << UInt64(order)) &- 1
        guard limitPfn >= blockMinusOne else { return nil }
        let maxStart = limitPfn &- blockMinusOne
        tc.pointee.enter()
        var loaded = tc.pointee.magazines[2 &* order]
        if loaded.isEmpty {
            loaded = refill(tc, order: order)
        }
        let popped = loaded.pop(maxStart: maxStart)
        if popped != nil {
            let state = tc.pointee.state
            state.pointee.hits &+= 1
            if preferred { state.pointee.preferredHits &+= 1 }
        }
        tc.pointee.exit()
        guard let (pfn, slot) = popped else { return nil }
        // The block is ours alone now; publish it as live with its requested size.
        slot.pointee.store(UInt8(truncatingIfNeeded: granules), ordering: .releasing)
        return pfn
    }

    @usableFromInline @inline(never)
    func freeGeneral(address: UInt64, size: UInt64) throws(IOVAError) {
        guard size != 0 else { throw .zeroSize }
        let pfn = address >> shift
        guard address & mask == 0, pfn >= firstPfn, pfn <= lastPfn else { throw .outsideSpace(address: address) }
        let granules = ((size &- 1) >> shift) &+ 1
        if cachesEnabled && granules <= Self.maxCachedGranules, let slot = live.slot(pfn) {
            var state = slot.pointee.load(ordering: .relaxed)
            while state != 0 {
                if state == LiveTable.cachedMarker { throw .notAllocated(address: address, size: size) }
                if UInt64(state) != granules {
                    throw .sizeMismatch(address: address, allocated: UInt64(state) << shift, given: size)
                }
                let (won, found) = slot.pointee.compareExchange(expected: state, desired: LiveTable.cachedMarker,
                                                                 ordering: .acquiringAndReleasing)
                if won {
                    let order = granules == 1 ? 0 : 64 - (granules &- 1).leadingZeroBitCount
                    pushCached(currentCache(), order: order, pfn: pfn, slot: slot)
                    return
                }
                state = found
            }
        }
        try treeFree(address: address, size: size, pfn: pfn, granules: granules)
    }
}

extension IOVAAllocator {
    /// A cacheable block from the tree below the thread's refill window (``IOVAOptions/threadWindowGranules``),
    /// nil for the first thread, with windows off, or when the space below the window has none.
    func windowAllocate(_ tc: UnsafeMutablePointer<ThreadCache>, granules: UInt64, limitPfn: UInt64, order: Int) -> UInt64? {
        let offset = tc.pointee.window &* options.threadWindowGranules
        guard offset != 0, limitPfn >= firstPfn, limitPfn - firstPfn > offset else { return nil }
        return treeAllocate(granules: granules, limitPfn: limitPfn - offset, sizeAligned: true, order: order)
    }
}
