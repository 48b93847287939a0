import CSupport
import Glibc
import Synchronization

/// The part of an allocator that an exiting thread may need after the allocator object is
/// gone from its reach: the locked range tree and the live table. Manually allocated, freed by
/// the allocator's deinit only after every cache has been detached (see ``ThreadCache``).
struct AllocatorCore: ~Copyable {
    let tree: Locked<RangeTree>
    let live: LiveTable
    /// Direct-mapped thread → cache table: entry i is (pthread_t, cache pointer) at words 2i and
    /// 2i + 1, indexed by a hash of `pthread_self()`. A thread claims its empty entry (CAS on the
    /// key) when it first attaches and clears it when it exits, so a reused pthread_t never
    /// finds a dead thread's cache. Only the entry's owner reads its cache word. A thread whose
    /// entry is taken by another uses the pthread-key lookup instead.
    let threadTable: UnsafeMutablePointer<UInt64>
    static let threadTableBits: UInt64 = 6

    @inline(__always)
    static func tableIndex(_ thread: pthread_t) -> Int {
        Int(truncatingIfNeeded: (UInt64(thread) &* 0x9E37_79B9_7F4A_7C15) >> (64 &- threadTableBits)) &* 2
    }

    /// A cached block goes back to the tree and stops being tracked by the live table.
    @inline(__always)
    static func releaseCached(_ t: inout RangeTree, _ live: LiveTable, _ pfn: UInt64) {
        live.slot(pfn)?.pointee.store(0, ordering: .releasing)
        t.release(start: pfn)
    }

    /// An exiting thread hands its cache's blocks back; it holds the cache, so the allocator
    /// cannot finish deinit meanwhile.
    static func absorb(_ core: UnsafeMutablePointer<AllocatorCore>, _ tc: UnsafeMutablePointer<ThreadCache>) {
        let live = core.pointee.live
        core.pointee.tree.withLock { t in tc.pointee.drainAll { pfn, _ in releaseCached(&t, live, pfn) } }
        let me = pthread_self()
        let entry = core.pointee.threadTable + tableIndex(me)
        if csupport_load64_relaxed(entry) == UInt64(me) {
            entry[1] = 0
            csupport_store64_release(entry, 0)
        }
    }
}

/// Owning handle to an ``AllocatorCore``.
struct CorePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<AllocatorCore>

    static func make(tree: consuming RangeTree, live: LiveTable) -> CorePointer {
        let p = UnsafeMutablePointer<AllocatorCore>.allocate(capacity: 1)
        let table = calloc(2 << Int(AllocatorCore.threadTableBits), 8)!.bindMemory(
            to: UInt64.self, capacity: 2 << Int(AllocatorCore.threadTableBits))
        p.initialize(to: AllocatorCore(tree: Locked(tree), live: live, threadTable: table))
        return CorePointer(pointer: p)
    }

    func destroy() {
        free(pointer.pointee.threadTable)
        pointer.deinitialize(count: 1)
        pointer.deallocate()
    }
}
