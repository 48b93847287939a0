import Emulation
import IOMMUCore
import IOPageTable

/// An AMD-Vi domain: a domain ID and, for translating kinds, a v1 page
/// table. DMA domains may keep a leaf-page array so that a page of up to
/// 1 MiB is mapped, unmapped and looked up by indexing instead of walking.
/// Invalidations go to every unit a device of the domain sits behind.
///
/// Pages below 2 MiB in an existing level-1 table take the table's
/// allocation-free view (no reference counting) with or without the array:
/// the array only replaces the walk from the root to that table.
public final class AMDViDomain: IOMMUDomain, @unchecked Sendable {
    public let domainID: UInt16
    public let table: AMDViPageTable?
    private let view: AMDViPageTableView?
    let leafArray: AMDViLeafArray?
    let queues = AttachedUnits<AMDViCommandQueue>()

    init(kind: DomainKind, domainID: UInt16, table: AMDViPageTable?, pageSizes: PageSizeSet, leafArray: Bool) {
        self.domainID = domainID
        self.table = table
        view = table?.view
        let aperture: ClosedRange<UInt64> = table.map {
            $0.inputAddressBits >= 64 ? 0...UInt64.max : 0...((1 << UInt64($0.inputAddressBits)) - 1)
        } ?? 0...UInt64.max
        self.leafArray = leafArray && table != nil && kind.usesDMALayer ? AMDViLeafArray(aperture: aperture) : nil
        super.init(kind: kind, geometry: DomainGeometry(aperture: aperture, outside: .blocked, enforcesAperture: true),
                   pageSizes: pageSizes, driverName: AMDViDriver.driverName)
    }

    deinit { leafArray?.deallocate() }

    /// Whether map, unmap and lookup of small pages index a leaf-page array instead of walking.
    public var usesLeafArray: Bool { leafArray != nil }
    /// Leaf tables the array currently knows (0 without the array).
    public var leafTablesRecorded: Int { leafArray?.recorded ?? 0 }

    /// The level-1 table for a page of `pageSize` at `iova`, without allocating: from the array, else by walking.
    @inline(__always)
    private func knownLeafTable(_ view: AMDViPageTableView, _ iova: UInt64, _ pageSize: UInt64) -> PhysicalAddress? {
        guard pageSize < PageSize.size2M else { return nil }
        if let leafArray, leafArray.covers(iova) { return leafArray.leaf(for: iova) }
        return view.leafTable(containing: iova)
    }

    public override func mapPage(iova: UInt64, physical: UInt64, pageSize: UInt64,
                                 permissions: AccessPermissions) throws(IOMMUError) {
        guard let view, table != nil else { throw .domainDoesNotTranslate(kind) }
        do {
            if let leaf = knownLeafTable(view, iova, pageSize) {
                try view.map(inLeafTable: leaf, iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
                return
            }
            // Tables may have to be created: through `table`, bound only here because binding it
            // retains it, which the one-page path above must not pay.
            guard let table else { return }
            if let leafArray {
                if pageSize < PageSize.size2M, leafArray.covers(iova) {
                    try view.validate(iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
                    if let leaf = try table.leafTable(containing: iova, create: true) {
                        leafArray.record(leaf, for: iova)
                        try view.map(inLeafTable: leaf, iova: iova, physical: physical, pageSize: pageSize,
                                     permissions: permissions)
                        return
                    }
                } else if pageSize >= PageSize.size2M {
                    // The page may replace empty leaf tables: the array must not point at them any more.
                    leafArray.forget(iova, iova + (pageSize - 1))
                }
            }
            try table.map(iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
        } catch {
            if case let .alreadyMapped(at) = error { throw .alreadyMapped(iova: at) }
            throw .pageTable(error)
        }
    }

    public override func unmapPage(iova: UInt64, pageSize: UInt64) -> UInt64 {
        guard let view else { return 0 }
        if let leafArray, view.pageSizes & pageSize != 0, let leaf = leafArray.leaf(for: iova) {
            return view.unmap(inLeafTable: leaf, iova: iova)
        }
        return view.unmap(iova: iova, pageSize: pageSize)
    }

    /// The generic map's checks for one 4 KiB page, then straight to ``mapPage(iova:physical:pageSize:permissions:)``
    /// (leaf array or walk-free view) without the range splitting.
    public override func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        let granule = PageSize.size4K
        guard kind.translates else { throw .domainDoesNotTranslate(kind) }
        guard (iova | physical) & (granule - 1) == 0 else {
            throw .misaligned(iova: iova, physical: physical, size: granule, granule: granule)
        }
        guard geometry.aperture.contains(iova), geometry.aperture.contains(iova + (granule - 1)) else {
            throw .outsideAperture(iova: iova, size: granule, aperture: geometry.aperture)
        }
        try mapPage(iova: iova, physical: physical, pageSize: granule, permissions: permissions)
    }

    /// One lookup and one clear of the 4 KiB entry (the generic version looks the page up, then walks again to unmap it).
    public override func unmapGranule(iova: UInt64, gather: inout IOTLBGather) -> PhysicalAddress? {
        guard let view else { return nil }
        let leaf = leafArray?.leaf(for: iova)
        guard let found = view.unmapSmallestPage(iova: iova, inLeafTable: leaf) else { return nil }
        gather.add(iova: iova, size: PageSize.size4K)
        return found.physical
    }

    public override func lookup(_ iova: UInt64) -> PageTableLookup? {
        guard let view else { return nil }
        if let leafArray, let leaf = leafArray.leaf(for: iova) { return view.lookup(inLeafTable: leaf, iova: iova) }
        return view.lookup(iova)
    }

    public override func flush(_ gather: IOTLBGather) {
        guard !gather.isEmpty else { return }
        submit(AMDViCommandQueue.invalidatePages(domain: domainID, first: gather.first, last: gather.last))
    }

    public override func flushAll() { submit(AMDViCommandQueue.invalidateDomain(domainID)) }

    public override func destroy() { table?.destroy() }

    @inline(__always)
    private func submit(_ command: AMDViCommandQueue.Command) {
        queues.forEach { try? $0.submitAndWait(command) }
    }
}
