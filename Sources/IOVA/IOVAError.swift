/// Why an ``IOVAAllocator`` operation failed. Every failing operation leaves the
/// allocator exactly as it was.
public enum IOVAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The granule is zero or not a power of two.
    case invalidGranule(UInt64)
    /// The address space is empty once rounded inward to whole granules.
    case invalidRange(first: UInt64, last: UInt64)
    /// The space holds more granules than the allocator can index (more than 2^52).
    case spaceTooLarge(granules: UInt64)
    /// A size of zero bytes was asked for or given back.
    case zeroSize
    /// No free range of `size` bytes (rounded to granules, aligned as asked) ends at or below `limit`,
    /// even after every cache was drained back into the tree.
    case exhausted(size: UInt64, limit: UInt64)
    /// `free` was called for a range that is not live: never allocated, already freed, or not the
    /// first address of an allocation.
    case notAllocated(address: UInt64, size: UInt64)
    /// `free` named a live allocation with a size other than the one it was allocated with
    /// (compared in granules).
    case sizeMismatch(address: UInt64, allocated: UInt64, given: UInt64)
    /// The address is not granule aligned or lies outside the allocator's space.
    case outsideSpace(address: UInt64)
    /// `reserve` would cover a live allocation.
    case reserveOverlapsAllocation(first: UInt64, last: UInt64)

    public var description: String {
        switch self {
        case .invalidGranule(let g):
            return "invalid IOVA granule \(hex(g)): must be a non-zero power of two"
        case .invalidRange(let first, let last):
            return "invalid IOVA space \(hex(first))...\(hex(last)): no whole granule inside"
        case .spaceTooLarge(let granules):
            return "IOVA space of \(hex(granules)) granules is larger than 2^52 granules"
        case .zeroSize:
            return "IOVA size must not be zero"
        case .exhausted(let size, let limit):
            return "IOVA space exhausted: no free range of \(hex(size)) bytes at or below limit \(hex(limit))"
        case .notAllocated(let address, let size):
            return "IOVA \(hex(address)) (size \(hex(size))) is not a live allocation"
        case .sizeMismatch(let address, let allocated, let given):
            return "IOVA \(hex(address)) was allocated with size \(hex(allocated)) but freed with size \(hex(given))"
        case .outsideSpace(let address):
            return "IOVA \(hex(address)) is not a granule-aligned address inside the allocator's space"
        case .reserveOverlapsAllocation(let first, let last):
            return "cannot reserve \(hex(first))...\(hex(last)): it overlaps a live IOVA allocation"
        }
    }
}

@inline(never)
func hex(_ value: UInt64) -> String {
    "0x" + String(value, radix: 16)
}
