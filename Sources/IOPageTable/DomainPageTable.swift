import Emulation

/// A page table a driver's domain maps through: the general calls for any page size it
/// supports, and a fast path for the size the DMA layer maps one at a time, the smallest,
/// with the same checks, entries and results as the general calls for that size (only the
/// walk is cheaper). ``IOMMUCore``'s domain helpers take any such table, so each driver's
/// overrides are one line.
public protocol DomainPageTable: AnyObject {
    /// Maps one page or block of `pageSize` bytes.
    /// - Throws: ``PageTableError`` for a size, address or permission the format refuses, or an occupied entry.
    func map(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(PageTableError)
    /// Clears the leaf of `pageSize` (or a larger one covering `iova`); returns the bytes unmapped, 0 for none.
    func unmap(iova: UInt64, pageSize: UInt64) -> UInt64
    /// The translation of `iova`, nil when nothing maps it.
    func lookup(_ iova: UInt64) -> PageTableLookup?
    /// Maps one smallest-size page. With `exclusive` the caller owns `iova` until it unmaps it,
    /// so a format whose entry fills its own word may install it with a check and a store; an
    /// entry already present is refused either way.
    /// - Throws: ``PageTableError`` as the general map would for that page size.
    func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions, exclusive: Bool) throws(PageTableError)
    /// Clears the smallest-size page at `iova`; returns what it mapped, or nil (changing nothing)
    /// when no page of that size is mapped there.
    func unmapGranule(iova: UInt64) -> PageTableLookup?
}

extension VTdSecondLevelTable: DomainPageTable {
    @inline(__always)
    public func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions, exclusive: Bool) throws(PageTableError) {
        try map4K(iova: iova, physical: physical, permissions: permissions, exclusive: exclusive)
    }

    @inline(__always)
    public func unmapGranule(iova: UInt64) -> PageTableLookup? { unmap4K(iova: iova) }
}

extension ARMLPAETable: DomainPageTable {}
extension CalgaryTCETable: DomainPageTable {}
extension GARTTable: DomainPageTable {}
