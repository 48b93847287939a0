import Emulation
import IOMMUCore
import IOVA
import Synchronization

/// The DMA API for one device: the single implementation that serves every
/// IOMMU family (Linux's dma-iommu.c plus dma-direct).
///
/// It reads only what the IOMMU-API reports: the device's default domain,
/// that domain's aperture and page sizes, and the device's reserved regions.
/// A translated domain gets an IOVA allocator over its aperture (minus the
/// reserved regions) and mappings made with the domain's map/unmap; an
/// identity domain or a device behind no IOMMU gets bus address = physical
/// address, checked against the DMA mask.
public final class DeviceDMA: Sendable {
    public let device: PCIDevice
    public let pages: PhysicalPageAllocator
    /// The IOMMU-API's view of the device; nil when no IOMMU covers it.
    public let managed: IOMMUDevice?
    let route: Route
    private let streamingMaskBits: Atomic<Int>
    private let coherentMaskBits: Atomic<Int>
    /// Try below 4 GiB first for wide-mask PCI devices, as Linux does, to keep
    /// 32-bit-friendly translations (single-address-cycle) the common case.
    public let prefers32BitAddresses: Bool
    let counters = DMACounters()

    enum Route: Sendable {
        case direct
        case translated(DMADomainState)
        case unusable(String)
    }

    /// Sets the device up for DMA through the IOMMU-API.
    /// - Throws: ``DMAError/allocator(_:)`` when the default domain's geometry cannot host an
    ///   IOVA allocator; ``DMAError/allocator(_:)`` when a reserved region cannot be punched out.
    public init(device: PCIDevice, subsystem: IOMMUSubsystem?, pages: PhysicalPageAllocator,
                prefers32BitAddresses: Bool = true) throws(DMAError) {
        self.device = device
        self.pages = pages
        self.prefers32BitAddresses = prefers32BitAddresses
        streamingMaskBits = Atomic(device.addressBits)
        coherentMaskBits = Atomic(min(device.addressBits, 64))
        managed = subsystem?.device(at: device.address)
        guard let managed, let domain = managed.group.defaultDomain else {
            route = .direct
            return
        }
        switch domain.kind {
        case .identity: route = .direct
        case .dma, .dmaLazy:
            let state = try DMADomainState.attached(to: domain)
            try state.reserveRegions(of: managed)
            route = .translated(state)
        case .blocked: route = .unusable("its default domain blocks all DMA")
        case .unmanaged: route = .unusable("its default domain is unmanaged")
        }
    }

    /// The kind of the domain the DMA layer works with for this device ("none" without an IOMMU).
    public var domainKind: DomainKind? { managed?.group.defaultDomain?.kind }

    // MARK: Masks

    /// The widest bus address streaming mappings may use, as a bit count.
    public var streamingMask: UInt64 { Self.mask(streamingMaskBits.load(ordering: .relaxed)) }
    /// The widest bus address coherent buffers may use.
    public var coherentMask: UInt64 { Self.mask(coherentMaskBits.load(ordering: .relaxed)) }

    static func mask(_ bits: Int) -> UInt64 { bits >= 64 ? .max : (1 << UInt64(bits)) - 1 }

    /// Sets the streaming and coherent masks (dma_set_mask_and_coherent).
    /// - Throws: ``DMAError/invalidMask(bits:)`` for fewer than 12 or more than 64 bits, or more than the device drives.
    public func setMasks(streamingBits: Int, coherentBits: Int? = nil) throws(DMAError) {
        for bits in [streamingBits, coherentBits ?? streamingBits] where !(12...min(64, device.addressBits)).contains(bits) {
            throw .invalidMask(bits: bits)
        }
        streamingMaskBits.store(streamingBits, ordering: .relaxed)
        coherentMaskBits.store(coherentBits ?? streamingBits, ordering: .relaxed)
    }

    func checkUsable() throws(DMAError) -> Route {
        if let managed, managed.group.isClaimed {
            throw .deviceUnavailable(device.address, reason: "its group is owned by \(managed.group.owner ?? "another user")")
        }
        if case let .unusable(reason) = route { throw .deviceUnavailable(device.address, reason: reason) }
        return route
    }

    // MARK: Streaming mappings

    /// Maps `size` bytes of physically contiguous memory at `physical` for one
    /// transfer in `direction`; returns the bus address the device must use,
    /// which keeps the buffer's offset within its page.
    /// - Throws: ``DMAError/zeroSize``, ``DMAError/negativeSize(_:)``, ``DMAError/beyondMask(physical:size:mask:)``
    ///   (direct mapping), ``DMAError/addressSpaceExhausted(_:)``, ``DMAError/deviceUnavailable(_:reason:)``,
    ///   ``DMAError/iommu(_:)``.
    public func map(_ physical: PhysicalAddress, size: Int, direction: DMADirection) throws(DMAError) -> IOVirtualAddress {
        guard size > 0 else { throw size == 0 ? .zeroSize : .negativeSize(size) }
        let length = UInt64(size)
        switch try checkUsable() {
        case .direct:
            let mask = streamingMask
            guard physical.value <= mask, length - 1 <= mask - physical.value else {
                throw .beyondMask(physical: physical.value, size: length, mask: mask)
            }
            counters.mapped(length)
            return IOVirtualAddress(physical.value)
        case let .translated(state):
            let bus = try mapTranslated(physical, length: length, permissions: direction.devicePermissions,
                                        limit: streamingMask, in: state)
            counters.mapped(length)
            return bus
        case .unusable: throw .zeroSize // checkUsable already threw
        }
    }

    func mapTranslated(_ physical: PhysicalAddress, length: UInt64, permissions: AccessPermissions, limit: UInt64,
                       in state: DMADomainState) throws(DMAError) -> IOVirtualAddress {
        let granule = state.granule
        let offset = physical.value & (granule - 1)
        guard length <= UInt64.max - offset - granule else { throw .beyondMask(physical: physical.value, size: length, mask: limit) }
        let span = (offset + length + granule - 1) & ~(granule - 1)
        let top = min(limit, state.domain.geometry.aperture.upperBound)
        let preferred: UInt64? = prefers32BitAddresses && top > 0xFFFF_FFFF ? 0xFFFF_FFFF : nil
        let iova: UInt64
        do { iova = try state.allocator.allocate(size: span, limit: top, preferredLimit: preferred) } catch {
            throw .addressSpaceExhausted(error)
        }
        do {
            try state.domain.map(iova: IOVirtualAddress(iova), physical: PhysicalAddress(physical.value - offset),
                                 size: span, permissions: permissions)
        } catch {
            try? state.allocator.free(address: iova, size: span)
            throw .iommu(error)
        }
        return IOVirtualAddress(iova + offset)
    }

    /// Ends a streaming mapping. In a strict domain the IOTLB no longer holds
    /// it when this returns; in a lazy domain it waits in the flush queue.
    /// - Throws: ``DMAError/notMapped(busAddress:)``, ``DMAError/sizeMismatch(busAddress:mapped:given:)``,
    ///   ``DMAError/zeroSize``, ``DMAError/deviceUnavailable(_:reason:)``.
    public func unmap(_ busAddress: IOVirtualAddress, size: Int, direction: DMADirection) throws(DMAError) {
        guard size > 0 else { throw size == 0 ? .zeroSize : .negativeSize(size) }
        switch try checkUsable() {
        case .direct:
            counters.unmapped(UInt64(size))
        case let .translated(state):
            try unmapTranslated(busAddress, length: UInt64(size), in: state)
            counters.unmapped(UInt64(size))
        case .unusable: break
        }
    }

    func unmapTranslated(_ busAddress: IOVirtualAddress, length: UInt64, in state: DMADomainState) throws(DMAError) {
        let granule = state.granule
        let offset = busAddress.value & (granule - 1)
        let iova = busAddress.value - offset
        guard length <= UInt64.max - offset - granule else { throw .notMapped(busAddress: busAddress.value) }
        let span = (offset + length + granule - 1) & ~(granule - 1)
        // The allocator may round a range up, so the exact mapped length comes
        // from the tables: mapped through the last page, and not one page beyond.
        guard let live = state.allocator.allocation(containing: iova), live.lowerBound == iova,
              state.domain.lookup(iova) != nil else {
            throw .notMapped(busAddress: busAddress.value)
        }
        let liveSpan = live.upperBound - live.lowerBound + 1
        guard span <= liveSpan, state.domain.lookup(iova + span - granule) != nil,
              span == liveSpan || state.domain.lookup(iova + span) == nil else {
            throw .sizeMismatch(busAddress: busAddress.value, mapped: liveSpan, given: length)
        }
        var gather = IOTLBGather()
        do { try state.domain.unmap(iova: IOVirtualAddress(iova), size: span, gather: &gather) } catch {
            throw .iommu(error)
        }
        if let queue = state.flushQueue {
            if let ready = queue.enqueue(iova: iova, size: span) {
                state.domain.flushAll()
                for entry in ready { try? state.allocator.free(address: entry.iova, size: entry.size) }
            }
        } else {
            state.domain.flush(gather)
            do { try state.allocator.free(address: iova, size: span) } catch { throw .allocator(error) }
        }
    }

    /// Completes every deferred invalidation of the device's lazy domain now.
    public func flushDeferred() {
        guard case let .translated(state) = route, let queue = state.flushQueue else { return }
        let ready = queue.drain()
        guard !ready.isEmpty else { return }
        state.domain.flushAll()
        for entry in ready { try? state.allocator.free(address: entry.iova, size: entry.size) }
    }

    /// Unmapped ranges still waiting for a lazy flush.
    public var deferredUnmaps: Int {
        guard case let .translated(state) = route, let queue = state.flushQueue else { return 0 }
        return queue.count
    }
}
