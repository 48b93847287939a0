/// How the DMA layer treats one device. The defaults suit a trusted device in production.
public struct DMAConfiguration: Sendable, Hashable {
    /// Track every live mapping and report misuse (Linux's CONFIG_DMA_API_DEBUG).
    /// Costs a lock per call; off by default.
    public var debugChecks: Bool
    /// Unmapped ranges each thread queues before a lazy domain's batched invalidation.
    public var flushQueueThreshold: Int
    /// The longest an unmapped range waits in a lazy queue before the flush timer invalidates it.
    public var flushTimeoutNanoseconds: UInt64
    /// Pages of the bounce pool (swiotlb), set aside on first need below the device's mask.
    public var bouncePoolPages: UInt64
    /// The largest DMA segment the device accepts in a scatter-gather list (dma_set_max_seg_size).
    public var maxSegmentSize: UInt64
    /// No DMA segment may cross an address multiple of `segmentBoundaryMask + 1` (dma_set_seg_boundary).
    public var segmentBoundaryMask: UInt64
    /// Who places IOVAs in the device's translated domain (see ``IOVAPlacement``). A domain takes
    /// the placement of the first device the DMA layer sets up in it.
    public var iovaPlacement: IOVAPlacement
    /// The memory windows of the PCI host bridge the device sits behind (Linux's iova_reserve_pci_windows):
    /// kept out of the device's IOVA space, because a bus address there would reach a peer's BAR instead of memory.
    public var hostBridgeWindows: [ClosedRange<UInt64>]
    /// How streaming mappings of a device in a translated domain protect memory: mapped buffer by buffer
    /// (the default), or copied through a shadow pool mapped once (see ``StreamingProtection``).
    public var streamingProtection: StreamingProtection

    public init(debugChecks: Bool = false, flushQueueThreshold: Int = 256, flushTimeoutNanoseconds: UInt64 = 10_000_000,
                bouncePoolPages: UInt64 = 256, maxSegmentSize: UInt64 = 64 << 10, segmentBoundaryMask: UInt64 = 0xFFFF_FFFF,
                iovaPlacement: IOVAPlacement = .native, hostBridgeWindows: [ClosedRange<UInt64>] = [],
                streamingProtection: StreamingProtection = .mapEachBuffer) {
        self.debugChecks = debugChecks
        self.flushQueueThreshold = max(1, flushQueueThreshold)
        self.flushTimeoutNanoseconds = flushTimeoutNanoseconds
        self.bouncePoolPages = max(1, bouncePoolPages)
        self.maxSegmentSize = max(1, maxSegmentSize)
        self.segmentBoundaryMask = segmentBoundaryMask
        self.iovaPlacement = iovaPlacement
        self.hostBridgeWindows = hostBridgeWindows
        self.streamingProtection = streamingProtection
    }
}

/// How a translated device's streaming mappings (map/unmap, scatter-gather, sync) keep memory from it.
/// Coherent buffers, identity domains and devices behind no IOMMU are not affected.
public enum StreamingProtection: Sendable, Hashable {
    /// Each buffer's own pages are mapped for the transfer and unmapped after it, invalidated at once
    /// (strict domain) or in batches (lazy domain). The device reaches the whole pages around its buffer.
    case mapEachBuffer
    /// Shadow buffers: a pool of `granules` slots (each the domain's smallest page) is mapped read+write
    /// into the device's domain once and stays mapped while the device lives; each streaming mapping is
    /// copied into free slots and back, so nothing is unmapped or invalidated on the streaming path and no
    /// mapped page holds another buffer's data. A map that finds no run of free slots long enough throws
    /// ``DMAError/shadowPoolExhausted(size:granulesFree:)`` and changes nothing.
    case shadowBuffers(granules: Int)

    /// Shadow buffers with the default pool: 512 slots (2 MiB with 4 KiB pages) per device.
    public static let defaultShadowBuffers = StreamingProtection.shadowBuffers(granules: defaultShadowGranules)
    public static let defaultShadowGranules = 512
}
