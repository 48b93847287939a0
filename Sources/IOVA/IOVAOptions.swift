/// Tunables of an ``IOVAAllocator``.
public struct IOVAOptions: Sendable {
    /// Keep per-thread magazines of freed small ranges (sizes up to
    /// ``IOVAAllocator/maxCachedGranules`` granules). When false every operation goes to the
    /// locked range tree.
    public var cachesEnabled: Bool = true
    /// Full magazines the shared depot keeps per size class before it returns ranges to the tree.
    public var depotMagazines: Int = 32
    /// Refill windows: when a thread's cache must take a new small range from the tree, it looks
    /// first below `limit - k × threadWindowGranules`, k being the thread's arrival order among
    /// the allocator's threads modulo ``threadWindowCount`` (the first thread, k = 0, allocates
    /// top-down from the limit as without windows), and falls back to the whole space below the
    /// limit. Threads then recycle ranges far apart, so the per-granule bookkeeping they write
    /// on every allocation and free (the live table here, the DMA layer's ledger, the page-table
    /// entries) never shares a table leaf between two threads; sharing one cost two mapping
    /// threads a sixth of their throughput on this project's machine. 0 turns windows off.
    public var threadWindowGranules: UInt64 = 1 << 18
    /// Distinct windows before threads share one again.
    public var threadWindowCount: Int = 4
    /// Test hook: behave as if `membarrier(2)` were unavailable (every cache entry pays a fence).
    var forceFullFences = false

    public init(cachesEnabled: Bool = true, depotMagazines: Int = 32, threadWindowGranules: UInt64 = 1 << 18,
                threadWindowCount: Int = 4) {
        self.cachesEnabled = cachesEnabled
        self.depotMagazines = max(0, min(depotMagazines, 1024))
        self.threadWindowGranules = threadWindowGranules
        self.threadWindowCount = max(1, threadWindowCount)
    }
}
