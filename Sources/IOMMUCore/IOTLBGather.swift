/// The invalidations an unmap leaves to do, gathered so that one command
/// covers a run of pages (Linux's iommu_iotlb_gather).
public struct IOTLBGather: Sendable, Hashable {
    public private(set) var first: UInt64 = .max
    public private(set) var last: UInt64 = 0
    /// The largest page size unmapped, which bounds how coarse the flush may be.
    public private(set) var largestPage: UInt64 = 0

    public init() {}

    public var isEmpty: Bool { first > last }

    public mutating func add(iova: UInt64, size: UInt64) {
        guard size > 0 else { return }
        first = Swift.min(first, iova)
        last = Swift.max(last, iova &+ (size &- 1))
        largestPage = Swift.max(largestPage, size)
    }

    public mutating func reset() { self = IOTLBGather() }
}
