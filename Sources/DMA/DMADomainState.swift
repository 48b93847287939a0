import Emulation
import IOMMUCore
import IOVA
import Synchronization

/// What the DMA layer keeps per translated domain (Linux's iommu_dma_cookie):
/// the IOVA allocator set up from the domain's capabilities, the devices
/// whose reserved regions are already punched out of it, and the lazy
/// flush queue.
final class DMADomainState: Sendable {
    let domain: IOMMUDomain
    let allocator: IOVAAllocator
    let granule: UInt64
    let flushQueue: FlushQueue?
    private let reservedFor = Mutex<Set<PCIAddress>>([])

    /// - Throws: ``DMAError/allocator(_:)`` when the domain's geometry cannot host an allocator.
    init(domain: IOMMUDomain) throws(DMAError) {
        self.domain = domain
        granule = domain.pageSizes.smallest
        do {
            allocator = try IOVAAllocator(granule: granule, space: domain.geometry.aperture)
        } catch { throw .allocator(error) }
        flushQueue = domain.kind == .dmaLazy ? FlushQueue() : nil
    }

    /// The state attached to `domain`, created on first use.
    static func attached(to domain: IOMMUDomain) throws(DMAError) -> DMADomainState {
        try domain.dmaCookie.withLock { (cookie) throws(DMAError) -> DMADomainState in
            if let existing = cookie as? DMADomainState { return existing }
            let state = try DMADomainState(domain: domain)
            cookie = state
            return state
        }
    }

    /// Punches `device`'s reserved regions out of the IOVA space, once per device.
    func reserveRegions(of device: IOMMUDevice) throws(DMAError) {
        let fresh = reservedFor.withLock { $0.insert(device.address).inserted }
        guard fresh else { return }
        let aperture = domain.geometry.aperture
        for region in device.reservedRegions {
            let first = max(region.range.lowerBound, aperture.lowerBound)
            let last = min(region.range.upperBound, aperture.upperBound)
            guard first <= last else { continue }
            do { try allocator.reserve(first...last) } catch { throw .allocator(error) }
        }
    }
}

/// Unmapped ranges of a lazy domain wait here until one domain-wide IOTLB
/// flush makes them safe to reuse; until then a device can still reach them
/// through stale IOTLB entries, which is the price of lazy mode.
final class FlushQueue: Sendable {
    static let capacity = 256
    private let pending = Mutex<[(iova: UInt64, size: UInt64)]>([])

    /// Adds a range; returns the ranges to free if the queue must be flushed now.
    func enqueue(iova: UInt64, size: UInt64) -> [(iova: UInt64, size: UInt64)]? {
        pending.withLock { pending in
            if pending.capacity < Self.capacity { pending.reserveCapacity(Self.capacity) }
            pending.append((iova, size))
            guard pending.count >= Self.capacity else { return nil }
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
    }

    func drain() -> [(iova: UInt64, size: UInt64)] {
        pending.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
    }

    var count: Int { pending.withLock { $0.count } }
}
