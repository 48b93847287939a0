/// The authoritative map of one allocator's space, in granule numbers (address >> shift):
/// free intervals, allocated intervals (live ones and those parked in caches) and reserved
/// holes. Every granule of the space is in exactly one of the three. Lives behind the
/// allocator's tree lock; this is the slow path (Linux's rbtree of `struct iova`).
struct RangeTree {
    /// Tag bit on an allocated interval: its block belongs to a cache size class and its
    /// liveness is tracked in the ``LiveTable`` rather than by the tree.
    static let cacheManaged: UInt32 = 1

    let firstPfn: UInt64
    let lastPfn: UInt64
    private(set) var free = IntervalTreap()
    private(set) var allocated = IntervalTreap()
    private(set) var reserved = IntervalTreap()
    private(set) var freeGranules: UInt64 = 0
    private(set) var allocatedGranules: UInt64 = 0
    private(set) var reservedGranules: UInt64 = 0

    init(firstPfn: UInt64, lastPfn: UInt64) {
        self.firstPfn = firstPfn
        self.lastPfn = lastPfn
        var low = firstPfn
        if firstPfn == 0 {
            // IOVA 0 looks like a null DMA address: its granule is never handed out.
            reserved.insert(start: 0, length: 1)
            reservedGranules = 1
            low = 1
        }
        if low <= lastPfn {
            free.insert(start: low, length: lastPfn - low + 1)
            freeGranules = lastPfn - low + 1
        }
    }

    // MARK: allocation

    /// Carves the highest `size`-granule block aligned to `align` ending at or below `limit`
    /// out of the free set and records it as allocated. Returns its first granule.
    mutating func allocate(size: UInt64, align: UInt64, limit: UInt64, tag: UInt32) -> UInt64? {
        guard size > 0, size <= freeGranules,
              let (block, node) = free.highestFit(size: size, align: align, floorKey: firstPfn, limit: limit)
        else { return nil }
        let nodeLast = node.start + (node.length - 1)
        let blockLast = block + (size - 1)
        if block > node.start {
            free.update(start: node.start, length: block - node.start, tag: 0)
        } else {
            free.remove(start: node.start)
        }
        if blockLast < nodeLast {
            free.insert(start: blockLast + 1, length: nodeLast - blockLast)
        }
        freeGranules -= size
        allocated.insert(start: block, length: size, tag: tag)
        allocatedGranules += size
        return block
    }

    /// The allocated interval starting exactly at `start`.
    func allocation(startingAt start: UInt64) -> IntervalTreap.Node? {
        guard let n = allocated.floor(start), n.start == start else { return nil }
        return n
    }

    /// The allocated interval containing granule `pfn`.
    func allocation(containing pfn: UInt64) -> IntervalTreap.Node? {
        guard let n = allocated.floor(pfn), pfn - n.start < n.length else { return nil }
        return n
    }

    func reservation(containing pfn: UInt64) -> IntervalTreap.Node? {
        guard let n = reserved.floor(pfn), pfn - n.start < n.length else { return nil }
        return n
    }

    /// Returns the allocated interval starting at `start` to the free set, merging neighbours.
    /// The caller has validated it.
    mutating func release(start: UInt64) {
        guard let node = allocated.remove(start: start) else { return }
        allocatedGranules -= node.length
        insertFree(start: start, length: node.length)
    }

    private mutating func insertFree(start: UInt64, length: UInt64) {
        var first = start
        var len = length
        if let pred = free.floor(start), pred.start + pred.length == start {
            free.remove(start: pred.start)
            first = pred.start
            len += pred.length
        }
        if start + (length - 1) < lastPfn, let succ = free.successor(start), succ.start == start + length {
            free.remove(start: succ.start)
            len += succ.length
        }
        free.insert(start: first, length: len)
        freeGranules += length
    }

    // MARK: reservation

    /// The first allocated interval overlapping `[first, last]`, if any.
    func allocationOverlapping(first: UInt64, last: UInt64) -> IntervalTreap.Node? {
        guard let n = allocated.floor(last), n.start + (n.length - 1) >= first else { return nil }
        return n
    }

    /// Marks `[first, last]` (inside the space, no allocation overlapping) reserved.
    mutating func reserve(first: UInt64, last: UInt64) {
        // Take every free granule of [first, last] out of the free set.
        var cursor = free.floor(last)
        var taken: UInt64 = 0
        while let n = cursor {
            let nLast = n.start + (n.length - 1)
            if nLast < first { break }
            let lo = max(n.start, first)
            let hi = min(nLast, last)
            if hi < nLast { free.insert(start: hi + 1, length: nLast - hi) }
            if lo > n.start {
                free.update(start: n.start, length: lo - n.start, tag: 0)
            } else {
                free.remove(start: n.start)
            }
            taken += hi - lo + 1
            cursor = n.start == 0 ? nil : free.floor(n.start - 1)
        }
        freeGranules -= taken
        reservedGranules += taken
        // Merge with overlapping or adjacent reserved holes.
        var lo = first
        var hi = last
        var probe = reserved.floor(hi == UInt64.max ? hi : hi + 1)
        while let r = probe {
            let rLast = r.start + (r.length - 1)
            if rLast < lo && rLast + 1 < lo { break }
            lo = min(lo, r.start)
            hi = max(hi, rLast)
            reserved.remove(start: r.start)
            probe = r.start == 0 ? nil : reserved.floor(r.start - 1)
        }
        reserved.insert(start: lo, length: hi - lo + 1)
    }
}
