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
/// **Per-thread caches.** A thread finds its cache through a direct-mapped table indexed by a
/// hash of `pthread_self()` (falling back to a pthread key), and brackets each cache operation
/// with a plain `busy` flag; a thread that must empty other threads' caches uses
/// `membarrier(2)` instead of making every operation pay an atomic (``AsymmetricFence``).
/// A pthread key destructor hands an exiting thread's blocks back to the tree; each allocator
/// has its own caches, and deinit detaches them safely from threads that are still alive.
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

    @usableFromInline let shift: UInt64
    @usableFromInline let mask: UInt64
    let firstPfn: UInt64
    let lastPfn: UInt64
    let cachesEnabled: Bool
    @usableFromInline let id: UInt64
    let tlsKey: pthread_key_t
    /// The tree and live table, in memory that thread-exit hand-backs reach without retaining
    /// the allocator (a retain from a dying thread could otherwise run deinit there).
    let corePointer: CorePointer
    @usableFromInline let live: LiveTable
    let depot: Locked<Depot>
    let registry = Locked(CacheRegistry())
    let cacheMisses = Atomic<UInt64>(0)
    let treePreferredHits = Atomic<UInt64>(0)
    let preferredFallbacks = Atomic<UInt64>(0)
    let exhaustionRetries = Atomic<UInt64>(0)
    let failures = Atomic<UInt64>(0)
    /// `size - 1` below this takes the cached fast paths (0 when caches are off).
    @usableFromInline let fastSizeBound: UInt64
    /// The last byte of the space.
    let spaceLastByte: UInt64
    /// Direct-mapped table thread → cache, in the core (see ``AllocatorCore/threadTable``).
    /// Entry g - 1: bytes from the start of the power-of-two block holding g granules to its
    /// last byte, g = 1...32 (the fast path's limit check without computing the class).
    @usableFromInline nonisolated(unsafe) let blockLastByteOffset: UnsafeMutablePointer<UInt64>
    @usableFromInline nonisolated(unsafe) let threadTable: UnsafeMutablePointer<UInt64>

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
        self.threadTable = corePointer.pointer.pointee.threadTable
        self.fastSizeBound = options.cachesEnabled ? Self.maxCachedGranules << shift : 0
        self.spaceLastByte = (last << shift) | mask
        self.depot = Locked(Depot(limit: options.depotMagazines))
        blockLastByteOffset = .allocate(capacity: Int(Self.maxCachedGranules))
        for granules in 1...Int(Self.maxCachedGranules) {
            let blockGranules = UInt64(1) << UInt64(ThreadCache.sizeClass(granules: granules))
            (blockLastByteOffset + granules - 1).initialize(to: (blockGranules << shift) &- 1)
        }
    }

    deinit {
        // No thread can be inside an operation on this allocator now, but an exiting thread may
        // be handing its cache back: take every cache, mark it detached, drop our reference.
        withAllCachesStolen { reg in
            for c in reg.caches { let state = c.pointer.pointee.state; state.pointee.detached = true }
        }
        registry.withLock { reg in
            for c in reg.caches { ThreadCache.release(c.pointer) }
            reg.caches.removeAll()
        }
        depot.withLock { $0.destroy() }
        live.destroy()
        corePointer.destroy()
        blockLastByteOffset.deallocate()
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
    @inlinable @inline(__always)
    public func allocate(size: UInt64, limit: UInt64, preferredLimit: UInt64? = nil,
                         sizeAligned: Bool = true) throws(IOVAError) -> UInt64 {
        if sizeAligned, let address = allocateFromCache(size: size, limit: limit, preferredLimit: preferredLimit) {
            return address
        }
        return try allocateGeneral(size: size, limit: limit, preferredLimit: preferredLimit, sizeAligned: sizeAligned)
    }

    /// A size-aligned ``allocate(size:limit:preferredLimit:sizeAligned:)`` served only from the
    /// calling thread's cache: nil, with nothing changed, when the cache cannot serve it (a size
    /// above ``maxCachedGranules`` granules, an empty magazine, a cached block beyond the limit).
    /// For a hot path that falls back to `allocate` itself; an empty magazine is refilled from
    /// the thread's other one or the depot, but the tree is never searched and nothing drains.
    @inlinable @inline(__always)
    public func allocateFromCache(size: UInt64, limit: UInt64, preferredLimit: UInt64? = nil) -> UInt64? {
        var effective = limit
        var preferred: UInt64 = 0
        if let p = preferredLimit, p < limit { effective = p; preferred = 1 }
        return cachedAllocation(size: size, limit: effective, preferred: preferred)
    }

    /// The fast path, inlined into callers: a cacheable size popped from the top of this
    /// thread's loaded magazine when that block ends at or below `limit`. Anything else (an
    /// empty magazine, a block above the limit, an uncached size) returns nil and the general
    /// path redoes it all.
    @inlinable @inline(__always)
    func cachedAllocation(size: UInt64, limit: UInt64, preferred: UInt64) -> UInt64? {
        let sizeMinusOne = size &- 1
        guard sizeMinusOne < fastSizeBound, let cache = fastCache() else { return nil }
        let index = Int(truncatingIfNeeded: sizeMinusOne &>> shift)
        cache.pointee.enter()
        var storage = ThreadCache.loadedStorage(cache, index: index)
        var count = storage[0]
        if count == 0 {
            // Empty: swap in the previous magazine or trade with the depot (never the tree).
            storage = refill(cache, order: ThreadCache.sizeClass(granules: index &+ 1)).storage
            count = storage[0]
        }
        if count != 0 {
            let start = storage[Int(truncatingIfNeeded: count &* 2 &- 1)] &<< shift
            // The whole power-of-two block must end at or below the limit (no overflow: the
            // block lies inside the space).
            if start &+ blockLastByteOffset[index] <= limit {
                let slot = storage[Int(truncatingIfNeeded: count &* 2)]
                storage[0] = count &- 1
                let state = cache.pointee.state
                state.pointee.hits &+= 1
                state.pointee.preferredHits &+= preferred
                cache.pointee.exit()
                // The block is ours alone now; publish it as live with its requested size.
                UnsafeMutablePointer<Atomic<UInt8>>(bitPattern: UInt(slot)).unsafelyUnwrapped.pointee
                    .store(UInt8(truncatingIfNeeded: index &+ 1), ordering: .releasing)
                return start
            }
        }
        cache.pointee.exit()
        return nil
    }

    // MARK: free

    /// Frees a block returned by ``allocate(size:limit:preferredLimit:sizeAligned:)``: the same
    /// address and a size of the same granule count.
    /// - Throws: ``IOVAError/zeroSize``; ``IOVAError/outsideSpace(address:)`` for an address not
    ///   granule aligned or outside the space; ``IOVAError/sizeMismatch(address:allocated:given:)``
    ///   when `address` starts a live block of another size; ``IOVAError/notAllocated(address:size:)``
    ///   otherwise (never allocated, already freed, cached). Nothing changes when it throws.
    @inlinable @inline(__always)
    public func free(address: UInt64, size: UInt64) throws(IOVAError) {
        if !cachedFree(address: address, size: size, exclusive: false) { try freeGeneral(address: address, size: size) }
    }

    /// ``free(address:size:)`` for a caller that already guarantees no other thread frees the
    /// same block at the same time (the DMA layer: clearing the page-table entry decided which
    /// unmap owns the range). The same validation, with a plain store where `free` needs a
    /// compare-and-swap against a racing second free.
    /// - Throws: what ``free(address:size:)`` throws. Nothing changes when it throws.
    @inlinable @inline(__always)
    public func freeExclusively(address: UInt64, size: UInt64) throws(IOVAError) {
        if !cachedFree(address: address, size: size, exclusive: true) { try freeGeneral(address: address, size: size) }
    }

    /// The fast path, inlined into callers: a live cache-managed block of exactly this size
    /// goes onto this thread's loaded magazine. Any doubt (an address outside the space finds
    /// no live-table byte or a zero one) returns false, and the general path decides and reports.
    @inlinable @inline(__always)
    func cachedFree(address: UInt64, size: UInt64, exclusive: Bool) -> Bool {
        let sizeMinusOne = size &- 1
        guard sizeMinusOne < fastSizeBound, address & mask == 0 else { return false }
        let pfn = address &>> shift
        guard let slot = live.slot(pfn) else { return false }
        let index = Int(truncatingIfNeeded: sizeMinusOne &>> shift)
        let live = UInt8(truncatingIfNeeded: index &+ 1)
        if exclusive {
            guard slot.pointee.load(ordering: .acquiring) == live else { return false }
            slot.pointee.store(LiveTable.cachedMarker, ordering: .releasing)
        } else {
            // Live with exactly this size → cached, in one step: of two racing frees one wins.
            guard slot.pointee.compareExchange(expected: live, desired: LiveTable.cachedMarker,
                                               ordering: .acquiringAndReleasing).exchanged else { return false }
        }
        let cache = fastCache() ?? attachThreadCache()
        cache.pointee.enter()
        var loaded = Magazine(storage: ThreadCache.loadedStorage(cache, index: index))
        if loaded.isFull { loaded = spill(cache, order: ThreadCache.sizeClass(granules: index &+ 1)) }
        loaded.push(pfn, slot: slot)
        cache.pointee.exit()
        return true
    }

    /// Pushes a block (already marked cached in the live table) onto the thread's magazine.
    @inline(__always)
    func pushCached(_ tc: UnsafeMutablePointer<ThreadCache>, order: Int, pfn: UInt64,
                    slot: UnsafeMutablePointer<Atomic<UInt8>>) {
        tc.pointee.enter()
        var loaded = tc.pointee.magazines[order &* 2]
        if loaded.isFull {
            loaded = spill(tc, order: order)
        }
        loaded.push(pfn, slot: slot)
        tc.pointee.exit()
    }
}
