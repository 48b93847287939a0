import Glibc
import Synchronization

/// Allocates I/O virtual address ranges for one address space, the counterpart of Linux's
/// `drivers/iommu/iova.c`.
///
/// **How it works.** The space is kept in granule units in a ``RangeTree``: free, allocated
/// and reserved intervals, behind one lock. Allocation searches it top-down from the caller's
/// limit for the highest block that fits, aligned to the size rounded up to a power of two.
/// Small sizes (up to ``maxCachedGranules`` granules) are rounded up to a power-of-two block and
/// recycled through per-thread magazines (``ThreadCache``): a free pushes the block onto the
/// thread's magazine for its size class, an allocation pops one, and only full or empty
/// magazines travel to or from a bounded shared depot, so in steady state no lock is taken.
/// Cached blocks stay "allocated" in the tree until drained: on exhaustion every thread's
/// magazines and the depot are drained into the tree and the search runs again.
///
/// **Free validation.** Each cache-managed block has a state byte in a lock-free
/// ``LiveTable``: the requested granule count while live, a marker while cached. `free` turns
/// the first into the second with one compare-and-swap, so a wrong size, a double free or a
/// free of something never allocated is refused (and changes nothing) without a lock; larger
/// blocks are validated by the tree under its lock.
///
/// All methods are thread-safe.
public final class IOVAAllocator: Sendable {
    /// Largest size, in granules, served from the per-thread caches (128 KiB with 4 KiB granules).
    public static let maxCachedGranules: UInt64 = 32

    /// Bytes per granule.
    public let granule: UInt64
    /// The byte range the allocator manages, after rounding inward to whole granules.
    public let space: ClosedRange<UInt64>
    public let options: IOVAOptions

    let shift: UInt64
    let mask: UInt64
    let firstPfn: UInt64
    let lastPfn: UInt64
    let cachesEnabled: Bool
    let id: UInt64
    let tlsKey: pthread_key_t
    /// The tree and live table, in memory that thread-exit hand-backs reach without retaining
    /// the allocator (a retain from a dying thread could otherwise run deinit there).
    let corePointer: CorePointer
    let live: LiveTable
    let depot: Mutex<Depot>
    let registry = Mutex(CacheRegistry())
    let cacheMisses = Atomic<UInt64>(0)
    let treePreferredHits = Atomic<UInt64>(0)
    let preferredFallbacks = Atomic<UInt64>(0)
    let exhaustionRetries = Atomic<UInt64>(0)
    let failures = Atomic<UInt64>(0)

    /// Creates an allocator for `space`, rounded inward to whole granules. Address 0's granule
    /// is reserved if the space contains it.
    /// - Throws: ``IOVAError/invalidGranule(_:)`` if `granule` is zero or not a power of two;
    ///   ``IOVAError/invalidRange(first:last:)`` if no whole granule fits in `space`;
    ///   ``IOVAError/spaceTooLarge(granules:)`` above 2^52 granules.
    public init(granule: UInt64, space: ClosedRange<UInt64>, options: IOVAOptions = .init()) throws(IOVAError) {
        guard granule != 0, granule & (granule - 1) == 0 else { throw .invalidGranule(granule) }
        let shift = UInt64(granule.trailingZeroBitCount)
        let mask = granule - 1
        let lo = space.lowerBound, hi = space.upperBound
        let first = (lo >> shift) + (lo & mask == 0 ? 0 : 1)  // no overflow: lo & mask != 0 implies shift > 0
        let last: UInt64
        if hi & mask == mask {
            last = hi >> shift
        } else {
            guard hi >> shift > 0 else { throw .invalidRange(first: lo, last: hi) }
            last = (hi >> shift) - 1
        }
        guard last >= first else { throw .invalidRange(first: lo, last: hi) }
        let granules = last - first  // count minus one
        guard granules < (1 << 52) else { throw .spaceTooLarge(granules: granules &+ 1) }
        self.granule = granule
        self.shift = shift
        self.mask = mask
        self.firstPfn = first
        self.lastPfn = last
        self.space = (first << shift)...((last << shift) | mask)
        self.options = options
        self.cachesEnabled = options.cachesEnabled
        self.id = ThreadCaches.nextAllocatorID.add(1, ordering: .relaxed).oldValue
        self.tlsKey = ThreadCaches.key
        let live = LiveTable(base: first, granules: granules + 1)
        self.live = live
        self.corePointer = CorePointer.make(tree: RangeTree(firstPfn: first, lastPfn: last), live: live)
        self.depot = Mutex(Depot(limit: options.depotMagazines))
    }

    deinit {
        // No thread can be inside an operation on this allocator now, but an exiting thread may
        // be handing its cache back: take every cache, mark it detached, drop our reference.
        withAllCachesStolen { reg in
            for c in reg.caches { c.pointer.pointee.detached = true }
        }
        registry.withLock { reg in
            for c in reg.caches { ThreadCache.release(c.pointer) }
            reg.caches.removeAll()
        }
        depot.withLock { $0.destroy() }
        live.destroy()
        corePointer.destroy()
    }

    /// The locked range tree.
    @inline(__always) var core: UnsafeMutablePointer<AllocatorCore> { corePointer.pointer }

    // MARK: allocate

    /// Allocates `size` bytes (rounded up to whole granules) and returns the first address.
    ///
    /// The block lies inside ``space``, its last byte is `<= limit`, and it is the highest such
    /// free block (top-down allocation). With `sizeAligned` it is aligned to its granule count
    /// rounded up to a power of two; sizes of at most ``maxCachedGranules`` granules then occupy
    /// that whole power-of-two block. With `preferredLimit` below `limit` (the 32-bit-first
    /// policy), the allocator first tries below `preferredLimit` and falls back to `limit`.
    /// - Throws: ``IOVAError/zeroSize`` for a size of 0; ``IOVAError/exhausted(size:limit:)``
    ///   when no block fits below `limit` even after draining every cache (also when `limit`
    ///   is below the space or `size` exceeds it).
    public func allocate(size: UInt64, limit: UInt64, preferredLimit: UInt64? = nil,
                         sizeAligned: Bool = true) throws(IOVAError) -> UInt64 {
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
                if let pfn = treeAllocate(granules: granules, limitPfn: pp, sizeAligned: true, order: order) {
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
        let pfn = loaded.pop(maxStart: maxStart)
        if pfn != nil {
            tc.pointee.hits &+= 1
            if preferred { tc.pointee.preferredHits &+= 1 }
        }
        tc.pointee.exit()
        if let pfn {
            // The block is ours alone now; publish it as live with its requested size.
            live.slot(pfn).unsafelyUnwrapped.pointee.store(UInt8(truncatingIfNeeded: granules), ordering: .releasing)
        }
        return pfn
    }

    // MARK: free

    /// Frees a block returned by ``allocate(size:limit:preferredLimit:sizeAligned:)``: the same
    /// address and a size of the same granule count.
    /// - Throws: ``IOVAError/zeroSize``; ``IOVAError/outsideSpace(address:)`` for an address not
    ///   granule aligned or outside the space; ``IOVAError/sizeMismatch(address:allocated:given:)``
    ///   when `address` starts a live block of another size; ``IOVAError/notAllocated(address:size:)``
    ///   otherwise (never allocated, already freed, cached). Nothing changes when it throws.
    public func free(address: UInt64, size: UInt64) throws(IOVAError) {
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
                    cachedFree(currentCache(), order: order, pfn: pfn)
                    return
                }
                state = found
            }
        }
        try treeFree(address: address, size: size, pfn: pfn, granules: granules)
    }

    @inline(__always)
    func cachedFree(_ tc: UnsafeMutablePointer<ThreadCache>, order: Int, pfn: UInt64) {
        tc.pointee.enter()
        var loaded = tc.pointee.magazines[2 &* order]
        if loaded.isFull {
            loaded = spill(tc, order: order)
        }
        loaded.push(pfn)
        tc.pointee.exit()
    }
}
