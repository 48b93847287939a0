import Glibc
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
    static let available: Bool = register()

    #if arch(x86_64)
    private static let sysMembarrier = 324
    #elseif arch(arm64)
    private static let sysMembarrier = 283
    #else
    private static let sysMembarrier = -1
    #endif
    private static let cmdQuery = 0
    private static let cmdPrivateExpedited = 8
    private static let cmdRegisterPrivateExpedited = 16

    private static func register() -> Bool {
        if sysMembarrier < 0 { return false }
        let supported = iovaSyscall3(sysMembarrier, cmdQuery, 0, 0)
        guard supported > 0, supported & cmdPrivateExpedited != 0,
              supported & cmdRegisterPrivateExpedited != 0 else { return false }
        return iovaSyscall3(sysMembarrier, cmdRegisterPrivateExpedited, 0, 0) == 0
    }

    /// The heavy side: a barrier on every CPU currently running a thread of this process.
    static func heavy() {
        if available {
            if iovaSyscall3(sysMembarrier, cmdPrivateExpedited, 0, 0) == 0 { return }
        }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }
}

/// glibc's `syscall(2)` is variadic, which Swift cannot import; with integer arguments only,
/// this fixed-arity declaration passes them in the same registers on x86-64 and arm64.
@_silgen_name("syscall")
private func iovaSyscall3(_ number: Int, _ a: Int, _ b: Int, _ c: Int) -> Int
