import IOMMUCore
import IOVA

/// The IOVA side of a translated domain placed by Linux 6.12's rules
/// (``IOVAPlacement/linux(cpus:)``): the domain's `LinuxIOVAAllocator` and, for a lazy
/// domain, Linux's flush queue (``LinuxFlushQueue``). Every operation reads the calling
/// thread's ``DMACallContext`` for the CPU and the time it stands for.
final class LinuxDomainPlacement: Sendable {
    let allocator: LinuxIOVAAllocator
    let cpus: Int
    /// Lazy domains only: when unmapped ranges become reusable.
    let flushQueue: LinuxFlushQueue?

    /// - Throws: ``IOVAError`` when the aperture cannot host an allocator.
    init(granule: UInt64, aperture: ClosedRange<UInt64>, cpus: Int, lazy: Bool,
         configuration: DMAConfiguration) throws(IOVAError) {
        self.cpus = max(1, cpus)
        allocator = try LinuxIOVAAllocator(granule: granule, space: aperture, cpus: self.cpus)
        flushQueue = lazy ? LinuxFlushQueue(cpus: self.cpus, ringEntries: configuration.flushQueueThreshold,
                                            timeoutNanoseconds: configuration.flushTimeoutNanoseconds) : nil
    }

    /// The calling thread's CPU, its time, and whether that time is the host's clock.
    private var now: (cpu: Int, nanoseconds: UInt64, onHostClock: Bool) {
        let context = DMACallContext.current
        let cpu = min(max(context?.cpu ?? 0, 0), cpus - 1)
        if let nanoseconds = context?.nanoseconds { return (cpu, nanoseconds, false) }
        // Only a flush queue needs the time: a strict domain does not pay for a clock read.
        return (cpu, flushQueue == nil ? 0 : MonotonicClock.now(), true)
    }

    /// Lets a due flush-queue timer fire before the domain is used at the caller's time.
    private func catchUp(_ time: (cpu: Int, nanoseconds: UInt64, onHostClock: Bool), in state: DMADomainState) {
        flushQueue?.advance(to: time.nanoseconds, onHostClock: time.onHostClock, domain: state.domainReference,
                            allocator: allocator, window: state.window)
    }

    /// iommu_dma_alloc_iova: below `preferredLimit` first (the PCI 32-bit-first try), then below `limit`.
    /// - Throws: ``IOVAError/exhausted(size:limit:)``, ``IOVAError/zeroSize``.
    func allocate(size: UInt64, limit: UInt64, preferredLimit: UInt64?, in state: DMADomainState) throws(IOVAError) -> UInt64 {
        let time = now
        catchUp(time, in: state)
        return try allocator.allocate(size: size, limit: limit, preferredLimit: preferredLimit, cpu: time.cpu)
    }

    /// Gives back a range that was never handed to a device (a failed map): at once, as Linux does.
    func abandon(iova: UInt64, size: UInt64) {
        try? allocator.free(address: iova, size: size, cpu: now.cpu)
    }

    /// iommu_dma_free_iova after an unmap: into the flush queue when `deferred` (the IOTLB may
    /// still hold the range), else back to the allocator on the caller's CPU.
    /// - Throws: ``IOVAError/notAllocated(address:size:)`` for a range the allocator does not hold.
    func release(iova: UInt64, size: UInt64, deferred: Bool, in state: DMADomainState) throws(IOVAError) {
        let time = now
        catchUp(time, in: state)
        if deferred, let flushQueue {
            flushQueue.enqueue(iova: iova, bytes: size, cpu: time.cpu, now: time.nanoseconds, onHostClock: time.onHostClock,
                               domain: state.domainReference, allocator: allocator, window: state.window)
            // Replays are not the hot path: wake the timer on every queued range, not only the first.
            FlushTimer.shared.arm()
        } else {
            try allocator.free(address: iova, size: size, cpu: time.cpu)
        }
    }

    /// Completes every queued invalidation now and frees the ranges on the caller's CPU.
    func drain(in state: DMADomainState) {
        let time = now
        flushQueue?.drain(cpu: time.cpu, now: time.nanoseconds, domain: state.domainReference, allocator: allocator,
                          window: state.window)
    }

    /// The flush thread's tick: fires a timer armed on the host clock.
    func tick(hostNow: UInt64, in state: DMADomainState) {
        flushQueue?.advance(to: hostNow, onHostClock: true, domain: state.domainReference, allocator: allocator, window: state.window)
    }

    var pendingCount: Int { flushQueue?.pendingCount ?? 0 }

    var statistics: DMAAllocatorStatistics { DMAAllocatorStatistics(linux: allocator.statistics) }
}
