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
/// Storage is a three-level radix table over `pfn - base` (16 + 16 + up to 20 bits), built
/// lazily under the tree lock; directory pointers are published with release stores and read
/// with acquire loads, so lookups take no lock.
struct LiveTable: @unchecked Sendable {
    static let cachedMarker: UInt8 = 0xFF
    static let leafBits: UInt64 = 16
    static let leafSize = 1 << 16
    static let maxTopEntries: UInt64 = 1 << 20

    let base: UInt64
    private let top: UnsafeMutableRawPointer
    private let topEntries: Int

    /// `granules` must be at most 2^52.
    init(base: UInt64, granules: UInt64) {
        self.base = base
        topEntries = Int(((granules &- 1) >> 32) + 1)
        top = calloc(topEntries, 8)!
    }

    /// The state byte of granule `pfn`, or nil if no block was ever tracked near it.
    @inline(__always)
    func slot(_ pfn: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>>? {
        let rel = pfn &- base
        let t = Int(truncatingIfNeeded: rel &>> 32)
        guard t < topEntries else { return nil }
        let mid = csupport_load64_acquire(top + t &* 8)
        if mid == 0 { return nil }
        let midPtr = UnsafeMutableRawPointer(bitPattern: UInt(mid)).unsafelyUnwrapped
        let leaf = csupport_load64_acquire(midPtr + Int(truncatingIfNeeded: (rel &>> 16) & 0xFFFF) &* 8)
        if leaf == 0 { return nil }
        let leafPtr = UnsafeMutablePointer<Atomic<UInt8>>(bitPattern: UInt(leaf)).unsafelyUnwrapped
        return leafPtr + Self.leafIndex(rel)
    }

    /// Neighbouring granules get bytes on different cache lines: blocks handed to different
    /// threads are usually neighbours (top-down allocation), and their frees would otherwise
    /// fight over one line.
    @inline(__always)
    static func leafIndex(_ rel: UInt64) -> Int {
        Int(truncatingIfNeeded: ((rel & 0x3F) &<< 10) | ((rel &>> 6) & 0x3FF))
    }

    /// The state byte of granule `pfn`, creating its leaf. Call with the tree lock held.
    func ensureSlot(_ pfn: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>> {
        if let s = slot(pfn) { return s }
        let rel = pfn &- base
        let t = Int(truncatingIfNeeded: rel >> 32)
        var mid = csupport_load64_acquire(top + t * 8)
        if mid == 0 {
            let m = calloc(1 << 16, 8)!
            mid = UInt64(UInt(bitPattern: m))
            csupport_store64_release(top + t * 8, mid)
        }
        let midPtr = UnsafeMutableRawPointer(bitPattern: UInt(mid))!
        let leafRaw = calloc(Self.leafSize, 1)!
        let leafPtr = leafRaw.bindMemory(to: Atomic<UInt8>.self, capacity: Self.leafSize)
        csupport_store64_release(midPtr + Int((rel >> 16) & 0xFFFF) * 8, UInt64(UInt(bitPattern: leafRaw)))
        return leafPtr + Self.leafIndex(rel)
    }

    /// Frees every leaf and directory. Only from the allocator's deinit.
    func destroy() {
        for t in 0..<topEntries {
            let mid = csupport_load64_acquire(top + t * 8)
            guard mid != 0, let midPtr = UnsafeMutableRawPointer(bitPattern: UInt(mid)) else { continue }
            for i in 0..<(1 << 16) {
                let leaf = csupport_load64_acquire(midPtr + i * 8)
                if leaf != 0 { free(UnsafeMutableRawPointer(bitPattern: UInt(leaf))) }
            }
            free(midPtr)
        }
        free(top)
    }
}
