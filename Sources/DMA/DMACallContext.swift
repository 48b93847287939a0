#if canImport(Glibc)
import Glibc
#endif

/// The CPU and the time a DMA-API call stands for, bound to the calling thread while it runs.
///
/// Linux's DMA layer implicitly uses the CPU a call runs on (its per-CPU IOVA caches and
/// flush queues) and the kernel's clock (the flush-queue timer). A caller that replays calls
/// recorded elsewhere, such as a Linux trace, binds each call's CPU and timestamp here, so
/// that domains with ``IOVAPlacement/linux(cpus:)`` place IOVAs as that CPU would have at
/// that time. Domains with native placement ignore it.
public struct DMACallContext: Sendable, Hashable {
    /// The CPU the call stands for (clamped to the domain's CPU count).
    public var cpu: Int
    /// The call's time in nanoseconds on the caller's clock; nil: the host's monotonic clock.
    public var nanoseconds: UInt64?

    public init(cpu: Int, nanoseconds: UInt64? = nil) {
        self.cpu = cpu
        self.nanoseconds = nanoseconds
    }

    /// Runs `body` with this context bound to the calling thread, then restores the previous binding.
    /// - Throws: whatever `body` throws.
    public func run<Value, Failure: Error>(_ body: () throws(Failure) -> Value) throws(Failure) -> Value {
        let slot = Self.slot()
        let previous = slot.pointee
        slot.pointee = self
        defer { slot.pointee = previous }
        return try body()
    }

    /// The context bound to the calling thread, if any.
    public static var current: DMACallContext? {
        guard let raw = pthread_getspecific(key) else { return nil }
        return raw.assumingMemoryBound(to: DMACallContext?.self).pointee
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            guard let raw else { return }
            let slot = raw.assumingMemoryBound(to: DMACallContext?.self)
            slot.deinitialize(count: 1)
            slot.deallocate()
        }
        return key
    }()

    private static func slot() -> UnsafeMutablePointer<DMACallContext?> {
        if let raw = pthread_getspecific(key) { return raw.assumingMemoryBound(to: DMACallContext?.self) }
        let slot = UnsafeMutablePointer<DMACallContext?>.allocate(capacity: 1)
        slot.initialize(to: nil)
        pthread_setspecific(key, slot)
        return slot
    }
}
