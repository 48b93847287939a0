import Emulation
import IOMMUCore
import IOPageTable

/// A Calgary domain: a TCE table and the DMA window [0, entries × 4 KiB) it
/// gives; outside the window the PHB refuses every access. An identity
/// domain has no table: attaching it disables translation on the bus.
final class CalgaryDomain: IOMMUDomain, @unchecked Sendable {
    let table: CalgaryTCETable?
    /// `table`, borrowed by the per-page calls (`table` keeps it alive).
    let tableReference: UnretainedReference<CalgaryTCETable>?
    /// The PHBs whose TAR points at this domain's table, keyed by PHB identity.
    let phbs = HostLock<[ObjectIdentifier: CalgaryDriver.PHBState]>([:])
    /// The TAR value for `table` (its address and size code), nil without a table: kept so
    /// that a flush binds neither the table nor anything else it would retain.
    private let tableAddressRegister: UInt64?

    init(kind: DomainKind, table: CalgaryTCETable?) {
        self.table = table
        tableReference = table.map { UnretainedReference($0) }
        tableAddressRegister = table?.tableAddressRegister
        let aperture: ClosedRange<UInt64> = table.map { 0...($0.windowBytes - 1) } ?? 0...UInt64.max
        super.init(kind: kind, geometry: DomainGeometry(aperture: aperture, outside: .blocked, enforcesAperture: true),
                   pageSizes: PageSizeSet([PageSize.size4K]), driverName: CalgaryDriver.driverName)
    }

    override func mapPage(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        try mapPage(in: tableReference, iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
    }

    override func unmapPage(iova: UInt64, pageSize: UInt64) -> UInt64 { unmapPage(in: tableReference, iova: iova, pageSize: pageSize) }

    override func lookup(_ iova: UInt64) -> PageTableLookup? { lookup(in: tableReference, iova) }

    override func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        try mapGranule(in: tableReference, iova: iova, physical: physical, permissions: permissions, exclusive: false)
    }

    override func mapOwnedGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        try mapGranule(in: tableReference, iova: iova, physical: physical, permissions: permissions, exclusive: true)
    }

    override func unmapGranule(iova: UInt64, gather: inout IOTLBGather) -> PhysicalAddress? {
        unmapGranule(in: tableReference, iova: iova, gather: &gather)
    }

    /// Calgary invalidates a PHB's whole TCE cache when its TAR is written,
    /// so every flush rewrites the TAR of each PHB using this table.
    override func flush(_ gather: IOTLBGather) {
        guard !gather.isEmpty else { return }
        flushAll()
    }

    override func flushAll() {
        guard let tableAddressRegister else { return }
        phbs.withLock { Self.rewrite(&$0, tableAddressRegister) }
    }

    /// Out of line on purpose: as an `inout` parameter the locked dictionary is known to be
    /// unaliased, so iterating it retains no PHB around each register write.
    @inline(never)
    private static func rewrite(_ phbs: inout [ObjectIdentifier: CalgaryDriver.PHBState], _ value: UInt64) {
        for phb in phbs.values { phb.writeTableAddress(value) }
    }

    override func destroy() { table?.destroy() }
}
