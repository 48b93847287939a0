import CSupport
import Synchronization

/// The ownership handshake between a thread and its cache, built so that the owner's side costs
/// no atomic read-modify-write and no hardware fence.
///
/// The owner brackets every cache operation with `busy = 1 … busy = 0` and, after raising
/// `busy`, checks `stealing`. A thread that must empty other threads' caches (exhaustion,
/// `drainCaches`, statistics, deinit) sets `stealing`, then runs `membarrier(2)`
/// (PRIVATE_EXPEDITED), which executes a full barrier on every CPU running this process; after
/// that, each owner has either published `busy = 1` or will see `stealing = 1` on its next entry
/// (the classic store→load handshake, with the expensive fence moved to the rare side). The
/// stealer then waits for `busy == 0`. Release stores and acquire loads carry the cache contents
/// between the two sides. When `membarrier` is unavailable the owner pays a full fence instead.
enum AsymmetricFence {
    /// True when `membarrier(PRIVATE_EXPEDITED)` is registered and the owner side may use a
    /// compiler-only barrier.
    static let available: Bool = csupport_membarrier_available()

    /// The heavy side: a barrier on every CPU currently running a thread of this process.
    static func heavy() {
        if csupport_membarrier() { return }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }
}
