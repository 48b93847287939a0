import Emulation

extension AMDViPageTable {
    /// The translation of `iova`, as the software sees it (walking as the hardware does, level skipping included).
    public func lookup(_ iova: UInt64) -> PageTableLookup? { view.lookup(iova) }

    /// The translation of `iova` read straight from `leafTable`, the level-1 table covering it.
    public func lookup(inLeafTable leafTable: PhysicalAddress, iova: UInt64) -> PageTableLookup? {
        view.lookup(inLeafTable: leafTable, iova: iova)
    }

    /// Clears the page that maps `iova`, whatever its size, with every entry
    /// it spans. Returns the bytes unmapped: 0 when nothing was mapped there
    /// or `pageSize` is not one this table maps.
    public func unmap(iova: UInt64, pageSize: UInt64) -> UInt64 { view.unmap(iova: iova, pageSize: pageSize) }

    /// Clears the page mapping `iova` in `leafTable`, the level-1 table covering it: the walk-free unmap.
    public func unmap(inLeafTable leafTable: PhysicalAddress, iova: UInt64) -> UInt64 {
        view.unmap(inLeafTable: leafTable, iova: iova)
    }
}
