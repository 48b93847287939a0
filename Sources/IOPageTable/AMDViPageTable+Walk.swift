import Emulation

extension AMDViPageTable {
    /// Where the leaf mapping `iova` sits, found as the hardware walks:
    /// following next-level fields, including ones that skip levels (whose
    /// index bits must then be zero).
    struct Located {
        /// The first of the entries the page spans.
        var firstSlot: UInt64
        var count: Int
        var entry: UInt64
        var shift: Int
        var permissions: AccessPermissions
    }

    func locate(_ iova: UInt64) -> Located? {
        guard inputAddressBits == 64 || iova >> UInt64(inputAddressBits) == 0 else { return nil }
        var table = root.value
        var level = levels
        var permissions = AccessPermissions.readWrite
        while level >= 1 {
            let slot = entryAddress(table, iova, level: level)
            guard let entry = try? memory.load64(slot), entry & AMDViPTE.present != 0 else { return nil }
            permissions.formIntersection(AMDViPageTableEncoding.permissions(entry))
            if AMDViPageTableEncoding.isDirectory(entry, level: level) {
                let next = AMDViPageTableEncoding.nextLevel(entry)
                if next < level - 1 {
                    let skipped = (iova >> UInt64(AMDViPageTableEncoding.naturalShift(level: next + 1)))
                        & ((1 << UInt64(9 * (level - 1 - next))) - 1)
                    guard skipped == 0 else { return nil }
                }
                table = entry & AMDViPTE.addressMask
                level = next
                continue
            }
            guard let shift = AMDViPageTableEncoding.leafShift(entry, level: level) else { return nil }
            return located(in: table, level: level, iova: iova, entry: entry, shift: shift, permissions: permissions)
        }
        return nil
    }

    @inline(__always)
    private func located(in table: UInt64, level: Int, iova: UInt64, entry: UInt64, shift: Int,
                         permissions: AccessPermissions) -> Located {
        let natural = AMDViPageTableEncoding.naturalShift(level: level)
        let count = 1 << (shift - natural)
        let index = ((iova >> UInt64(natural)) & 0x1FF) & ~UInt64(count - 1)
        return Located(firstSlot: table + index * 8, count: count, entry: entry, shift: shift, permissions: permissions)
    }

    /// The translation of `iova`, as the software sees it.
    public func lookup(_ iova: UInt64) -> PageTableLookup? {
        guard let found = locate(iova) else { return nil }
        let size: UInt64 = 1 << UInt64(found.shift)
        let base = found.entry & AMDViPTE.addressMask & ~(size - 1)
        return PageTableLookup(physical: PhysicalAddress(base | (iova & (size - 1))), pageSize: size,
                               permissions: found.permissions)
    }

    /// The translation of `iova` read straight from `leafTable`, the level-1
    /// table covering it: the walk-free lookup. The tables this type builds
    /// give every directory both permissions, so the leaf's are the walk's.
    @inline(__always)
    public func lookup(inLeafTable leafTable: PhysicalAddress, iova: UInt64) -> PageTableLookup? {
        guard let entry = try? memory.load64(entryAddress(leafTable.value, iova, level: 1)), entry & AMDViPTE.present != 0,
              let shift = AMDViPageTableEncoding.leafShift(entry, level: 1) else { return nil }
        let size: UInt64 = 1 << UInt64(shift)
        let base = entry & AMDViPTE.addressMask & ~(size - 1)
        return PageTableLookup(physical: PhysicalAddress(base | (iova & (size - 1))), pageSize: size,
                               permissions: AMDViPageTableEncoding.permissions(entry))
    }

    /// Clears the page that maps `iova`, whatever its size, with every entry
    /// it spans. Returns the bytes unmapped: 0 when nothing was mapped there
    /// or `pageSize` is not one this table maps.
    public func unmap(iova: UInt64, pageSize: UInt64) -> UInt64 {
        guard pageSize.nonzeroBitCount == 1, pageSizes & pageSize != 0, let found = locate(iova) else { return 0 }
        return clear(found)
    }

    /// Clears the page mapping `iova` in `leafTable`, the level-1 table
    /// covering it: the walk-free unmap. Returns the bytes unmapped.
    @inline(__always)
    public func unmap(inLeafTable leafTable: PhysicalAddress, iova: UInt64) -> UInt64 {
        let slot = entryAddress(leafTable.value, iova, level: 1)
        guard let entry = try? memory.load64(slot), entry & AMDViPTE.present != 0,
              let shift = AMDViPageTableEncoding.leafShift(entry, level: 1) else { return 0 }
        return clear(located(in: leafTable.value, level: 1, iova: iova, entry: entry, shift: shift,
                             permissions: AMDViPageTableEncoding.permissions(entry)))
    }

    @inline(__always)
    private func clear(_ found: Located) -> UInt64 {
        // The first entry decides who unmaps when two threads race on one page.
        guard (try? memory.compareExchange64(PhysicalAddress(found.firstSlot), expected: found.entry, desired: 0))
                == found.entry else { return 0 }
        for index in 1..<max(1, found.count) {
            try? memory.store64(PhysicalAddress(found.firstSlot + UInt64(index) * 8), 0)
        }
        return 1 << UInt64(found.shift)
    }
}
