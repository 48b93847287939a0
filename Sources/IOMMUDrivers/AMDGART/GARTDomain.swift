import Emulation
import IOMMUCore
import IOPageTable

/// A GART domain. A translating one owns a GATT covering the unit's single
/// aperture; outside it every bus address reaches memory untranslated, and
/// the domain says so. An identity domain has no GATT: attaching it turns
/// the aperture off, so every bus address reaches the same physical address.
final class GARTDomain: IOMMUDomain, @unchecked Sendable {
    let table: GARTTable?
    /// `table`, borrowed by the per-page calls (`table` keeps it alive).
    let tableReference: UnretainedReference<GARTTable>?
    let hardware: GARTDriver.UnitState

    init(kind: DomainKind, table: GARTTable?, hardware: GARTDriver.UnitState) {
        self.table = table
        tableReference = table.map { UnretainedReference($0) }
        self.hardware = hardware
        let aperture = table.map { $0.apertureBase...($0.apertureBase + $0.apertureSize - 1) } ?? 0...UInt64.max
        super.init(kind: kind, geometry: DomainGeometry(aperture: aperture, outside: .passThrough, enforcesAperture: true),
                   pageSizes: PageSizeSet([PageSize.size4K]), driverName: GARTDriver.driverName)
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

    /// The GART can only forget its whole TLB (InvGart), so every flush is global.
    override func flush(_ gather: IOTLBGather) {
        guard !gather.isEmpty else { return }
        hardware.invalidateTLB()
    }

    override func flushAll() { hardware.invalidateTLB() }

    override func destroy() { table?.destroy() }
}
