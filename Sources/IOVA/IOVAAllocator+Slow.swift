import Synchronization

/// The locked paths: magazine exchange with the depot, the tree, draining and reservations.
/// Lock order: a thread's own cache (its `busy` flag) → depot → tree; a stealer takes the
/// registry, then the caches, then depot → tree. Nobody waits on a cache while holding the
/// depot or tree lock.
extension IOVAAllocator {
    /// The thread's loaded magazine of class `order` is empty: swap in the previous one if it
    /// holds blocks, else trade it for a full one from the depot. Returns the new loaded one.
    @usableFromInline @inline(never)
    func refill(_ tc: UnsafeMutablePointer<ThreadCache>, order: Int) -> Magazine {
        let mags = tc.pointee.magazines
        let loaded = mags[2 * order]
        let previous = mags[2 * order + 1]
        if !previous.isEmpty {
            mags[2 * order + 1] = loaded
            ThreadCache.setLoaded(tc, order: order, previous)
            return previous
        }
        return depot.withLock { d in
            guard let full = d.takeFull(order: order, preferring: tc.pointee.depotOwner) else { return loaded }
            d.giveEmpty(loaded)
            ThreadCache.setLoaded(tc, order: order, full)
            return full
        }
    }

    /// The thread's loaded magazine of class `order` is full: swap in the previous one if it has
    /// room, else hand it to the depot for an empty one; when the depot is full too, its blocks
    /// go back to the tree. Returns the new loaded magazine.
    @usableFromInline @inline(never)
    func spill(_ tc: UnsafeMutablePointer<ThreadCache>, order: Int) -> Magazine {
        let mags = tc.pointee.magazines
        let loaded = mags[2 * order]
        let previous = mags[2 * order + 1]
        if !previous.isFull {
            mags[2 * order + 1] = loaded
            ThreadCache.setLoaded(tc, order: order, previous)
            return previous
        }
        return depot.withLock { d in
            if d.full[order].count < d.limit {
                loaded.owner = tc.pointee.depotOwner
                d.full[order].append(loaded)
                let fresh = d.takeEmpty()
                ThreadCache.setLoaded(tc, order: order, fresh)
                return fresh
            }
            core.pointee.tree.withLock { t in loaded.drain { releaseCached(&t, $0) } }
            return loaded
        }
    }

    /// A cached block goes back to the tree: no longer tracked by the live table.
    @inline(__always)
    func releaseCached(_ t: inout RangeTree, _ pfn: UInt64) {
        AllocatorCore.releaseCached(&t, live, pfn)
    }

    /// Searches the tree. Cache classes (`order` non-nil) take a whole power-of-two block and
    /// are marked live in the live table.
    func treeAllocate(granules: UInt64, limitPfn: UInt64, sizeAligned: Bool, order: Int?) -> UInt64? {
        core.pointee.tree.withLock { t -> UInt64? in
            let size: UInt64
            let align: UInt64
            var tag: UInt32 = 0
            if let k = order {
                size = 1 << UInt64(k)
                align = size
                tag = RangeTree.cacheManaged
            } else {
                size = granules
                if !sizeAligned || granules == 1 {
                    align = 1
                } else {
                    let bits = 64 - (granules - 1).leadingZeroBitCount
                    guard bits < 64 else { return nil }
                    align = 1 << UInt64(bits)
                }
            }
            guard let pfn = t.allocate(size: size, align: align, limit: limitPfn, tag: tag) else { return nil }
            if tag != 0 {
                live.ensureSlot(pfn).pointee.store(UInt8(truncatingIfNeeded: granules), ordering: .releasing)
            }
            return pfn
        }
    }

    /// Tree search, then drain-and-retry, then failure.
    func slowAllocate(size: UInt64, limit: UInt64, granules: UInt64, limitPfn: UInt64,
                      sizeAligned: Bool, order: Int?) throws(IOVAError) -> UInt64 {
        if let pfn = treeAllocate(granules: granules, limitPfn: limitPfn, sizeAligned: sizeAligned, order: order) {
            return pfn
        }
        if cachesEnabled, drainAllCaches() > 0 {
            exhaustionRetries.add(1, ordering: .relaxed)
            if let pfn = treeAllocate(granules: granules, limitPfn: limitPfn, sizeAligned: sizeAligned, order: order) {
                return pfn
            }
        }
        failures.add(1, ordering: .relaxed)
        throw .exhausted(size: size, limit: limit)
    }

    /// Frees a block the live table does not track (large, unaligned, or not cache-managed).
    func treeFree(address: UInt64, size: UInt64, pfn: UInt64, granules: UInt64) throws(IOVAError) {
        let failure: IOVAError? = core.pointee.tree.withLock { t -> IOVAError? in
            guard let node = t.allocation(startingAt: pfn) else {
                return .notAllocated(address: address, size: size)
            }
            if node.tag & RangeTree.cacheManaged != 0 {
                let state = live.slot(pfn)?.pointee.load(ordering: .acquiring) ?? 0
                if state != 0 && state != LiveTable.cachedMarker {
                    return .sizeMismatch(address: address, allocated: UInt64(state) << shift, given: size)
                }
                return .notAllocated(address: address, size: size)
            }
            if node.length != granules {
                return .sizeMismatch(address: address, allocated: node.length << shift, given: size)
            }
            t.release(start: pfn)
            return nil
        }
        if let failure { throw failure }
    }

    /// Moves every block cached by any thread or the depot back into the tree; returns how many.
    @discardableResult
    func drainAllCaches() -> UInt64 {
        withAllCachesStolen { reg in
            depot.withLock { d in
                core.pointee.tree.withLock { t in
                    var n: UInt64 = 0
                    for c in reg.caches {
                        c.pointer.pointee.drainAll { pfn, _ in releaseCached(&t, pfn); n += 1 }
                    }
                    for k in 0..<d.full.count {
                        for m in d.full[k] {
                            m.drain { releaseCached(&t, $0); n += 1 }
                            d.giveEmpty(m)
                        }
                        d.full[k].removeAll(keepingCapacity: true)
                    }
                    return n
                }
            }
        }
    }


    /// Byte range of granules `start ..< start + length`.
    @inline(__always)
    func bytes(_ start: UInt64, _ length: UInt64) -> ClosedRange<UInt64> {
        (start << shift)...(((start + (length - 1)) << shift) | mask)
    }
}
