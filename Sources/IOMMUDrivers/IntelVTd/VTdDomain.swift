import Emulation
import IOMMUCore
import IOPageTable
import Synchronization
import CSupport

/// A VT-d domain: a domain ID and, for translating kinds, a second-level
/// page table. Invalidations go to every unit a device of the domain sits behind.
final class VTdDomain: IOMMUDomain, @unchecked Sendable {
    let domainID: UInt16
    let table: VTdSecondLevelTable?
    /// `table`, unretained for the single-page paths (the strong `table` keeps it alive).
    let tableReference: UnretainedReference<VTdSecondLevelTable>?
    /// The invalidation queues of the units this domain is attached through,
    /// read on every strict unmap without a lock.
    let units = AttachedUnits<VTdInvalidationQueue>()

    init(kind: DomainKind, domainID: UInt16, table: VTdSecondLevelTable?, pageSizes: PageSizeSet) {
        self.domainID = domainID
        self.table = table
        tableReference = table.map { UnretainedReference($0) }
        let aperture: ClosedRange<UInt64> = table.map { 0...((1 << UInt64($0.inputAddressBits)) - 1) } ?? 0...UInt64.max
        super.init(kind: kind, geometry: DomainGeometry(aperture: aperture, outside: .blocked, enforcesAperture: true),
                   pageSizes: pageSizes, driverName: VTdDriver.driverName)
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

    /// Page-selective invalidation of the smallest naturally aligned
    /// power-of-two block covering the gathered range (the AM field), or
    /// domain-selective when that block would be huge.
    override func flush(_ gather: IOTLBGather) {
        guard !gather.isEmpty else { return }
        let firstPage = gather.first >> 12, lastPage = gather.last >> 12
        if firstPage == lastPage { // one page, every strict single-page unmap: AM = 0
            submit(VTdInvalidationQueue.iotlbPage(domain: domainID, address: gather.first, addressMask: 0))
            return
        }
        var mask = 64 - (lastPage - firstPage).leadingZeroBitCount
        while mask < 52, firstPage >> UInt64(mask) != lastPage >> UInt64(mask) { mask += 1 }
        let descriptor = mask > 18 ? VTdInvalidationQueue.iotlbDomain(domainID)
            : VTdInvalidationQueue.iotlbPage(domain: domainID, address: gather.first, addressMask: mask)
        submit(descriptor)
    }

    override func flushAll() { submit(VTdInvalidationQueue.iotlbDomain(domainID)) }

    @inline(__always)
    private func submit(_ descriptor: VTdInvalidationQueue.Descriptor) {
        units.forEach { try? $0.submitAndWait(descriptor) }
    }

    override func destroy() { table?.destroy() }
}
