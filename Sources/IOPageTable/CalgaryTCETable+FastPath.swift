import CSupport
import Emulation

/// The single-page map and unmap of the DMA layer's hot path: the same checks, entries and
/// results as ``CalgaryTCETable/map(iova:physical:pageSize:permissions:)`` and
/// ``CalgaryTCETable/unmap(iova:pageSize:)`` for 4 KiB, on the table's CPU view.
extension CalgaryTCETable {
    /// Maps one 4 KiB page. With `exclusive` the caller owns `iova` until it unmaps it, and the
    /// entry (a whole 64-bit word) is installed with a check and a store rather than a
    /// compare-and-swap: a present entry is still refused.
    /// - Throws: ``PageTableError/misaligned(iova:physical:pageSize:)``, ``PageTableError/beyondAddressWidth(iova:bits:)``,
    ///   ``PageTableError/physicalTooWide(physical:bits:)``, ``PageTableError/noPermissions``, ``PageTableError/alreadyMapped(iova:)``.
    @inline(__always)
    public func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions,
                           exclusive: Bool = false) throws(PageTableError) {
        guard (iova | physical) & 0xFFF == 0 else { throw .misaligned(iova: iova, physical: physical, pageSize: PageSize.size4K) }
        guard iova < windowBytes else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(CalgaryTCE.physicalAddressBits) == 0 else {
            throw .physicalTooWide(physical: physical, bits: CalgaryTCE.physicalAddressBits)
        }
        guard !permissions.isEmpty else { throw .noPermissions }
        let entry = entriesBase + Int(truncatingIfNeeded: (iova >> 12) &* 8)
        let tce = CalgaryTCE.encode(physical: physical, permissions: permissions)
        if exclusive {
            guard csupport_load64_relaxed(entry) == 0 else { throw .alreadyMapped(iova: iova) }
            csupport_store64_release(entry, tce)
        } else {
            guard csupport_cas64(entry, 0, tce) == 0 else { throw .alreadyMapped(iova: iova) }
        }
    }

    /// Clears the TCE for the page at `iova`; returns what it mapped, or nil (changing nothing)
    /// when it grants nothing or `iova` lies outside the window.
    @inline(__always)
    public func unmapGranule(iova: UInt64) -> PageTableLookup? {
        guard iova < windowBytes else { return nil }
        let address = entriesBase + Int(truncatingIfNeeded: (iova >> 12) &* 8)
        let entry = csupport_load64_acquire(address)
        guard entry & (CalgaryTCE.read | CalgaryTCE.write) != 0, csupport_cas64(address, entry, 0) == entry else { return nil }
        return PageTableLookup(physical: PhysicalAddress(entry & CalgaryTCE.pageMask), pageSize: PageSize.size4K,
                               permissions: CalgaryTCE.permissions(of: entry))
    }
}
