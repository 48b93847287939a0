import Emulation
import IOMMUCore

/// A buffer that CPU and device share for its whole life (descriptor rings,
/// queues): dma_alloc_coherent's result.
public struct CoherentBuffer: @unchecked Sendable, Hashable {
    /// What the device uses.
    public let busAddress: IOVirtualAddress
    /// Where the memory is.
    public let physical: PhysicalAddress
    public let size: Int
    /// The CPU's view of the buffer. Valid until the buffer is freed.
    public let pointer: UnsafeMutableRawPointer

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.busAddress == rhs.busAddress && lhs.physical == rhs.physical }
    public func hash(into hasher: inout Hasher) { hasher.combine(busAddress); hasher.combine(physical) }
}

extension DeviceDMA {
    /// Allocates zeroed memory mapped for the device in both directions,
    /// within the coherent mask.
    /// - Throws: ``DMAError/zeroSize``, ``DMAError/negativeSize(_:)``, ``DMAError/memory(_:)`` when no
    ///   pages are free (below the mask, for a direct-mapped device), ``DMAError/addressSpaceExhausted(_:)``,
    ///   ``DMAError/deviceUnavailable(_:reason:)``, ``DMAError/iommu(_:)``.
    public func allocateCoherent(size: Int) throws(DMAError) -> CoherentBuffer {
        guard size > 0 else { throw size == 0 ? .zeroSize : .negativeSize(size) }
        let pageCount = (UInt64(size) + PageSize.size4K - 1) / PageSize.size4K
        let route = try checkUsable()
        let zone: PhysicalPageAllocator.Zone
        if case .direct = route { zone = coherentMask == .max ? .any : .below(PhysicalAddress(coherentMask)) } else { zone = .any }
        let physical: PhysicalAddress
        do { physical = try pages.allocate(pages: pageCount, zone: zone) } catch { throw .memory(error) }
        let bus: IOVirtualAddress
        switch route {
        case let .translated(state):
            do {
                bus = try mapTranslated(physical, length: pageCount * PageSize.size4K, permissions: .readWrite,
                                        limit: coherentMask, in: state)
            } catch {
                try? pages.free(physical, pages: pageCount)
                throw error
            }
        default:
            bus = IOVirtualAddress(physical.value)
        }
        let pointer: UnsafeMutableRawPointer
        do { pointer = try pages.memory.pointer(to: physical, count: pageCount * PageSize.size4K) } catch { throw .memory(error) }
        counters.coherentAllocated(pageCount * PageSize.size4K)
        return CoherentBuffer(busAddress: bus, physical: physical, size: size, pointer: pointer)
    }

    /// Unmaps and frees a coherent buffer.
    /// - Throws: ``DMAError/notMapped(busAddress:)`` for a buffer this device does not hold;
    ///   ``DMAError/memory(_:)`` when its pages were already freed.
    public func freeCoherent(_ buffer: CoherentBuffer) throws(DMAError) {
        let pageCount = (UInt64(max(buffer.size, 1)) + PageSize.size4K - 1) / PageSize.size4K
        if case let .translated(state) = try checkUsable() {
            guard state.domain.translate(buffer.busAddress) == buffer.physical else {
                throw .notMapped(busAddress: buffer.busAddress.value)
            }
            try unmapTranslated(buffer.busAddress, length: pageCount * PageSize.size4K, in: state)
        }
        do { try pages.free(buffer.physical, pages: pageCount) } catch { throw .memory(error) }
        counters.coherentFreed(pageCount * PageSize.size4K)
    }
}
