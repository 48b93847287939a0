/// A snapshot of an allocator's counters. Byte counts are exact when no other thread is
/// allocating or freeing at the same time; counters are sums over all threads.
public struct IOVAStatistics: Sendable, Equatable {
    /// Bytes handed out to callers and not yet freed (small sizes count their power-of-two block).
    public var allocatedBytes: UInt64 = 0
    /// Bytes that can still be handed out: free in the tree plus held in caches.
    public var freeBytes: UInt64 = 0
    /// Bytes of the space inside reserved holes (including address 0's granule).
    public var reservedBytes: UInt64 = 0
    /// Bytes of freed ranges parked in per-thread magazines or the depot (part of `freeBytes`).
    public var cachedBytes: UInt64 = 0
    /// Allocations handed out and not yet freed.
    public var liveAllocations: UInt64 = 0
    /// Allocations served from a per-thread magazine or the depot.
    public var cacheHits: UInt64 = 0
    /// Cacheable allocations that had to search the tree.
    public var cacheMisses: UInt64 = 0
    /// Allocations with a `preferredLimit` that succeeded below it.
    public var preferredHits: UInt64 = 0
    /// Allocations with a `preferredLimit` that had to fall back to the full limit.
    public var preferredFallbacks: UInt64 = 0
    /// Times a failed search drained every cache into the tree and tried again.
    public var exhaustionRetries: UInt64 = 0
    /// Allocations that failed with ``IOVAError/exhausted(size:limit:)``.
    public var failures: UInt64 = 0
    /// The largest free range in the tree, in bytes (cached ranges are not merged in; call
    /// ``IOVAAllocator/drainCaches()`` first for the merged figure).
    public var largestFreeBlock: UInt64 = 0

    public init() {}
}
