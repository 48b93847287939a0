/// An IOVA allocator that places ranges exactly where Linux 6.12's
/// drivers/iommu/iova.c does (used to reproduce Linux's bus addresses):
/// top-down below the limit, size-aligned, with the cached-node and
/// `max32_alloc_size` shortcuts, the retry from the limit when the search from
/// the cached node fails, and per-CPU range caches (``LinuxIOVACaches``).
///
/// Everything is in granules ("pfns") internally; the public surface takes
/// bytes, like ``IOVAAllocator``. Linux's red-black tree becomes a sorted array:
/// Linux walks it by in-order neighbours only, so placement is the same.
public final class LinuxIOVAAllocator: Sendable {
    public let granule: UInt64
    let shift: UInt64
    /// Linux's start_pfn: the lowest pfn it ever hands out.
    let startPfn: UInt64
    let dma32Pfn: UInt64
    let state: Locked<LinuxIOVAState>

    /// - Throws: ``IOVAError/invalidGranule(_:)``; ``IOVAError/invalidRange(first:last:)`` when `space` holds no whole granule.
    public init(granule: UInt64, space: ClosedRange<UInt64>, cpus: Int = 2) throws(IOVAError) {
        guard granule >= 512, granule & (granule - 1) == 0 else { throw .invalidGranule(granule) }
        self.granule = granule
        shift = UInt64(granule.trailingZeroBitCount)
        // Linux never hands out pfn 0 (base_pfn is at least 1).
        startPfn = max(1, (space.lowerBound + granule - 1) >> shift)
        guard startPfn <= space.upperBound >> shift else { throw .invalidRange(first: space.lowerBound, last: space.upperBound) }
        dma32Pfn = 1 << (32 - shift)
        state = Locked(LinuxIOVAState(dma32Pfn: dma32Pfn, cpus: max(1, cpus)))
    }

    /// Keeps `range` out of every allocation (reserve_iova; overlapping reservations merge).
    /// - Throws: ``IOVAError/reserveOverlapsAllocation(first:last:)`` when a live allocation is inside.
    public func reserve(_ range: ClosedRange<UInt64>) throws(IOVAError) {
        let lo = range.lowerBound >> shift, hi = range.upperBound >> shift
        try state.withLock { (state) throws(IOVAError) in try state.reserve(lo, hi) }
    }

    /// Allocates like iommu_dma_alloc_iova: first below `preferredLimit` without
    /// flushing the caches (the PCI 32-bit-first try, given up for good once it
    /// fails), then below `limit`, flushing every cache once before failing.
    /// `sizeAligned` is always honoured as Linux does (size-aligned); `cpu` picks the per-CPU cache.
    /// - Throws: ``IOVAError/zeroSize``; ``IOVAError/exhausted(size:limit:)``.
    public func allocate(size: UInt64, limit: UInt64, preferredLimit: UInt64? = nil, sizeAligned: Bool = true,
                         cpu: Int = 0) throws(IOVAError) -> UInt64 {
        guard size > 0 else { throw .zeroSize }
        let pages = (size + granule - 1) >> shift
        let limitPfn = limit >> shift
        let pfn: UInt64? = state.withLock { state in
            if let preferredLimit, state.tryPreferred, limitPfn > preferredLimit >> shift {
                if let found = state.allocateFast(pages, limitPfn: preferredLimit >> shift, flush: false, cpu: cpu,
                                                  startPfn: startPfn) {
                    state.statistics.preferredHits += 1
                    return found
                }
                state.statistics.preferredFallbacks += 1
                state.tryPreferred = false
            }
            return state.allocateFast(pages, limitPfn: limitPfn, flush: true, cpu: cpu, startPfn: startPfn)
        }
        guard let pfn else { throw .exhausted(size: size, limit: limit) }
        return pfn << shift
    }

    /// Frees like free_iova_fast: into `cpu`'s cache when the size is cacheable, else back to the tree.
    /// - Throws: ``IOVAError/notAllocated(address:size:)`` when no allocation starts at `address`.
    public func free(address: UInt64, size: UInt64, cpu: Int = 0) throws(IOVAError) {
        guard size > 0 else { throw .zeroSize }
        let pfn = address >> shift, pages = (size + granule - 1) >> shift
        try state.withLock { (state) throws(IOVAError) in
            guard let index = state.index(containing: pfn), state.nodes[index].lo == pfn, !state.nodes[index].reserved else {
                throw .notAllocated(address: address, size: size)
            }
            state.freeFast(pfn, pages: pages, cpu: cpu)
        }
    }

    /// The live or cached allocation that holds `address`.
    public func allocation(containing address: UInt64) -> ClosedRange<UInt64>? {
        state.withLock { state in
            guard let index = state.index(containing: address >> shift), !state.nodes[index].reserved else { return nil }
            let node = state.nodes[index]
            return (node.lo << shift)...((node.hi << shift) | (granule - 1))
        }
    }

    /// Frees up to one depot magazine when the depot holds more than one per CPU (Linux's delayed depot trim).
    public func trimDepot() { state.withLock { $0.trimDepot() } }

    public var statistics: LinuxIOVAStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.liveNodes = state.nodes.count - 1
            return statistics
        }
    }
}

/// Counters of a ``LinuxIOVAAllocator``.
public struct LinuxIOVAStatistics: Sendable, Equatable, Codable {
    public init() {}

    public var cacheHits: UInt64 = 0
    public var cacheMisses: UInt64 = 0
    public var preferredHits: UInt64 = 0
    public var preferredFallbacks: UInt64 = 0
    public var treeAllocations: UInt64 = 0
    public var cacheFlushes: UInt64 = 0
    /// Ranges in the tree (allocated, cached or reserved).
    public var liveNodes: Int = 0

    /// Sums per-domain counters.
    public static func + (lhs: Self, rhs: Self) -> Self {
        var sum = lhs
        sum.cacheHits += rhs.cacheHits
        sum.cacheMisses += rhs.cacheMisses
        sum.preferredHits += rhs.preferredHits
        sum.preferredFallbacks += rhs.preferredFallbacks
        sum.treeAllocations += rhs.treeAllocations
        sum.cacheFlushes += rhs.cacheFlushes
        sum.liveNodes += rhs.liveNodes
        return sum
    }
}

struct LinuxIOVANode {
    var lo: UInt64
    var hi: UInt64
    var reserved: Bool
}
