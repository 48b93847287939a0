import IOMMUCore
import IOVA

/// The general paths' IOVA operations, dispatched on the domain's ``IOVAPlacement``. The
/// single-page fast path never comes here: it serves native domains only and calls
/// `allocator` directly.
extension DMADomainState {
    /// - Throws: ``IOVAError/exhausted(size:limit:)``, ``IOVAError/zeroSize``.
    func allocateIOVA(size: UInt64, limit: UInt64, preferredLimit: UInt64?) throws(IOVAError) -> UInt64 {
        if let linuxPlacement {
            return try linuxPlacement.allocate(size: size, limit: limit, preferredLimit: preferredLimit, in: self)
        }
        return try allocator.allocate(size: size, limit: limit, preferredLimit: preferredLimit)
    }

    /// Gives back a range whose mapping failed before any device could use it.
    func abandonIOVA(_ iova: UInt64, size: UInt64) {
        if let linuxPlacement { return linuxPlacement.abandon(iova: iova, size: size) }
        try? allocator.free(address: iova, size: size)
    }

    /// Frees a range whose IOTLB entries `gather` covers, after its page-table entries were
    /// cleared: flushed now and freed (strict), or left to the flush queue (`deferred`).
    /// A Linux-placed domain's coherent buffers (`flushNow` and `deferred`) are flushed now and
    /// still queued, because Linux queues them too and that decides when the IOVA is reused.
    /// - Throws: ``IOVAError/notAllocated(address:size:)``.
    func releaseIOVA(_ iova: UInt64, size: UInt64, gather: IOTLBGather, deferred: Bool, flushNow: Bool,
                     slot: UnsafeMutablePointer<ThreadSlot>, capacity: Int) throws(IOVAError) {
        if let linuxPlacement {
            if !deferred || flushNow { domain.flush(gather) }
            return try linuxPlacement.release(iova: iova, size: size, deferred: deferred, in: self)
        }
        if deferred && !flushNow {
            deferUnmap(iova: iova, size: size, slot: slot, capacity: capacity)
        } else {
            domain.flush(gather)
            try allocator.free(address: iova, size: size)
        }
    }

    /// Keeps `range` out of the domain's IOVA space.
    /// - Throws: ``IOVAError/reserveOverlapsAllocation(first:last:)``.
    func reserveIOVA(_ range: ClosedRange<UInt64>) throws(IOVAError) {
        if let linuxPlacement { return try linuxPlacement.allocator.reserve(range) }
        try allocator.reserve(range)
    }

    var allocatorStatistics: DMAAllocatorStatistics {
        linuxPlacement?.statistics ?? DMAAllocatorStatistics(native: allocator.statistics)
    }
}
