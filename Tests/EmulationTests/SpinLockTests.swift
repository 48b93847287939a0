#if canImport(Glibc)
import Glibc
#endif
import CSupport
import Emulation
import Testing

/// The unit lock biases itself to a thread that takes it alone and must stay a lock when the
/// bias moves: these run under ThreadSanitizer in CI.
@Suite struct SpinLockTests {
    @Test func aThreadThatKeepsTakingTheLockAloneGetsItBiased() {
        let lock = SpinLock(0)
        for _ in 0..<100 { lock.withLock { $0 += 1 } }
        #expect(lock.withLock { $0 } == 100)
        // Without membarrier(2) the lock never biases; everything else below still holds.
        #expect(lock.isBiasedToCallingThread == csupport_membarrier_available())
    }

    @Test func anotherThreadRevokesTheBiasAndBothKeepMutualExclusion() async {
        let lock = SpinLock((count: 0, inside: false, overlaps: 0))
        for _ in 0..<100 { lock.withLock { $0.count += 1 } }
        let rounds = 20_000
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    for round in 0..<rounds {
                        lock.withLock { state in
                            if state.inside { state.overlaps += 1 }
                            state.inside = true
                            state.count += 1
                            state.inside = false
                        }
                        // Long solo stretches let the bias form and be revoked over and over.
                        if round % 500 == 0 { sched_yield() }
                    }
                }
            }
        }
        let final = lock.withLock { $0 }
        #expect(final.count == 100 + 2 * rounds)
        #expect(final.overlaps == 0)
    }

    @Test func aBodyThatThrowsReleasesTheLockOnBothPaths() {
        struct Refused: Error {}
        let lock = SpinLock(0)
        for attempt in 0..<200 {
            #expect(throws: Refused.self) { try lock.withLock { (_: inout Int) throws(Refused) in throw Refused() } }
            lock.withLock { $0 += attempt % 2 }
        }
        #expect(lock.withLock { $0 } == 100)
    }
}
