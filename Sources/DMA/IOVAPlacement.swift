/// Which allocator places the IOVAs of a translated domain.
public enum IOVAPlacement: Sendable, Hashable {
    /// This system's `IOVAAllocator`: per-thread magazines, and the lock-free
    /// single-page fast path of ``DeviceDMA/map(_:size:direction:)``.
    case native
    /// Linux 6.12's placement rules (`LinuxIOVAAllocator`): top-down, size-aligned,
    /// the cached-node and max32 shortcuts, per-CPU magazines for `cpus` CPUs and their depot,
    /// and in a lazy domain Linux's per-CPU flush queues, which decide when a freed IOVA is
    /// reusable. Each call uses the CPU and clock of the calling thread's ``DMACallContext``
    /// (CPU 0 and the host's monotonic clock when none is bound). Every call takes the
    /// allocator's lock: this placement exists to reproduce Linux's bus addresses (trace
    /// replay), not for speed, so its domains never take the single-page fast path.
    case linux(cpus: Int)

    /// A short name for reports: `native` or `linux`.
    public var name: String {
        switch self {
        case .native: "native"
        case .linux: "linux"
        }
    }
}
