import Emulation
import IOPageTable
import Synchronization

/// A translation context that one or more groups of devices are attached to
/// (Linux's struct iommu_domain).
///
/// The core owns the generic part: capability reporting, splitting a range
/// into the largest pages alignment allows, rollback of a half-done map,
/// gathering invalidations, fault handlers. Each driver subclasses it and
/// overrides the page-level primitives for its own table format, which is
/// where family-specific optimisations live.
open class IOMMUDomain: @unchecked Sendable, CustomStringConvertible {
    public let kind: DomainKind
    public let geometry: DomainGeometry
    public let pageSizes: PageSizeSet
    /// Unique among all domains in the process, for reports.
    public let identifier: Int
    /// The driver that made it.
    public let driverName: String
    /// Boxed: a closure stored directly as a lock's value is re-wrapped in a
    /// new thunk by every read (see InterruptLine), which grows without bound.
    private final class FaultHandlerBox: Sendable {
        let call: @Sendable (IOMMUFault) -> Void
        init(_ call: @escaping @Sendable (IOMMUFault) -> Void) { self.call = call }
    }
    private let faultHandler = HostLock<FaultHandlerBox?>(nil)
    private let faultCount = Atomic<UInt64>(0)
    private static let nextIdentifier = Atomic<Int>(1)
    /// Slot for the DMA layer's per-domain state (Linux's iova_cookie); the core never reads it.
    public let dmaCookie = HostLock<(any Sendable & AnyObject)?>(nil)

    public init(kind: DomainKind, geometry: DomainGeometry, pageSizes: PageSizeSet, driverName: String) {
        self.kind = kind
        self.geometry = geometry
        self.pageSizes = pageSizes
        self.driverName = driverName
        identifier = Self.nextIdentifier.add(1, ordering: .relaxed).oldValue
    }

    // MARK: What a driver overrides

    /// Maps exactly one page. The core has checked size support and alignment.
    /// - Throws: ``IOMMUError/alreadyMapped(iova:)`` and other refusals; must change nothing when it throws.
    open func mapPage(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        throw .domainDoesNotTranslate(kind)
    }

    /// Unmaps the page at `iova`; returns the bytes unmapped (0 when nothing was mapped).
    open func unmapPage(iova: UInt64, pageSize: UInt64) -> UInt64 { 0 }

    /// What the domain's tables say about `iova`.
    open func lookup(_ iova: UInt64) -> PageTableLookup? { nil }

    /// Makes the hardware forget the gathered range (Linux's iotlb_sync).
    open func flush(_ gather: IOTLBGather) {}

    /// Makes the hardware forget every translation of this domain (flush_iotlb_all).
    open func flushAll() {}

    /// Frees the domain's tables. Called by the core when the domain is released.
    open func destroy() {}

    // MARK: Single-page fast path (optional overrides)

    /// Maps one page of the smallest supported size: the DMA layer's hot path
    /// (one network packet, one block). The default goes through
    /// ``map(iova:physical:size:permissions:)``; a driver may override it with
    /// a walk that skips the range splitting, keeping the same checks and errors.
    /// - Throws: as ``map(iova:physical:size:permissions:)``.
    open func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        try map(iova: IOVirtualAddress(iova), physical: PhysicalAddress(physical), size: pageSizes.smallest,
                permissions: permissions)
    }

    /// ``mapGranule(iova:physical:permissions:)`` for a caller that owns `iova` exclusively
    /// until it unmaps it (the DMA layer: its IOVA allocator hands each range to one mapping).
    /// A driver may then install the entry with a plain check-and-store instead of an atomic
    /// compare-and-swap, as Linux's VT-d driver uses a CPU-local cmpxchg: an entry already
    /// present is still refused, but two callers racing on one IOVA are not told apart.
    /// The default is ``mapGranule(iova:physical:permissions:)``.
    /// - Throws: as ``mapGranule(iova:physical:permissions:)``.
    open func mapOwnedGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        try mapGranule(iova: iova, physical: physical, permissions: permissions)
    }

    /// Unmaps the smallest-size page at `iova`, adding it to `gather`; returns
    /// the physical page it mapped, or nil (changing nothing) when no page of
    /// that size is mapped there. Overridden by drivers together with ``mapGranule(iova:physical:permissions:)``.
    open func unmapGranule(iova: UInt64, gather: inout IOTLBGather) -> PhysicalAddress? {
        let granule = pageSizes.smallest
        guard kind.translates, let found = lookup(iova), found.pageSize == granule else { return nil }
        guard unmapPage(iova: iova, pageSize: granule) == granule else { return nil }
        gather.add(iova: iova, size: granule)
        return PhysicalAddress(found.physical.value & ~(granule - 1))
    }

    /// What the generic ``map(iova:physical:size:permissions:)`` reports for a refusal a page
    /// table's single-page path met, so a driver's ``mapGranule(iova:physical:permissions:)``
    /// override fails exactly as the generic call would: out of the table's reach is outside the
    /// aperture, misalignment is against the granule, an occupied entry is already mapped.
    public final func singlePageError(_ error: PageTableError, iova: UInt64, physical: UInt64) -> IOMMUError {
        let granule = pageSizes.smallest
        switch error {
        case .beyondAddressWidth: return .outsideAperture(iova: iova, size: granule, aperture: geometry.aperture)
        case .misaligned: return .misaligned(iova: iova, physical: physical, size: granule, granule: granule)
        case let .alreadyMapped(at): return .alreadyMapped(iova: at)
        default: return .pageTable(error)
        }
    }

    /// A driver's ``mapPage(iova:physical:pageSize:permissions:)`` override, for a domain that
    /// maps through `table` (nil: the domain does not translate).
    /// - Throws: ``IOMMUError/domainDoesNotTranslate(_:)``, ``IOMMUError/alreadyMapped(iova:)``, ``IOMMUError/pageTable(_:)``.
    @inlinable
    public final func mapPage<Table: DomainPageTable>(in table: UnretainedReference<Table>?, iova: UInt64, physical: UInt64,
                                                      pageSize: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        guard let table, kind.translates else { throw .domainDoesNotTranslate(kind) }
        do {
            try table.use { table throws(PageTableError) in
                try table.map(iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
            }
        } catch {
            if case let .alreadyMapped(at) = error { throw .alreadyMapped(iova: at) }
            throw .pageTable(error)
        }
    }

    /// A driver's ``unmapPage(iova:pageSize:)`` override, for a domain that maps through `table`.
    @inlinable
    public final func unmapPage<Table: DomainPageTable>(in table: UnretainedReference<Table>?, iova: UInt64, pageSize: UInt64) -> UInt64 {
        table?.use { $0.unmap(iova: iova, pageSize: pageSize) } ?? 0
    }

    /// A driver's ``lookup(_:)`` override, for a domain that maps through `table`.
    @inlinable
    public final func lookup<Table: DomainPageTable>(in table: UnretainedReference<Table>?, _ iova: UInt64) -> PageTableLookup? {
        table?.use { $0.lookup(iova) } ?? nil
    }

    /// A driver's ``mapGranule(iova:physical:permissions:)`` and ``mapOwnedGranule(iova:physical:permissions:)``
    /// overrides, for a table with a single-page fast path (`table` nil: the domain does not translate).
    /// - Throws: as ``map(iova:physical:size:permissions:)``.
    @inlinable @inline(__always)
    public final func mapGranule<Table: DomainPageTable>(in table: UnretainedReference<Table>?, iova: UInt64, physical: UInt64,
                                                         permissions: AccessPermissions, exclusive: Bool) throws(IOMMUError) {
        guard let table else { throw .domainDoesNotTranslate(kind) }
        do {
            try table.use { table throws(PageTableError) in
                try table.mapGranule(iova: iova, physical: physical, permissions: permissions, exclusive: exclusive)
            }
        } catch { throw singlePageError(error, iova: iova, physical: physical) }
    }

    /// A driver's ``unmapGranule(iova:gather:)`` override, for a table with a single-page fast path.
    @inlinable @inline(__always)
    public final func unmapGranule<Table: DomainPageTable>(in table: UnretainedReference<Table>?, iova: UInt64,
                                                           gather: inout IOTLBGather) -> PhysicalAddress? {
        guard let found = table?.use({ $0.unmapGranule(iova: iova) }) else { return nil }
        gather.add(iova: iova, size: found.pageSize)
        return found.physical
    }

    // MARK: The generic API

    /// Maps `size` bytes at `iova` to `physical`, using the largest pages
    /// that size and alignment allow. Either everything is mapped or nothing.
    /// - Throws: ``IOMMUError/zeroSize``, ``IOMMUError/misaligned(iova:physical:size:granule:)``,
    ///   ``IOMMUError/outsideAperture(iova:size:aperture:)``, ``IOMMUError/addressOverflow(iova:size:)``,
    ///   ``IOMMUError/alreadyMapped(iova:)``, ``IOMMUError/domainDoesNotTranslate(_:)``,
    ///   ``IOMMUError/pageTable(_:)``.
    public final func map(iova: IOVirtualAddress, physical: PhysicalAddress, size: UInt64,
                          permissions: AccessPermissions) throws(IOMMUError) {
        guard kind.translates else { throw .domainDoesNotTranslate(kind) }
        try validate(iova: iova.value, physical: physical.value, size: size)
        var done: UInt64 = 0
        while done < size {
            let pageSize = pageSizes.largestPage(iova: iova.value + done, physical: physical.value + done,
                                                 remaining: size - done)
            do {
                try mapPage(iova: iova.value + done, physical: physical.value + done, pageSize: pageSize,
                            permissions: permissions)
            } catch {
                if done > 0 {
                    var gather = IOTLBGather()
                    unmapRange(iova: iova.value, size: done, gather: &gather)
                    flush(gather)
                }
                throw error
            }
            done += pageSize
        }
    }

    /// Unmaps `size` bytes at `iova`, gathering the invalidations to issue
    /// into `gather`; returns the bytes unmapped, which stops early at the
    /// first hole. The caller flushes (strict) or defers (lazy).
    /// - Throws: ``IOMMUError/zeroSize``, ``IOMMUError/misaligned(iova:physical:size:granule:)``,
    ///   ``IOMMUError/addressOverflow(iova:size:)``, ``IOMMUError/domainDoesNotTranslate(_:)``,
    ///   ``IOMMUError/notMapped(iova:)`` when nothing is mapped at `iova`.
    @discardableResult
    public final func unmap(iova: IOVirtualAddress, size: UInt64, gather: inout IOTLBGather) throws(IOMMUError) -> UInt64 {
        guard kind.translates else { throw .domainDoesNotTranslate(kind) }
        let granule = pageSizes.smallest
        guard size > 0 else { throw .zeroSize }
        guard (iova.value | size) & (granule - 1) == 0 else {
            throw .misaligned(iova: iova.value, physical: 0, size: size, granule: granule)
        }
        guard iova.value <= UInt64.max - (size - 1) else { throw .addressOverflow(iova: iova.value, size: size) }
        let unmapped = unmapRange(iova: iova.value, size: size, gather: &gather)
        guard unmapped > 0 else { throw .notMapped(iova: iova.value) }
        return unmapped
    }

    /// Unmaps and flushes at once: the strict path.
    /// - Throws: as ``unmap(iova:size:gather:)``.
    @discardableResult
    public final func unmap(iova: IOVirtualAddress, size: UInt64) throws(IOMMUError) -> UInt64 {
        var gather = IOTLBGather()
        let unmapped = try unmap(iova: iova, size: size, gather: &gather)
        flush(gather)
        return unmapped
    }

    /// The physical address `iova` translates to in this domain's tables, nil if unmapped.
    public final func translate(_ iova: IOVirtualAddress) -> PhysicalAddress? {
        switch kind {
        case .identity: PhysicalAddress(iova.value)
        case .blocked: nil
        default: lookup(iova.value)?.physical
        }
    }

    @discardableResult
    private func unmapRange(iova: UInt64, size: UInt64, gather: inout IOTLBGather) -> UInt64 {
        var done: UInt64 = 0
        while done < size {
            let pageSize = pageSizes.largestPage(iova: iova + done, physical: 0, remaining: size - done)
            var unmapped = unmapPage(iova: iova + done, pageSize: pageSize)
            // An IOVA aligned for a large page may still have been mapped with small ones (the physical
            // side was less aligned): the smallest size takes whatever leaf is there.
            if unmapped == 0, pageSize > pageSizes.smallest {
                unmapped = unmapPage(iova: iova + done, pageSize: pageSizes.smallest)
            }
            guard unmapped > 0 else { break }
            gather.add(iova: (iova + done) & ~(unmapped - 1), size: unmapped)
            done += unmapped
        }
        return min(done, size)
    }

    private func validate(iova: UInt64, physical: UInt64, size: UInt64) throws(IOMMUError) {
        let granule = pageSizes.smallest
        guard size > 0 else { throw .zeroSize }
        guard granule > 0, (iova | physical | size) & (granule - 1) == 0 else {
            throw .misaligned(iova: iova, physical: physical, size: size, granule: granule)
        }
        guard iova <= UInt64.max - (size - 1), physical <= UInt64.max - (size - 1) else {
            throw .addressOverflow(iova: iova, size: size)
        }
        if geometry.enforcesAperture {
            let last = iova + (size - 1)
            guard geometry.aperture.contains(iova), geometry.aperture.contains(last) else {
                throw .outsideAperture(iova: iova, size: size, aperture: geometry.aperture)
            }
        }
    }

    // MARK: Faults

    /// Installs (or with nil removes) the handler that receives this domain's faults.
    public final func setFaultHandler(_ handler: (@Sendable (IOMMUFault) -> Void)?) {
        let box = handler.map(FaultHandlerBox.init)
        faultHandler.withLock { $0 = box }
    }

    /// Faults delivered to this domain so far.
    public final var faultsDelivered: UInt64 { faultCount.load(ordering: .relaxed) }

    final func deliver(_ fault: IOMMUFault) {
        faultCount.add(1, ordering: .relaxed)
        faultHandler.withLock { $0 }?.call(fault)
    }

    public var description: String { "\(driverName) \(kind) domain #\(identifier)" }
}
