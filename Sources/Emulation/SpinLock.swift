import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A value behind a test-and-set lock that biases itself to a thread that
/// keeps taking it alone.
///
/// An emulated IOMMU unit holds its state lock for a few hundred
/// instructions per register write or translation, and usually one thread
/// does all of it (a strict unmap's invalidation, a device's stream of
/// accesses). Taken the plain way, the lock costs one compare-and-swap and a
/// release store; a POSIX mutex cost twice that. After ``biasStreak``
/// uncontended acquisitions in a row by one thread, the lock is biased to it:
/// that thread then enters by announcing itself with a plain store and
/// checking that the bias still holds (no locked instruction, no fence),
/// which took a ninth off a strict unmap. Any other thread revokes the bias
/// first: it withdraws it, runs `membarrier(2)` (the full barrier the owner
/// skipped, executed on the owner's CPU), and waits until the owner is out.
/// A revocation costs microseconds, so each one doubles the streak needed
/// for the next bias, up to ``maximumBiasStreak``. Without `membarrier` the
/// lock never biases.
///
/// Waiters spin on a plain load and yield the CPU every 1024 rounds, so a
/// preempted holder costs time, never progress. Every hand-over is an
/// acquire/release pair (the lock word, the bias word, the owner's flag),
/// so ThreadSanitizer checks the protected state.
public final class SpinLock<Value>: @unchecked Sendable {
    /// 1 while a thread holds the lock the plain way.
    private let word = Atomic<UInt32>(0)
    /// The thread token (``csupport_thread_token()``) of the thread the lock is biased to, or 0.
    private let biasedTo = Atomic<UInt>(0)
    /// 1 while the biased thread is inside (or checking whether it may enter).
    private let ownerInside = Atomic<UInt32>(0)
    /// Who took the lock the plain way lately, how often in a row, and how often it must to get
    /// the bias. Touched only while holding `word` (atomics for their fixed place next to it:
    /// when threads alternate, the line the compare-and-swap brought over holds them too).
    private let streakThread = Atomic<UInt>(0)
    private let streakCount = Atomic<UInt32>(0)
    private let streakNeeded = Atomic<UInt32>(SpinLock.biasStreak)
    private let value: UnsafeMutablePointer<Value>

    static var biasStreak: UInt32 { 64 }
    static var maximumBiasStreak: UInt32 { 1 << 20 }

    public init(_ initial: Value) {
        value = .allocate(capacity: 1)
        value.initialize(to: initial)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    /// - Throws: what `body` throws.
    @inline(__always)
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        let me = csupport_thread_token()
        var biased = false
        if biasedTo.load(ordering: .relaxed) == me {
            ownerInside.store(1, ordering: .relaxed)
            // Compiler barrier only: a revoker's membarrier supplies the hardware one.
            atomicMemoryFence(ordering: .acquiringAndReleasing)
            biased = biasedTo.load(ordering: .acquiring) == me
            if !biased { ownerInside.store(0, ordering: .releasing) }
        }
        if !biased { lockPlainly(me) }
        // One copy of `body` for both ways in: a unit's translation is long enough to matter.
        defer { if biased { ownerInside.store(0, ordering: .releasing) } else { unlockPlainly(me) } }
        return try body(&value.pointee)
    }

    /// The lock's current bias, for tests: whether `withLock` on this thread skips the lock word.
    public var isBiasedToCallingThread: Bool { biasedTo.load(ordering: .relaxed) == csupport_thread_token() }

    @inline(never)
    private func lockPlainly(_ me: UInt) {
        if !word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged { waitForWord() }
        if biasedTo.load(ordering: .relaxed) != 0 { revokeBias() }
        if streakThread.load(ordering: .relaxed) == me {
            streakCount.store(streakCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        } else {
            streakThread.store(me, ordering: .relaxed)
            streakCount.store(1, ordering: .relaxed)
        }
    }

    @inline(never)
    private func unlockPlainly(_ me: UInt) {
        if streakCount.load(ordering: .relaxed) >= streakNeeded.load(ordering: .relaxed), csupport_membarrier_available() {
            streakCount.store(0, ordering: .relaxed)
            biasedTo.store(me, ordering: .releasing)
        }
        word.store(0, ordering: .releasing)
    }

    /// Called holding `word`: withdraws the bias and waits for the owner to leave.
    private func revokeBias() {
        biasedTo.store(0, ordering: .sequentiallyConsistent)
        // After this, the owner either has its flag visible here or sees the bias gone.
        if !csupport_membarrier() { atomicMemoryFence(ordering: .sequentiallyConsistent) }
        var rounds = 0
        while ownerInside.load(ordering: .acquiring) != 0 {
            rounds &+= 1
            if rounds & 1023 == 0 { sched_yield() } else { csupport_spin_hint() }
        }
        streakNeeded.store(min(streakNeeded.load(ordering: .relaxed) &* 2, Self.maximumBiasStreak), ordering: .relaxed)
        streakCount.store(0, ordering: .relaxed)
    }

    private func waitForWord() {
        var rounds = 0
        repeat {
            while word.load(ordering: .relaxed) != 0 {
                rounds &+= 1
                if rounds & 1023 == 0 { sched_yield() } else { csupport_spin_hint() }
            }
        } while !word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged
    }
}
