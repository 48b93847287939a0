import CSupport
import Glibc
import Synchronization

/// One byte per granule telling whether a cache-managed block starting there is live — the
/// record that lets `free` validate a small range without taking the tree lock.
///
/// Byte values: 0 = no cache-managed block starts here (the tree decides), 1...32 = a live
/// block, allocated with that many granules, ``cachedMarker`` = the block sits in a cache.
/// Allocation from a cache stores the size (a plain store: the block is private to the thread
/// that popped it); `free` turns size into ``cachedMarker`` with one compare-and-swap, so of two
/// racing frees of the same block exactly one wins and the other reports a double free.
///
/// Storage is a two-level radix table over `pfn - base`: a directory of at most 2^20 leaf
/// pointers, each leaf covering 2^leafShift granules (2^16 for spaces up to 2^36 granules, so a
/// 48-bit space with 4 KiB granules has 64 KiB leaves). Two dependent loads find a byte, which
/// is what `free` pays on every call. Leaves are built lazily under the tree lock and published
/// with release stores; lookups take no lock.
@usableFromInline
struct LiveTable: @unchecked Sendable {
    @usableFromInline static let cachedMarker: UInt8 = 0xFF
    static let directoryBits: UInt64 = 20
    static let minimumLeafShift: UInt64 = 16

    @usableFromInline let base: UInt64
    @usableFromInline let directory: UnsafeMutablePointer<UInt64>
    @usableFromInline let directoryEntries: UInt64
    @usableFromInline let leafShift: UInt64
    @usableFromInline let leafMask: UInt64
    /// The leaves built so far, chained through a word in front of each, so that teardown
    /// touches them and not every directory entry (8 MiB of untouched zeros for a 48-bit space).
    private let leafChain: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private static let headerBytes = 64

    /// `granules` must be at most 2^52.
    init(base: UInt64, granules: UInt64) {
        self.base = base
        let bits = UInt64(64 - (granules &- 1).leadingZeroBitCount)
        leafShift = max(Self.minimumLeafShift, bits > Self.directoryBits ? bits - Self.directoryBits : 0)
        leafMask = (1 << leafShift) - 1
        directoryEntries = ((granules &- 1) >> leafShift) + 1
        directory = calloc(Int(directoryEntries), 8)!.bindMemory(to: UInt64.self, capacity: Int(directoryEntries))
        leafChain = .allocate(capacity: 1)
        leafChain.initialize(to: nil)
    }

    /// The state byte of granule `pfn`, or nil if no block was ever tracked near it.
    @inlinable @inline(__always)
    func slot(_ pfn: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>>? {
        let rel = pfn &- base
        let index = rel &>> leafShift
        guard index < directoryEntries else { return nil }
        let leaf = csupport_load64_acquire(directory + Int(truncatingIfNeeded: index))
        if leaf == 0 { return nil }
        return UnsafeMutablePointer<Atomic<UInt8>>(bitPattern: UInt(leaf)).unsafelyUnwrapped + Self.leafIndex(rel & leafMask)
    }

    /// Granules up to 1024 apart get bytes on different cache lines (a 16-bit rotation puts the
    /// low ten bits in the line number): blocks handed to different threads are usually
    /// neighbours (top-down allocation), size-aligned blocks differ only in their middle bits,
    /// and their frees would otherwise fight over one line.
    @inlinable @inline(__always)
    static func leafIndex(_ offset: UInt64) -> Int {
        let low = UInt16(truncatingIfNeeded: offset)
        let spread = (low &<< 6) | (low &>> 10)
        return Int(truncatingIfNeeded: (offset & ~0xFFFF) | UInt64(spread))
    }

    var leafBytes: Int { 1 << Int(leafShift) }

    /// The state byte of granule `pfn`, creating its leaf. Call with the tree lock held.
    func ensureSlot(_ pfn: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>> {
        if let s = slot(pfn) { return s }
        let rel = pfn &- base
        let index = Int(rel >> leafShift)
        // Leaves above 64 KiB (spaces beyond 2^36 granules) come from calloc's fresh mappings,
        // whose pages cost memory only once a live block's byte is written there.
        let block = calloc(leafBytes + Self.headerBytes, 1)!
        block.storeBytes(of: leafChain.pointee, as: UnsafeMutableRawPointer?.self)
        leafChain.pointee = block
        let raw = block + Self.headerBytes
        csupport_store64_release(directory + index, UInt64(UInt(bitPattern: raw)))
        return raw.bindMemory(to: Atomic<UInt8>.self, capacity: leafBytes) + Self.leafIndex(rel & leafMask)
    }

    /// Frees every leaf and the directory. Only from the allocator's deinit.
    func destroy() {
        var next = leafChain.pointee
        while let block = next {
            next = block.load(as: UnsafeMutableRawPointer?.self)
            free(block)
        }
        leafChain.deallocate()
        free(directory)
    }
}
