/// Tunables of an ``IOVAAllocator``.
public struct IOVAOptions: Sendable {
    /// Keep per-thread magazines of freed small ranges (sizes up to
    /// ``IOVAAllocator/maxCachedGranules`` granules). When false every operation goes to the
    /// locked range tree.
    public var cachesEnabled: Bool = true
    /// Full magazines the shared depot keeps per size class before it returns ranges to the tree.
    public var depotMagazines: Int = 32
    /// Test hook: behave as if `membarrier(2)` were unavailable (every cache entry pays a fence).
    var forceFullFences = false

    public init(cachesEnabled: Bool = true, depotMagazines: Int = 32) {
        self.cachesEnabled = cachesEnabled
        self.depotMagazines = max(0, min(depotMagazines, 1024))
    }
}
