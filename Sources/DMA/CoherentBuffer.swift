import Emulation
import IOMMUCore

/// A buffer that CPU and device share for its whole life (descriptor rings,
/// queues): dma_alloc_coherent's result. The device sees one contiguous bus
/// range; behind a translating IOMMU the pages behind it need not be
/// physically contiguous, so the CPU's view is page by page: ``pagePointers``,
/// or the accessors that cross page boundaries for the caller.
public struct CoherentBuffer: @unchecked Sendable, Hashable {
    /// What the device uses.
    public let busAddress: IOVirtualAddress
    public let size: Int
    /// The physical pages, in bus order.
    public let pages: [PhysicalAddress]
    /// The CPU's view of each page. Valid until the buffer is freed.
    public let pagePointers: [UnsafeMutableRawPointer]

    /// The first page's physical address.
    public var physical: PhysicalAddress { pages[0] }
    /// One pointer to the whole buffer, when its pages are physically contiguous.
    public var contiguousPointer: UnsafeMutableRawPointer? {
        for index in pages.indices.dropFirst() where pages[index] != pages[0] + UInt64(index) * PageSize.size4K { return nil }
        return pagePointers[0]
    }

    /// Copies `bytes` into the buffer at `offset`. Returns false (writing nothing) when they do not fit.
    @discardableResult
    public func write(_ bytes: some Collection<UInt8>, at offset: Int) -> Bool {
        guard offset >= 0, offset <= size - bytes.count else { return false }
        var position = offset
        for byte in bytes {
            pagePointers[position >> 12].storeBytes(of: byte, toByteOffset: position & 0xFFF, as: UInt8.self)
            position += 1
        }
        return true
    }

    /// Copies `count` bytes out of the buffer from `offset`; nil when the range is outside it.
    public func read(at offset: Int, count: Int) -> [UInt8]? {
        guard offset >= 0, count >= 0, offset <= size - count else { return nil }
        return (offset..<(offset + count)).map { pagePointers[$0 >> 12].load(fromByteOffset: $0 & 0xFFF, as: UInt8.self) }
    }

    /// Stores a little-endian integer at `offset`; false when it does not fit.
    @discardableResult
    public func store<T: FixedWidthInteger>(_ value: T, at offset: Int) -> Bool {
        withUnsafeBytes(of: value.littleEndian) { write($0, at: offset) }
    }

    /// Loads a little-endian integer from `offset`; nil when it does not fit.
    public func load<T: FixedWidthInteger>(at offset: Int, as type: T.Type = T.self) -> T? {
        guard let bytes = read(at: offset, count: MemoryLayout<T>.size) else { return nil }
        return T(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) })
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.busAddress == rhs.busAddress && lhs.pages == rhs.pages }
    public func hash(into hasher: inout Hasher) { hasher.combine(busAddress); hasher.combine(pages) }
}

/// Where a coherent buffer's pages may come from.
public enum CoherentPlacement: Sendable, Hashable {
    /// Physically contiguous if possible, else page by page (translated devices only).
    case preferContiguous
    /// Page by page even when contiguous memory exists (translated devices only).
    case scattered
}

extension DeviceDMA {
    /// Allocates zeroed memory mapped for the device in both directions, within the coherent mask.
    /// - Throws: ``DMAError/zeroSize``, ``DMAError/negativeSize(_:)``, ``DMAError/memory(_:)`` when no
    ///   pages are free (below the mask, for a direct-mapped device), ``DMAError/addressSpaceExhausted(_:)``,
    ///   ``DMAError/deviceUnavailable(_:reason:)``, ``DMAError/iommu(_:)``.
    public func allocateCoherent(size: Int, placement: CoherentPlacement = .preferContiguous) throws(DMAError) -> CoherentBuffer {
        guard size > 0 else { throw Self.sizeError(size) }
        let pageCount = (UInt64(size) + PageSize.size4K - 1) / PageSize.size4K
        let route = try checkUsable()
        var physical: [PhysicalAddress] = []
        func giveBack() { for page in physical { try? pages.free(page) } }
        let bus: IOVirtualAddress
        switch route {
        case let .translated(state):
            // The domain maps whole granules (16 KiB or 64 KiB on some SMMUs): every chunk of
            // physical memory is one granule, aligned to it, and the buffer is rounded up to them.
            let granule = state.granule
            let pagesPerGranule = granule / PageSize.size4K
            let granules = (UInt64(size) + granule - 1) / granule
            if placement == .preferContiguous,
               let block = try? pages.allocate(pages: granules * pagesPerGranule, alignment: granule) {
                physical = (0..<(granules * pagesPerGranule)).map { block + $0 * PageSize.size4K }
            } else {
                for _ in 0..<granules {
                    do {
                        let chunk = try pages.allocate(pages: pagesPerGranule, alignment: granule)
                        physical += (0..<pagesPerGranule).map { chunk + $0 * PageSize.size4K }
                    } catch { giveBack(); throw .memory(error) }
                }
            }
            let limit = min(coherentMask, state.domain.geometry.aperture.upperBound)
            let span = granules * granule
            let iova: UInt64
            do { iova = try state.allocateIOVA(size: span, limit: limit, preferredLimit: preferredLimit(under: limit)) }
            catch { giveBack(); throw .addressSpaceExhausted(error) }
            // Physically contiguous granules are mapped with one IOMMU-API call, as Linux's iommu_map_sg does.
            var index = 0
            while index < Int(granules) {
                var run = 1
                while index + run < Int(granules),
                      physical[(index + run) * Int(pagesPerGranule)] == physical[index * Int(pagesPerGranule)] + UInt64(run) * granule {
                    run += 1
                }
                do {
                    try state.domain.map(iova: IOVirtualAddress(iova + UInt64(index) * granule),
                                         physical: physical[index * Int(pagesPerGranule)],
                                         size: UInt64(run) * granule, permissions: .readWrite)
                } catch {
                    var gather = IOTLBGather()
                    if index > 0 { _ = try? state.domain.unmap(iova: IOVirtualAddress(iova), size: UInt64(index) * granule, gather: &gather) }
                    state.domain.flush(gather)
                    state.abandonIOVA(iova, size: span)
                    giveBack()
                    throw .iommu(error)
                }
                index += run
            }
            state.ledger.record(iova: iova, granules: granules)
            bus = IOVirtualAddress(iova)
        default:
            let mask = coherentMask
            let zone: PhysicalPageAllocator.Zone = mask == .max ? .any : .below(PhysicalAddress(mask))
            let block: PhysicalAddress
            do { block = try pages.allocate(pages: pageCount, zone: zone) } catch { throw .memory(error) }
            physical = (0..<pageCount).map { block + $0 * PageSize.size4K }
            bus = IOVirtualAddress(block.value)
        }
        var pointers: [UnsafeMutableRawPointer] = []
        for page in physical {
            do {
                let pointer = try pages.memory.pointer(to: page, count: PageSize.size4K)
                pointer.initializeMemory(as: UInt8.self, repeating: 0, count: Int(PageSize.size4K))
                pointers.append(pointer)
            } catch { throw .memory(error) }
        }
        coherentLive.add(UInt64(physical.count) * PageSize.size4K, ordering: .relaxed)
        return CoherentBuffer(busAddress: bus, size: size, pages: physical, pagePointers: pointers)
    }

    /// Unmaps and frees a coherent buffer; the device cannot reach it when this returns (always strict).
    /// - Throws: ``DMAError/notMapped(busAddress:)`` for a buffer this device does not hold (or freed twice);
    ///   ``DMAError/memory(_:)`` when its pages were already freed.
    public func freeCoherent(_ buffer: CoherentBuffer) throws(DMAError) {
        let length = UInt64(buffer.pages.count) * PageSize.size4K
        if case let .translated(state) = try checkUsable() {
            guard state.domain.translate(buffer.busAddress) == buffer.pages.first else {
                throw .notMapped(busAddress: buffer.busAddress.value)
            }
            try unmapTranslated(buffer.busAddress, length: length, in: state, forceStrict: true)
        }
        if buffer.contiguousPointer != nil {
            do { try pages.free(buffer.pages[0], pages: UInt64(buffer.pages.count)) } catch { throw .memory(error) }
        } else {
            for page in buffer.pages { do { try pages.free(page) } catch { throw .memory(error) } }
        }
        coherentLive.subtract(length, ordering: .relaxed)
    }
}
