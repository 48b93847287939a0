import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// The level-1 tables of this table, by 2 MiB block of IOVA, so that single-page map and
/// unmap of neighbouring pages skip the upper levels of the walk (streaming DMA allocates
/// top-down, so consecutive mappings share a level-1 table).
///
/// Covers IOVAs below 2^39 (512 GiB): a directory of 512 words, each the address of a
/// lazily allocated chunk of 512 words, one per 2 MiB block, holding the block's level-1
/// table address or 0. Chunks are installed with compare-and-swap, entries are published
/// with release stores and read with acquire loads, so lookups take no lock. A table freed
/// by ``VTdSecondLevelTable/map(iova:physical:pageSize:permissions:)`` (an empty subtree
/// replaced by a large page) is forgotten here before its page is freed.
struct VTdLeafTableCache: @unchecked Sendable {
    static let coveredBits: UInt64 = 39
    let directory: UnsafeMutableRawPointer

    init() { directory = calloc(512, 8)! }

    /// The cached level-1 table of the 2 MiB block holding `iova`, or 0.
    @inline(__always)
    func table(for iova: UInt64) -> UInt64 {
        guard iova >> Self.coveredBits == 0 else { return 0 }
        let chunk = csupport_load64_acquire(directory + Int(truncatingIfNeeded: iova >> 30) &* 8)
        if chunk == 0 { return 0 }
        let chunkPointer = UnsafeMutableRawPointer(bitPattern: UInt(chunk)).unsafelyUnwrapped
        return csupport_load64_acquire(chunkPointer + Int(truncatingIfNeeded: (iova >> 21) & 511) &* 8)
    }

    /// Remembers `table` as the level-1 table of the 2 MiB block holding `iova`.
    @inline(never)
    func remember(_ table: UInt64, for iova: UInt64) {
        guard iova >> Self.coveredBits == 0 else { return }
        let slot = directory + Int(truncatingIfNeeded: iova >> 30) &* 8
        var chunk = csupport_load64_acquire(slot)
        if chunk == 0 {
            guard let fresh = calloc(512, 8) else { return }
            let candidate = UInt64(UInt(bitPattern: fresh))
            let found = csupport_cas64(slot, 0, candidate)
            if found == 0 { chunk = candidate } else { free(fresh); chunk = found }
        }
        let chunkPointer = UnsafeMutableRawPointer(bitPattern: UInt(chunk)).unsafelyUnwrapped
        csupport_store64_release(chunkPointer + Int(truncatingIfNeeded: (iova >> 21) & 511) &* 8, table)
    }

    /// Forgets every level-1 table of `[first, first + size)` (whole 2 MiB blocks).
    func forget(first: UInt64, size: UInt64) {
        var block = first & ~((1 << 21) - 1)
        while block < first &+ size, block >> Self.coveredBits == 0 {
            let chunk = csupport_load64_acquire(directory + Int(truncatingIfNeeded: block >> 30) &* 8)
            if chunk != 0, let chunkPointer = UnsafeMutableRawPointer(bitPattern: UInt(chunk)) {
                csupport_store64_release(chunkPointer + Int(truncatingIfNeeded: (block >> 21) & 511) &* 8, 0)
            }
            block &+= 1 << 21
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
