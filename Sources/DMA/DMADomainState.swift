import Emulation
import IOMMUCore
import IOVA
import Synchronization

/// What the DMA layer keeps per translated domain (Linux's iommu_dma_cookie):
/// the IOVA allocator set up from the domain's capabilities, the ledger of
/// live mappings, the devices whose reserved regions are already punched
/// out, the lazy flush queues and the software-MSI doorbell mappings.
final class DMADomainState: Sendable {
    /// Not retained: the domain owns this state through its DMA cookie, so
    /// the state never outlives it, and a strong reference back would keep
    /// both (and the whole emulated machine behind them) alive forever.
    unowned(unsafe) let domain: IOMMUDomain
    /// `domain` again, for the single-page paths: calling through an unowned(unsafe)
    /// reference still retains and releases around each call, this does not.
    let domainReference: Unmanaged<IOMMUDomain>
    let allocator: IOVAAllocator
    /// Set when the domain places IOVAs by Linux's rules (``IOVAPlacement/linux(cpus:)``); `allocator` is then unused.
    let linuxPlacement: LinuxDomainPlacement?
    let ledger: MappingLedger
    let granule: UInt64
    let granuleMask: UInt64
    let isLazy: Bool
    let configuration: DMAConfiguration
    private let reservedFor = HostLock<Set<PCIAddress>>([])
    /// Every thread slot (of every device in the domain) whose queue a flush must empty.
    private let queues = HostLock<[SlotReference]>([])
    let window = LazyWindowCounters()
    /// Doorbell page → bus address inside the software-MSI window.
    let msiPages = HostLock<[UInt64: UInt64]>([:])

    /// - Throws: ``DMAError/allocator(_:)`` when the domain's geometry cannot host an allocator.
    init(domain: IOMMUDomain, configuration: DMAConfiguration) throws(DMAError) {
        self.domain = domain
        domainReference = Unmanaged.passUnretained(domain)
        self.configuration = configuration
        granule = domain.pageSizes.smallest
        granuleMask = granule - 1
        do {
            allocator = try IOVAAllocator(granule: granule, space: domain.geometry.aperture)
        } catch { throw .allocator(error) }
        ledger = MappingLedger(granule: granule, space: allocator.space)
        isLazy = domain.kind == .dmaLazy
        if case let .linux(cpus) = configuration.iovaPlacement {
            do { linuxPlacement = try LinuxDomainPlacement(granule: granule, aperture: domain.geometry.aperture, cpus: cpus,
                                                           lazy: isLazy, configuration: configuration) }
            catch { throw .allocator(error) }
        } else { linuxPlacement = nil }
        if isLazy { FlushTimer.shared.watch(self) }
    }

    deinit {
        if isLazy { FlushTimer.shared.forget(self) }
    }

    /// Whether a span of a few granules can only be mapped with granule-size
    /// pages (no larger supported page fits in it), so the single-page path serves it.
    @inline(__always)
    func onlyGranulesFit(_ span: UInt64) -> Bool {
        span <= granule &* 64 && domain.pageSizes.bitmap & ~((granule << 1) &- 1) & ((span << 1) &- 1) == 0
    }

    /// The state attached to `domain`, created on first use.
    static func attached(to domain: IOMMUDomain, configuration: DMAConfiguration) throws(DMAError) -> DMADomainState {
        try domain.dmaCookie.withLock { (cookie) throws(DMAError) -> DMADomainState in
            if let existing = cookie as? DMADomainState { return existing }
            let state = try DMADomainState(domain: domain, configuration: configuration)
            cookie = state
            return state
        }
    }

    /// Punches `device`'s reserved regions and its host bridge's windows out of the IOVA space, once per device.
    func reserveRegions(of device: IOMMUDevice, hostBridgeWindows: [ClosedRange<UInt64>] = []) throws(DMAError) {
        let fresh = reservedFor.withLock { $0.insert(device.address).inserted }
        guard fresh else { return }
        let aperture = domain.geometry.aperture
        for range in device.reservedRegions.map(\.range) + hostBridgeWindows {
            let first = max(range.lowerBound, aperture.lowerBound)
            let last = min(range.upperBound, aperture.upperBound)
            guard first <= last else { continue }
            do { try reserveIOVA(first...last) } catch { throw .allocator(error) }
        }
    }

    func adopt(_ slot: UnsafeMutablePointer<ThreadSlot>) { queues.withLock { $0.append(SlotReference(pointer: slot)) } }

    /// Drops a departing device's slots after flushing whatever they hold.
    func forget(_ slots: [UnsafeMutablePointer<ThreadSlot>]) {
        flushDeferred()
        queues.withLock { list in list.removeAll { slots.contains($0.pointer) } }
    }

    // MARK: Lazy invalidation

    /// Queues an unmapped range on the calling thread's queue; when the
    /// queue is full, one domain-wide invalidation makes its ranges reusable.
    @inline(__always)
    func deferUnmap(iova: UInt64, size: UInt64, slot: UnsafeMutablePointer<ThreadSlot>, capacity: Int) {
        let queued = slot.pointee.enqueue(PendingUnmap(iova: iova, size: size))
        if queued == 1 { FlushTimer.shared.arm() }
        if queued >= capacity { flushOwn(slot) }
    }

    /// Invalidates the whole domain once, then frees every queued range.
    /// The queue list stays locked while its slots are touched: a departing
    /// device removes its slots under the same lock before they are freed,
    /// so the flush timer can never reach a freed slot.
    func flushDeferred() {
        linuxPlacement?.drain(in: self)
        queues.withLock { list in flush(slots: list.map(\.pointer)) }
    }

    /// Flushes the queues whose oldest range waited longer than the timeout (the flush timer's tick).
    func flushExpired(now: UInt64) {
        linuxPlacement?.tick(hostNow: now, in: self)
        let timeout = configuration.flushTimeoutNanoseconds
        queues.withLock { list in
            let expired = list.map(\.pointer).filter { slot in
                guard slot.pointee.queued > 0 else { return false }
                let oldest = slot.pointee.oldestUnmap.load(ordering: .relaxed)
                // A range queued after `now` was taken is not late, however the subtraction wraps.
                return now >= oldest && now - oldest >= timeout
            }
            // A ring some other flusher is emptying right now is skipped, not waited for.
            if !expired.isEmpty { flush(slots: expired, byTimeout: true, skippingBusy: true) }
        }
    }

    /// When the flush timer must next look at this domain: its oldest queued range's timeout
    /// (or a poll soon, for ranges the Linux placement model holds); nil when nothing is queued.
    func earliestDeadline(after now: UInt64) -> UInt64? {
        if let linuxPlacement, linuxPlacement.pendingCount > 0 { return now &+ FlushTimer.linuxPlacementPollNanoseconds }
        let timeout = configuration.flushTimeoutNanoseconds
        return queues.withLock { list in
            list.map(\.pointer).filter { $0.pointee.queued > 0 }
                .map { $0.pointee.oldestUnmap.load(ordering: .relaxed) &+ timeout }.min()
        }
    }

    var pendingCount: Int {
        (linuxPlacement?.pendingCount ?? 0) + queues.withLock { list in
            list.map(\.pointer).reduce(0) { total, slot in total + slot.pointee.queued }
        }
    }

    /// The calling thread's own ring is full: one domain-wide invalidation, then its ranges are freed.
    private func flushOwn(_ slot: UnsafeMutablePointer<ThreadSlot>) {
        slot.pointee.lockConsumer()
        defer { slot.pointee.unlockConsumer() }
        let end = slot.pointee.markFlushEnd()
        guard end != slot.pointee.head.load(ordering: .relaxed) else { return }
        let oldest = slot.pointee.oldestUnmap.load(ordering: .relaxed)
        // Until this returns, a device may still reach every queued range through its IOTLB.
        // Borrowed: a retain here is a read-modify-write on a count every mapping thread shares.
        domainReference._withUnsafeGuaranteedRef { $0.flushAll() }
        let now = MonotonicClock.now()
        let (ranges, bytes) = release(slot)
        window.record(ranges: ranges, bytes: bytes, nanoseconds: now &- oldest, byTimeout: false)
    }

    /// Empties several rings with one invalidation.
    private func flush(slots: [UnsafeMutablePointer<ThreadSlot>], byTimeout: Bool = false, skippingBusy: Bool = false) {
        // Holding every consumer lock at once cannot deadlock: an owner holds only its own, and
        // the timer, the only other holder of several, never waits.
        var held: [UnsafeMutablePointer<ThreadSlot>] = []
        held.reserveCapacity(slots.count)
        for slot in slots {
            if skippingBusy {
                guard slot.pointee.tryLockConsumer() else { continue }
            } else {
                slot.pointee.lockConsumer()
            }
            held.append(slot)
        }
        defer { for slot in held { slot.pointee.unlockConsumer() } }
        // Only ranges queued before the invalidation may be freed by it: fix each ring's end first.
        var oldest = UInt64.max
        var any = false
        for slot in held where slot.pointee.markFlushEnd() != slot.pointee.head.load(ordering: .relaxed) {
            any = true
            oldest = min(oldest, slot.pointee.oldestUnmap.load(ordering: .relaxed))
        }
        guard any else { return }
        domain.flushAll()
        let now = MonotonicClock.now()
        var ranges = 0
        var bytes: UInt64 = 0
        for slot in held {
            let released = release(slot)
            ranges += released.ranges
            bytes &+= released.bytes
        }
        window.record(ranges: ranges, bytes: bytes, nanoseconds: now &- oldest, byTimeout: byTimeout)
    }

    /// Frees the ranges of a ring up to its marked end (its consumer lock held, the invalidation done).
    @inline(__always)
    private func release(_ slot: UnsafeMutablePointer<ThreadSlot>) -> (ranges: Int, bytes: UInt64) {
        var ranges = 0
        var bytes: UInt64 = 0
        slot.pointee.consumeToFlushEnd { entry in
            ranges += 1
            bytes &+= entry.size
            // Each range was queued once, by the unmap that cleared its page-table entries.
            try? allocator.freeExclusively(address: entry.iova, size: entry.size)
        }
        return (ranges, bytes)
    }
}
