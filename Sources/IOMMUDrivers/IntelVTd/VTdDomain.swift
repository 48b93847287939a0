import Emulation
import IOMMUCore
import IOPageTable
import Synchronization

/// A VT-d domain: a domain ID and, for translating kinds, a second-level
/// page table. Invalidations go to every unit a device of the domain sits behind.
final class VTdDomain: IOMMUDomain, @unchecked Sendable {
    let domainID: UInt16
    let table: VTdSecondLevelTable?
    let units = Mutex<[ObjectIdentifier: VTdInvalidationQueue]>([:])

    init(kind: DomainKind, domainID: UInt16, table: VTdSecondLevelTable?, pageSizes: PageSizeSet) {
        self.domainID = domainID
        self.table = table
        let aperture: ClosedRange<UInt64> = table.map { 0...((1 << UInt64($0.inputAddressBits)) - 1) } ?? 0...UInt64.max
        super.init(kind: kind, geometry: DomainGeometry(aperture: aperture, outside: .blocked, enforcesAperture: true),
                   pageSizes: pageSizes, driverName: VTdDriver.driverName)
    }

    override func mapPage(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        guard let table else { throw .domainDoesNotTranslate(kind) }
        do { try table.map(iova: iova, physical: physical, pageSize: pageSize, permissions: permissions) } catch {
            if case let .alreadyMapped(at) = error { throw .alreadyMapped(iova: at) }
            throw .pageTable(error)
        }
    }

    override func unmapPage(iova: UInt64, pageSize: UInt64) -> UInt64 {
        table?.unmap(iova: iova, pageSize: pageSize) ?? 0
    }

    override func lookup(_ iova: UInt64) -> PageTableLookup? { table?.lookup(iova) }

    /// Page-selective invalidation of the smallest naturally aligned
    /// power-of-two block covering the gathered range (the AM field), or
    /// domain-selective when that block would be huge.
    override func flush(_ gather: IOTLBGather) {
        guard !gather.isEmpty else { return }
        let pages = (gather.last >> 12) - (gather.first >> 12) + 1
        var mask = pages <= 1 ? 0 : 64 - (pages - 1).leadingZeroBitCount
        while mask < 52, (gather.first >> 12) >> UInt64(mask) != (gather.last >> 12) >> UInt64(mask) { mask += 1 }
        let descriptor = mask > 18 ? VTdInvalidationQueue.iotlbDomain(domainID)
            : VTdInvalidationQueue.iotlbPage(domain: domainID, address: gather.first, addressMask: mask)
        submit(descriptor)
    }

    override func flushAll() { submit(VTdInvalidationQueue.iotlbDomain(domainID)) }

    override func destroy() { table?.destroy() }

    private func submit(_ descriptor: VTdInvalidationQueue.Descriptor) {
        units.withLock { units in
            for queue in units.values { try? queue.submitAndWait(descriptor) }
        }
    }
}
