import Emulation
import CSupport
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One thread's share of one device's DMA bookkeeping: its counters and its
/// part of the lazy flush queue (Linux keeps both per CPU). The owning thread
/// updates the counters with plain relaxed stores (it is their only writer).
///
/// The queue is a single-producer ring: only the owning thread appends (and
/// publishes `tail` with a release store), only a flusher holding `consumer`
/// consumes (and publishes `head`). Queuing an unmap therefore costs
/// no atomic read-modify-write, which is most of what a lazy unmap saves.
struct ThreadSlot: ~Copyable {
    let maps = Atomic<UInt64>(0)
    let unmaps = Atomic<UInt64>(0)
    let bytes = Atomic<UInt64>(0)
    /// Ranges queued so far (written by the owner) and consumed so far (written by flushers).
    let tail = Atomic<Int>(0)
    let head = Atomic<Int>(0)
    /// When the queue last went from empty to non-empty (monotonic ns). A range queued while a
    /// flush is emptying the ring may inherit an earlier time: it is then flushed early, never late.
    let oldestUnmap = Atomic<UInt64>(0)
    /// Held by whoever consumes the ring (its owner when the ring is full, the flush timer,
    /// a device leaving): one consumer at a time, and flushes of different threads' rings
    /// never wait for each other.
    let consumer = Atomic<Bool>(false)
    /// Where the flush in progress stops (written and read by the consumer).
    let flushEnd = Atomic<Int>(0)
    let pending: UnsafeMutablePointer<PendingUnmap>
    /// Ring size minus one (the ring holds a power of two ≥ the queue capacity).
    let ringMask: Int

    init(capacity: Int) {
        let ring = 1 << (Int.bitWidth - (max(1, capacity) - 1).leadingZeroBitCount)
        pending = .allocate(capacity: ring)
        ringMask = ring - 1
    }

    /// Adds to a counter this thread alone writes: a plain load and store, no read-modify-write.
    @inline(__always) func bump(_ counter: borrowing Atomic<UInt64>, by amount: UInt64) {
        counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    /// Owner only: appends a range; returns how many ranges are now queued.
    @inline(__always) func enqueue(_ entry: PendingUnmap) -> Int {
        let end = tail.load(ordering: .relaxed)
        let start = head.load(ordering: .acquiring)
        if end == start { oldestUnmap.store(MonotonicClock.now(), ordering: .relaxed) }
        pending[end & ringMask] = entry
        tail.store(end &+ 1, ordering: .releasing)
        return end &+ 1 &- start
    }

    /// Takes the consumer side, waiting for a flusher that holds it.
    func lockConsumer() {
        while !tryLockConsumer() {
            var spins = 0
            while consumer.load(ordering: .relaxed) {
                spins &+= 1
                if spins & 1023 == 0 { sched_yield() } else { csupport_spin_hint() }
            }
        }
    }

    /// Takes the consumer side if no flusher holds it.
    func tryLockConsumer() -> Bool {
        consumer.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    func unlockConsumer() { consumer.store(false, ordering: .releasing) }

    /// Consumer only: fixes how far the next consume may go —
    /// the ranges queued before the invalidation that will cover them. Returns that end.
    func markFlushEnd() -> Int {
        let end = tail.load(ordering: .acquiring)
        flushEnd.store(end, ordering: .relaxed)
        return end
    }

    /// Consumer only, after the invalidation: hands each range
    /// up to the marked end to `body` and releases their ring entries.
    @inline(__always)
    func consumeToFlushEnd(_ body: (PendingUnmap) -> Void) {
        let end = flushEnd.load(ordering: .relaxed)
        var index = head.load(ordering: .relaxed)
        while index != end { body(pending[index & ringMask]); index &+= 1 }
        head.store(end, ordering: .releasing)
    }

    /// Ranges queued and not yet consumed (a snapshot).
    var queued: Int { tail.load(ordering: .acquiring) &- head.load(ordering: .acquiring) }
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
            UnsafeMutableRawPointer(slot).deallocate()
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

    static let slotBytes = (MemoryLayout<ThreadSlot>.stride + 127) & ~127

    func makeSlot() -> UnsafeMutablePointer<ThreadSlot> {
        // Cache-line aligned and padded: two threads' slots never share a line.
        let slot = UnsafeMutableRawPointer.allocate(byteCount: Self.slotBytes, alignment: 128)
            .bindMemory(to: ThreadSlot.self, capacity: 1)
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
