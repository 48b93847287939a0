import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// The last-level tables of a page table, by the block of IOVA one such table covers
/// (`1 << blockShift` bytes: 2 MiB for VT-d and 4 KiB Arm granules, 32 MiB for 16 KiB, 512 MiB
/// for 64 KiB), so that single-page map and unmap of neighbouring pages skip the upper levels
/// of the walk (streaming DMA allocates top-down, so consecutive mappings share a table).
///
/// Covers IOVAs below `2^(blockShift + 18)`: a directory of 512 words, each the address of a
/// lazily allocated chunk of 512 words, one per block, holding the block's table address or 0.
/// Chunks are installed with compare-and-swap, entries are published with release stores and
/// read with acquire loads, so lookups take no lock. A table its owner frees (an empty subtree
/// replaced by a large page) is forgotten here before its page is freed.
struct LeafTableCache: @unchecked Sendable {
    let directory: UnsafeMutableRawPointer
    /// log2 of the block one last-level table covers, of the span of one chunk, and of the
    /// span covered. All below 64, so the lookups use masking shifts (a Swift `>>` by a
    /// variable amount would also handle counts of 64 and more, on every lookup).
    let blockShift: UInt64
    let chunkShift: UInt64
    let coveredBits: UInt64

    init(blockShift: UInt64) {
        precondition(blockShift + 18 < 64, "a last-level table covers less than 2^46 bytes")
        directory = calloc(512, 8)!
        self.blockShift = blockShift
        chunkShift = blockShift + 9
        coveredBits = blockShift + 18
    }
    /// The cached last-level table of the block holding `iova`, or 0.
    @inline(__always)
    func table(for iova: UInt64) -> UInt64 {
        guard iova &>> coveredBits == 0 else { return 0 }
        let chunk = csupport_load64_acquire(directory + Int(truncatingIfNeeded: iova &>> chunkShift) &* 8)
        if chunk == 0 { return 0 }
        let chunkPointer = UnsafeMutableRawPointer(bitPattern: UInt(chunk)).unsafelyUnwrapped
        return csupport_load64_acquire(chunkPointer + Int(truncatingIfNeeded: (iova &>> blockShift) & 511) &* 8)
    }

    /// Remembers `table` as the last-level table of the block holding `iova`.
    @inline(never)
    func remember(_ table: UInt64, for iova: UInt64) {
        guard iova &>> coveredBits == 0 else { return }
        let slot = directory + Int(truncatingIfNeeded: iova &>> chunkShift) &* 8
        var chunk = csupport_load64_acquire(slot)
        if chunk == 0 {
            guard let fresh = calloc(512, 8) else { return }
            let candidate = UInt64(UInt(bitPattern: fresh))
            let found = csupport_cas64(slot, 0, candidate)
            if found == 0 { chunk = candidate } else { free(fresh); chunk = found }
        }
        let chunkPointer = UnsafeMutableRawPointer(bitPattern: UInt(chunk)).unsafelyUnwrapped
        csupport_store64_release(chunkPointer + Int(truncatingIfNeeded: (iova &>> blockShift) & 511) &* 8, table)
    }

    /// Forgets every last-level table of `[first, first + size)` (whole blocks).
    func forget(first: UInt64, size: UInt64) {
        var block = first & ~((1 &<< blockShift) &- 1)
        while block < first &+ size, block &>> coveredBits == 0 {
            let chunk = csupport_load64_acquire(directory + Int(truncatingIfNeeded: block &>> chunkShift) &* 8)
            if chunk != 0, let chunkPointer = UnsafeMutableRawPointer(bitPattern: UInt(chunk)) {
                csupport_store64_release(chunkPointer + Int(truncatingIfNeeded: (block &>> blockShift) & 511) &* 8, 0)
            }
            block &+= 1 &<< blockShift
        }
    }

    /// Forgets every table (the table tree is being freed).
    func forgetAll() {
        for index in 0..<512 {
            let chunk = csupport_load64_acquire(directory + index * 8)
            if chunk != 0, let chunkPointer = UnsafeMutableRawPointer(bitPattern: UInt(chunk)) {
                for entry in 0..<512 { csupport_store64_release(chunkPointer + entry * 8, 0) }
            }
        }
    }

    /// Frees the directory and its chunks; only when the table goes away.
    func destroy() {
        for index in 0..<512 {
            let chunk = csupport_load64_acquire(directory + index * 8)
            if chunk != 0 { free(UnsafeMutableRawPointer(bitPattern: UInt(chunk))) }
        }
        free(directory)
    }
}
