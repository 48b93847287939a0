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

    public init(debugChecks: Bool = false, flushQueueThreshold: Int = 256, flushTimeoutNanoseconds: UInt64 = 10_000_000,
                bouncePoolPages: UInt64 = 256, maxSegmentSize: UInt64 = 64 << 10, segmentBoundaryMask: UInt64 = 0xFFFF_FFFF,
                iovaPlacement: IOVAPlacement = .native, hostBridgeWindows: [ClosedRange<UInt64>] = []) {
        self.debugChecks = debugChecks
        self.flushQueueThreshold = max(1, flushQueueThreshold)
        self.flushTimeoutNanoseconds = flushTimeoutNanoseconds
        self.bouncePoolPages = max(1, bouncePoolPages)
        self.maxSegmentSize = max(1, maxSegmentSize)
        self.segmentBoundaryMask = segmentBoundaryMask
        self.iovaPlacement = iovaPlacement
        self.hostBridgeWindows = hostBridgeWindows
    }
}
