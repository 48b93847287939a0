import Emulation

/// A page table with a fast path for the page size the DMA layer maps one at a time: the
/// smallest it supports. Same checks, entries and results as its general map and unmap for
/// that size; only the walk is cheaper.
public protocol SinglePageTable: AnyObject {
    /// Maps one smallest-size page. With `exclusive` the caller owns `iova` until it unmaps it,
    /// so a format whose entry fills its own word may install it with a check and a store; an
    /// entry already present is refused either way.
    /// - Throws: ``PageTableError`` as the general map would for that page size.
    func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions, exclusive: Bool) throws(PageTableError)
    /// Clears the smallest-size page at `iova`; returns what it mapped, or nil (changing nothing)
    /// when no page of that size is mapped there.
    func unmapGranule(iova: UInt64) -> PageTableLookup?
}

extension VTdSecondLevelTable: SinglePageTable {
    @inline(__always)
    public func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions, exclusive: Bool) throws(PageTableError) {
        try map4K(iova: iova, physical: physical, permissions: permissions, exclusive: exclusive)
    }

    @inline(__always)
    public func unmapGranule(iova: UInt64) -> PageTableLookup? { unmap4K(iova: iova) }
}

extension ARMLPAETable: SinglePageTable {}
extension CalgaryTCETable: SinglePageTable {}
extension GARTTable: SinglePageTable {}
