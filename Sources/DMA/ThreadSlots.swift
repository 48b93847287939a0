import Emulation
import CSupport
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One thread's share of one device's DMA bookkeeping: its counters and its
/// part of the lazy flush queue (Linux keeps both per CPU). The owning thread
/// updates the counters with plain relaxed stores (it is their only writer)
/// and takes `queueLock` only to queue an unmap; flushers from any thread
/// take the same lock to empty the queue.
struct ThreadSlot: ~Copyable {
    let maps = Atomic<UInt64>(0)
    let unmaps = Atomic<UInt64>(0)
    let bytes = Atomic<UInt64>(0)
    let queueLock = Atomic<Bool>(false)
    /// Queued ranges; written only while `queueLock` is held (relaxed: the lock orders them).
    let pendingCount = Atomic<Int>(0)
    /// When the oldest queued range was unmapped (monotonic ns), under `queueLock`.
    let oldestUnmap = Atomic<UInt64>(0)
    let pending: UnsafeMutablePointer<PendingUnmap>

    init(capacity: Int) { pending = .allocate(capacity: capacity) }

    /// Adds to a counter this thread alone writes: a plain load and store, no read-modify-write.
    @inline(__always) func bump(_ counter: borrowing Atomic<UInt64>, by amount: UInt64) {
        counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    @inline(__always) func lock() {
        var spins = 0
        while !queueLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            spins += 1
            if spins & 63 == 0 { sched_yield() }
        }
    }

    @inline(__always) func unlock() { queueLock.store(false, ordering: .releasing) }
}

/// A slot pointer that may cross threads: the slot's own lock and atomics guard its contents.
struct SlotReference: @unchecked Sendable, Equatable {
    let pointer: UnsafeMutablePointer<ThreadSlot>
}

/// An unmapped IOVA range waiting for the batched invalidation.
struct PendingUnmap {
    var iova: UInt64
    var size: UInt64
}

/// Every thread slot of one device. The slots live until the device's DMA
/// handle goes; a thread finds its own through ``ThreadSlotDirectory``.
final class ThreadSlotRegistry: Sendable {
    private static let nextID = Atomic<UInt64>(1)
    let id: UInt64
    let queueCapacity: Int
    private let slots = HostLock<[SlotReference]>([])
    /// Called with each new slot (the domain's flusher must see its queue).
    private let onCreate: @Sendable (UnsafeMutablePointer<ThreadSlot>) -> Void

    init(queueCapacity: Int, onCreate: @escaping @Sendable (UnsafeMutablePointer<ThreadSlot>) -> Void) {
        id = Self.nextID.add(1, ordering: .relaxed).oldValue
        self.queueCapacity = max(1, queueCapacity)
        self.onCreate = onCreate
    }

    deinit {
        for slot in slots.withLock({ $0 }).map(\.pointer) {
            slot.pointee.pending.deallocate()
            slot.deinitialize(count: 1)
            slot.deallocate()
        }
    }

    /// The calling thread's slot.
    @inline(__always)
    var current: UnsafeMutablePointer<ThreadSlot> {
        // One thread-local load (CSupport) before the pthread key: registry IDs are never
        // reused, and a slot lives as long as its registry, so a match is always valid.
        let recent = csupport_dma_thread_entry_pointer()!
        if recent.pointee.registry_id == id {
            return recent.pointee.slot.unsafelyUnwrapped.assumingMemoryBound(to: ThreadSlot.self)
        }
        if let raw = pthread_getspecific(ThreadSlotDirectory.key) {
            let directory = raw.assumingMemoryBound(to: ThreadSlotDirectory.self)
            if directory.pointee.recentOwner == id, let slot = directory.pointee.recentSlot { return slot }
        }
        return ThreadSlotDirectory.find(self)
    }

    func makeSlot() -> UnsafeMutablePointer<ThreadSlot> {
        let slot = UnsafeMutablePointer<ThreadSlot>.allocate(capacity: 1)
        slot.initialize(to: ThreadSlot(capacity: queueCapacity))
        slots.withLock { $0.append(SlotReference(pointer: slot)) }
        onCreate(slot)
        return slot
    }

    var all: [UnsafeMutablePointer<ThreadSlot>] { slots.withLock { $0 }.map(\.pointer) }
}

/// The calling thread's slots, by registry ID, behind one pthread key.
struct ThreadSlotDirectory {
    static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            guard let raw else { return }
            let directory = raw.assumingMemoryBound(to: ThreadSlotDirectory.self)
            directory.deinitialize(count: 1)
            directory.deallocate()
        }
        return key
    }()
    /// Registries a thread remembers; beyond it the least recent is forgotten
    /// (it just gets a fresh slot if it comes back: counts are summed over all).
    static let remembered = 64

    var recentOwner: UInt64 = 0
    var recentSlot: UnsafeMutablePointer<ThreadSlot>?
    var entries: [(owner: UInt64, slot: UnsafeMutablePointer<ThreadSlot>)] = []

    @inline(never)
    static func find(_ registry: ThreadSlotRegistry) -> UnsafeMutablePointer<ThreadSlot> {
        let directory: UnsafeMutablePointer<ThreadSlotDirectory>
        if let raw = pthread_getspecific(key) {
            directory = raw.assumingMemoryBound(to: ThreadSlotDirectory.self)
        } else {
            directory = .allocate(capacity: 1)
            directory.initialize(to: ThreadSlotDirectory())
            pthread_setspecific(key, directory)
        }
        let slot: UnsafeMutablePointer<ThreadSlot>
        if let index = directory.pointee.entries.firstIndex(where: { $0.owner == registry.id }) {
            slot = directory.pointee.entries[index].slot
        } else {
            slot = registry.makeSlot()
            if directory.pointee.entries.count >= remembered { directory.pointee.entries.removeFirst() }
            directory.pointee.entries.append((registry.id, slot))
        }
        directory.pointee.recentOwner = registry.id
        directory.pointee.recentSlot = slot
        let recent = csupport_dma_thread_entry_pointer()!
        recent.pointee.registry_id = registry.id
        recent.pointee.slot = UnsafeMutableRawPointer(slot)
        return slot
    }
}
