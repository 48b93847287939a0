import Glibc
import Synchronization

/// One thread's magazines for one allocator (Linux's per-CPU `iova_cpu_rcache`, made per thread).
///
/// Every field but the atomics is owned by whoever holds the cache: its thread between
/// ``enter()`` and ``exit()``, or a stealer between ``IOVAAllocator`` steal and unsteal (see
/// ``AsymmetricFence``). Lives in manually allocated memory, referenced by its thread's list
/// and by its allocator's registry (`refs` counts the two).
@usableFromInline
struct ThreadCache: ~Copyable {
    static let classes = 6  // block sizes 1, 2, 4, 8, 16, 32 granules

    @usableFromInline let busy = Atomic<UInt32>(0)
    @usableFromInline let stealing: Atomic<UInt32>
    let refs = Atomic<Int>(2)
    let allocatorID: UInt64
    let core: UnsafeMutablePointer<AllocatorCore>
    let thread: pthread_t
    /// The thread's refill window (its arrival order modulo the window count), see ``IOVAOptions/threadWindowGranules``.
    let window: UInt64
    /// `loaded` magazine of class k at 2k, `previous` at 2k + 1.
    @usableFromInline let magazines: UnsafeMutablePointer<Magazine>
    /// Everything that changes. Kept out of this struct so that the owner writing it is never
    /// an access to the struct a stealer reads its atomics from at the same time.
    @usableFromInline let state: UnsafeMutablePointer<CacheState>
    // At `sizeTableOffset` in the cache's block, entry g - 1 holds the storage of the loaded
    // magazine of the class serving g granules, g = 1...32: the fast paths find it by size at a
    // fixed offset from the cache (two dependent loads fewer than through the struct and the
    // magazine), and ``setLoaded(_:order:_:)`` keeps it current.

    /// Layout of one cache's block: the struct, its mutable state and its magazine table each
    /// on their own cache lines, so two threads' caches never share a line.
    static let blockBytes = 640
    static let stateOffset = 128
    static let tableOffset = 256
    @inlinable static var sizeTableOffset: Int { 384 }

    static func create(allocatorID: UInt64, core: UnsafeMutablePointer<AllocatorCore>, window: UInt64,
                       fullFence: Bool) -> UnsafeMutablePointer<ThreadCache> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: blockBytes, alignment: 128)
        let state = (raw + stateOffset).bindMemory(to: CacheState.self, capacity: 1)
        state.initialize(to: CacheState())
        let table = (raw + tableOffset).bindMemory(to: Magazine.self, capacity: 2 * classes)
        for i in 0..<(2 * classes) { (table + i).initialize(to: Magazine.make()) }
        let bySize = (raw + sizeTableOffset).bindMemory(to: UnsafeMutablePointer<UInt64>.self,
                                                         capacity: Int(IOVAAllocator.maxCachedGranules))
        for granules in 1...Int(IOVAAllocator.maxCachedGranules) {
            (bySize + granules - 1).initialize(to: table[2 * sizeClass(granules: granules)].storage)
        }
        let p = raw.bindMemory(to: ThreadCache.self, capacity: 1)
        p.initialize(to: ThreadCache(stealing: Atomic(fullFence ? fenceBit : 0), allocatorID: allocatorID, core: core,
                                     thread: pthread_self(), window: window, magazines: table, state: state))
        return p
    }

    /// The storage of the loaded magazine serving `index + 1` granules.
    @inlinable @inline(__always)
    static func loadedStorage(_ cache: UnsafeMutablePointer<ThreadCache>, index: Int) -> UnsafeMutablePointer<UInt64> {
        (UnsafeMutableRawPointer(cache) + sizeTableOffset)
            .load(fromByteOffset: index &* 8, as: UnsafeMutablePointer<UInt64>.self)
    }

    /// Makes `magazine` the loaded one of class `order`, in the class table and the size table.
    static func setLoaded(_ cache: UnsafeMutablePointer<ThreadCache>, order: Int, _ magazine: Magazine) {
        cache.pointee.magazines[2 * order] = magazine
        let bySize = (UnsafeMutableRawPointer(cache) + sizeTableOffset)
            .assumingMemoryBound(to: UnsafeMutablePointer<UInt64>.self)
        let sizes = order == 0 ? 1...1 : ((1 << (order - 1)) + 1)...(1 << order)
        for granules in sizes where granules <= Int(IOVAAllocator.maxCachedGranules) {
            bySize[granules - 1] = magazine.storage
        }
    }

    /// This cache's identity on the magazines it hands to the depot.
    var depotOwner: UInt64 { UInt64(UInt(bitPattern: magazines)) }

    /// The class (log2 of the block size) that serves `granules` granules.
    @usableFromInline static func sizeClass(granules: Int) -> Int { granules <= 1 ? 0 : Int.bitWidth - (granules - 1).leadingZeroBitCount }

    /// Drops one of the two references; the last one frees the cache.
    static func release(_ p: UnsafeMutablePointer<ThreadCache>) {
        if p.pointee.refs.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            for i in 0..<(2 * classes) { p.pointee.magazines[i].destroy() }
            p.pointee.magazines.deinitialize(count: 2 * classes)
            p.pointee.state.deinitialize(count: 1)
            p.deinitialize(count: 1)
            UnsafeMutableRawPointer(p).deallocate()
        }
    }

    // MARK: owner side of the handshake

    /// Bit 0 of `stealing`: a stealer holds the cache. Bit 1: no membarrier on this system, so
    /// every entry must take the slow path and pay a full fence; folding that mode into the
    /// same word keeps the common entry at one store, one load and one branch.
    static let stealBit: UInt32 = 1
    static let fenceBit: UInt32 = 2

    @inlinable @inline(__always) func enter() {
        busy.store(1, ordering: .relaxed)
        // Compiler barrier only: membarrier on the stealer's side supplies the hardware one.
        atomicMemoryFence(ordering: .acquiringAndReleasing)
        if stealing.load(ordering: .acquiring) != 0 { enterSlow() }
    }

    @usableFromInline @inline(never) func enterSlow() {
        // Either a stealer is active, or this system has no membarrier (fence mode).
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        while stealing.load(ordering: .acquiring) & Self.stealBit != 0 {
            busy.store(0, ordering: .releasing)
            while stealing.load(ordering: .acquiring) & Self.stealBit != 0 { sched_yield() }
            busy.store(1, ordering: .relaxed)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
        }
    }

    @inlinable @inline(__always) func exit() {
        busy.store(0, ordering: .releasing)
    }

    // MARK: contents (caller holds the cache)

    /// Ranges and granules held in the magazines.
    func contents() -> (ranges: UInt64, granules: UInt64) {
        var ranges: UInt64 = 0
        var granules: UInt64 = 0
        for k in 0..<Self.classes {
            let n = UInt64(magazines[2 * k].count + magazines[2 * k + 1].count)
            ranges += n
            granules += n << UInt64(k)
        }
        return (ranges, granules)
    }

    /// Calls `body(pfn, sizeClass)` for every cached block and empties the magazines.
    func drainAll(_ body: (UInt64, Int) -> Void) {
        for k in 0..<Self.classes {
            magazines[2 * k].drain { body($0, k) }
            magazines[2 * k + 1].drain { body($0, k) }
        }
    }
}

/// The mutable part of a ``ThreadCache``, owned like its magazines.
@usableFromInline
struct CacheState {
    /// The allocator is gone; the thread must not touch it.
    var detached = false
    /// The thread is gone; its ranges were handed back.
    var orphaned = false
    @usableFromInline var hits: UInt64 = 0
    @usableFromInline var preferredHits: UInt64 = 0
}
