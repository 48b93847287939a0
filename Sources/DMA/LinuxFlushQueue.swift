import Emulation
import IOMMUCore
import IOVA

/// Linux 6.12's flush queue of a lazy (DMA-FQ) domain (dma-iommu.c's iova_fq), for domains
/// placed by Linux's rules: it decides when an unmapped IOVA becomes reusable, and on which
/// CPU's cache it lands, exactly as Linux does.
///
/// Each CPU has a ring of `ringEntries` slots (one always kept free, as Linux's ring is full at
/// `ringEntries - 1`). Queueing on a CPU first frees that ring's entries an earlier flush
/// completed; a full ring flushes the domain's IOTLB at once. The first queued range arms a timer
/// of `timeout` that flushes and then frees every ring, on the CPU that armed it. The timer is
/// checked whenever the domain is used (and by the DMA layer's flush thread for ranges queued on
/// the host clock): a replay that binds each call's time sees it fire where Linux's did.
/// The domain is passed unretained: the flush thread's tick must not retain a domain that is
/// being torn down, and it reaches the domain only when a timer on the host clock is due.
final class LinuxFlushQueue: Sendable {
    private struct Entry {
        var iova: UInt64
        var bytes: UInt64
        var counter: UInt64
        var queuedAt: UInt64
    }

    private struct Timer {
        var deadline: UInt64
        var cpu: Int
        var onHostClock: Bool
    }

    private struct State {
        var rings: [[Entry]]
        var started: UInt64 = 0
        var finished: UInt64 = 0
        var timer: Timer?
    }

    let ringEntries: Int
    let timeout: UInt64
    private let state: HostLock<State>

    init(cpus: Int, ringEntries: Int, timeoutNanoseconds: UInt64) {
        self.ringEntries = max(2, ringEntries)
        timeout = timeoutNanoseconds
        state = HostLock(State(rings: Array(repeating: [], count: max(1, cpus))))
    }

    private func ring(_ cpu: Int, in state: borrowing State) -> Int { min(max(cpu, 0), state.rings.count - 1) }

    /// queue_iova: `iova` was unmapped (its IOTLB entries possibly still live) on `cpu` at `now`.
    func enqueue(iova: UInt64, bytes: UInt64, cpu: Int, now: UInt64, onHostClock: Bool,
                 domain: Unmanaged<IOMMUDomain>, allocator: LinuxIOVAAllocator, window: LazyWindowCounters) {
        state.withLock { state in
            let index = ring(cpu, in: state)
            Self.freeCompleted(&state, ring: index, cpu: cpu, allocator: allocator)
            if state.rings[index].count >= ringEntries - 1 {
                Self.flush(&state, now: now, byTimeout: false, domain: domain, window: window)
                Self.freeCompleted(&state, ring: index, cpu: cpu, allocator: allocator)
            }
            state.rings[index].append(Entry(iova: iova, bytes: bytes, counter: state.started, queuedAt: now))
            if state.timer == nil { state.timer = Timer(deadline: now &+ timeout, cpu: cpu, onHostClock: onHostClock) }
        }
    }

    /// Runs the timer if it is due at `now` (fq_flush_timeout). A timer armed on one clock is
    /// never fired by the other's readings.
    func advance(to now: UInt64, onHostClock: Bool, domain: Unmanaged<IOMMUDomain>, allocator: LinuxIOVAAllocator,
                 window: LazyWindowCounters) {
        state.withLock { state in
            guard let timer = state.timer, timer.onHostClock == onHostClock, timer.deadline <= now else { return }
            state.timer = nil
            Self.flush(&state, now: now, byTimeout: true, domain: domain, window: window)
            for index in state.rings.indices { Self.freeCompleted(&state, ring: index, cpu: timer.cpu, allocator: allocator) }
        }
    }

    /// Flushes now and frees every ring on `cpu` (a departing device, or the caller's explicit flush).
    func drain(cpu: Int, now: UInt64, domain: Unmanaged<IOMMUDomain>, allocator: LinuxIOVAAllocator, window: LazyWindowCounters) {
        state.withLock { state in
            guard state.rings.contains(where: { !$0.isEmpty }) else { return }
            state.timer = nil
            Self.flush(&state, now: now, byTimeout: false, domain: domain, window: window)
            for index in state.rings.indices { Self.freeCompleted(&state, ring: index, cpu: cpu, allocator: allocator) }
        }
    }

    /// Ranges unmapped but not yet covered by an IOTLB flush.
    var pendingCount: Int {
        state.withLock { state in
            let started = state.started
            return state.rings.reduce(0) { total, ring in total + ring.count { $0.counter >= started } }
        }
    }

    /// fq_flush_iotlb: one domain-wide invalidation completes every range queued so far.
    private static func flush(_ state: inout State, now: UInt64, byTimeout: Bool, domain: Unmanaged<IOMMUDomain>,
                              window: LazyWindowCounters) {
        let covered = state.rings.joined().filter { $0.counter >= state.started }
        state.started += 1
        domain._withUnsafeGuaranteedRef { $0.flushAll() }
        state.finished += 1
        guard !covered.isEmpty else { return }
        let oldest = covered.map(\.queuedAt).min() ?? now
        window.record(ranges: covered.count, bytes: covered.reduce(0) { $0 + $1.bytes },
                      nanoseconds: now >= oldest ? now - oldest : 0, byTimeout: byTimeout)
    }

    /// fq_ring_free: returns the ring's completed entries to the allocator, into `cpu`'s cache.
    private static func freeCompleted(_ state: inout State, ring: Int, cpu: Int, allocator: LinuxIOVAAllocator) {
        var done = 0
        while done < state.rings[ring].count, state.rings[ring][done].counter < state.finished {
            let entry = state.rings[ring][done]
            // Only ranges this queue took from the allocator are here, so a free cannot be refused.
            try? allocator.free(address: entry.iova, size: entry.bytes, cpu: cpu)
            done += 1
        }
        if done > 0 { state.rings[ring].removeFirst(done) }
    }
}
