import CSupport
import Emulation

/// The allocation-free operations on an AMD-Vi v1 table, over raw emulated
/// memory: walks (lookup, unmap, finding a level-1 table) and installing
/// pages of up to 1 MiB into a known level-1 table. It holds no class
/// reference, so a driver's hot path calls it without reference counting;
/// the ``AMDViPageTable`` that made it must outlive it (it owns the memory).
///
/// Every address read from an entry is bounds-checked before it is followed.
public struct AMDViPageTableView: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let memorySize: UInt64
    public let root: UInt64
    public let levels: Int
    public let pageSizes: UInt64
    public let physicalAddressBits: Int

    init(base: UnsafeMutableRawPointer, memorySize: UInt64, root: UInt64, levels: Int, pageSizes: UInt64,
         physicalAddressBits: Int) {
        self.base = base
        self.memorySize = memorySize
        self.root = root
        self.levels = levels
        self.pageSizes = pageSizes
        self.physicalAddressBits = physicalAddressBits
    }

    public var inputAddressBits: Int { min(64, 12 + 9 * levels) }

    @inlinable @inline(__always)
    func fits(_ iova: UInt64) -> Bool { levels >= 6 || iova >> UInt64(12 + 9 * levels) == 0 }

    /// The entry slot of `iova` at `level` in `table`, nil when the table lies outside memory.
    @inlinable @inline(__always)
    func slot(_ table: UInt64, _ iova: UInt64, level: Int) -> UnsafeMutableRawPointer? {
        guard table <= memorySize &- 4096 else { return nil }
        return base + Int(table + ((iova >> UInt64(12 + 9 * (level - 1))) & 0x1FF) * 8)
    }

    @inlinable @inline(__always)
    func load(_ pointer: UnsafeMutableRawPointer) -> UInt64 { UInt64(littleEndian: csupport_load64_acquire(pointer)) }

    /// Checks what a map checks before touching memory.
    /// - Throws: ``PageTableError/unsupportedPageSize(_:)``, ``PageTableError/misaligned(iova:physical:pageSize:)``,
    ///   ``PageTableError/beyondAddressWidth(iova:bits:)``, ``PageTableError/physicalTooWide(physical:bits:)``,
    ///   ``PageTableError/noPermissions``.
    @inlinable
    public func validate(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(PageTableError) {
        guard pageSize.nonzeroBitCount == 1, pageSizes & pageSize != 0 else { throw .unsupportedPageSize(pageSize) }
        guard (iova | physical) & (pageSize - 1) == 0 else { throw .misaligned(iova: iova, physical: physical, pageSize: pageSize) }
        guard fits(iova) else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(physicalAddressBits) == 0 else { throw .physicalTooWide(physical: physical, bits: physicalAddressBits) }
        guard !permissions.isEmpty else { throw .noPermissions }
    }

    /// The existing level-1 table covering `iova`, found by walking the
    /// levels this format builds (no skipping); nil when there is none yet
    /// or a larger page covers `iova`.
    @inlinable
    public func leafTable(containing iova: UInt64) -> PhysicalAddress? {
        guard fits(iova) else { return nil }
        var table = root
        var level = levels
        while level > 1 {
            guard let pointer = slot(table, iova, level: level) else { return nil }
            let entry = load(pointer)
            guard entry & AMDViPTE.present != 0,
                  (entry & AMDViPTE.nextLevelMask) >> AMDViPTE.nextLevelShift == UInt64(level - 1) else { return nil }
            table = entry & AMDViPTE.addressMask
            level -= 1
        }
        return PhysicalAddress(table)
    }

    /// Installs a page of at most 1 MiB into `leafTable`, the level-1 table
    /// covering `iova`: its one entry, or the run of next-level-7 entries it
    /// spans, each over an empty slot. A clash undoes what was written.
    /// - Throws: the errors of ``validate(iova:physical:pageSize:permissions:)``,
    ///   ``PageTableError/unsupportedPageSize(_:)`` for 2 MiB and up,
    ///   ``PageTableError/alreadyMapped(iova:)``, ``PageTableError/memory(_:)`` for a table outside memory.
    @inlinable
    public func map(inLeafTable leafTable: PhysicalAddress, iova: UInt64, physical: UInt64, pageSize: UInt64,
                    permissions: AccessPermissions) throws(PageTableError) {
        try validate(iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
        guard pageSize < PageSize.size2M else { throw .unsupportedPageSize(pageSize) }
        let count = UInt64(pageSize >> 12)
        let leaf = AMDViPageTableEncoding.leafEntry(physical: physical, pageSize: pageSize, permissions: permissions)
        guard let first = slot(leafTable.value, iova & ~(pageSize - 1), level: 1) else {
            throw .memory(.outOfRange(address: leafTable.value, count: 4096, memorySize: memorySize))
        }
        for index in 0..<Int(count) {
            let found = csupport_cas64(first + index * 8, 0, leaf.littleEndian)
            guard found == 0 else {
                for undo in 0..<index { _ = csupport_cas64(first + undo * 8, leaf.littleEndian, 0) }
                throw .alreadyMapped(iova: iova)
            }
        }
    }

    /// Where the leaf mapping `iova` sits, found as the hardware walks:
    /// following next-level fields, including ones that skip levels (whose
    /// index bits must then be zero).
    @usableFromInline
    struct Located {
        /// The first of the entries the page spans.
        @usableFromInline var firstSlot: UnsafeMutableRawPointer
        @usableFromInline var count: Int
        @usableFromInline var entry: UInt64
        @usableFromInline var shift: Int
        @usableFromInline var permissions: AccessPermissions

        @inlinable
        init(firstSlot: UnsafeMutableRawPointer, count: Int, entry: UInt64, shift: Int, permissions: AccessPermissions) {
            self.firstSlot = firstSlot
            self.count = count
            self.entry = entry
            self.shift = shift
            self.permissions = permissions
        }
    }

    @inlinable
    func locate(_ iova: UInt64) -> Located? {
        guard fits(iova) else { return nil }
        var table = root
        var level = levels
        var permissions = AccessPermissions.readWrite
        while level >= 1 {
            guard let pointer = slot(table, iova, level: level) else { return nil }
            let entry = load(pointer)
            guard entry & AMDViPTE.present != 0 else { return nil }
            permissions.formIntersection(AMDViPageTableEncoding.permissions(entry))
            if AMDViPageTableEncoding.isDirectory(entry, level: level) {
                let next = AMDViPageTableEncoding.nextLevel(entry)
                if next < level - 1 {
                    let skipped = (iova >> UInt64(12 + 9 * next)) & ((1 << UInt64(9 * (level - 1 - next))) - 1)
                    guard skipped == 0 else { return nil }
                }
                table = entry & AMDViPTE.addressMask
                level = next
                continue
            }
            guard let shift = AMDViPageTableEncoding.leafShift(entry, level: level) else { return nil }
            return located(pointer, level: level, iova: iova, entry: entry, shift: shift, permissions: permissions)
        }
        return nil
    }

    @inlinable @inline(__always)
    func located(_ pointer: UnsafeMutableRawPointer, level: Int, iova: UInt64, entry: UInt64, shift: Int,
                 permissions: AccessPermissions) -> Located {
        let natural = 12 + 9 * (level - 1)
        let count = 1 << (shift - natural)
        let index = Int((iova >> UInt64(natural)) & 0x1FF)
        return Located(firstSlot: pointer - (index & (count - 1)) * 8, count: count, entry: entry, shift: shift,
                       permissions: permissions)
    }

    @inlinable @inline(__always)
    func translation(_ found: Located, _ iova: UInt64) -> PageTableLookup {
        let size: UInt64 = 1 << UInt64(found.shift)
        let frame = found.entry & AMDViPTE.addressMask & ~(size - 1)
        return PageTableLookup(physical: PhysicalAddress(frame | (iova & (size - 1))), pageSize: size,
                               permissions: found.permissions)
    }

    /// The translation of `iova`, as the software sees it.
    @inlinable
    public func lookup(_ iova: UInt64) -> PageTableLookup? {
        guard let found = locate(iova) else { return nil }
        return translation(found, iova)
    }

    /// The leaf that maps `iova` in `leafTable`, the level-1 table covering it: the walk-free locate.
    @inlinable @inline(__always)
    func locate(inLeafTable leafTable: PhysicalAddress, iova: UInt64) -> Located? {
        guard let pointer = slot(leafTable.value, iova, level: 1) else { return nil }
        let entry = load(pointer)
        guard entry & AMDViPTE.present != 0, let shift = AMDViPageTableEncoding.leafShift(entry, level: 1) else { return nil }
        return located(pointer, level: 1, iova: iova, entry: entry, shift: shift,
                       permissions: AMDViPageTableEncoding.permissions(entry))
    }

    /// The translation of `iova` read straight from `leafTable`. The tables
    /// this format builds give every directory both permissions, so the
    /// leaf's are the walk's.
    @inlinable
    public func lookup(inLeafTable leafTable: PhysicalAddress, iova: UInt64) -> PageTableLookup? {
        guard let found = locate(inLeafTable: leafTable, iova: iova) else { return nil }
        return translation(found, iova)
    }

    /// Clears the page that maps `iova`, whatever its size, with every entry
    /// it spans. Returns the bytes unmapped: 0 when nothing was mapped there
    /// or `pageSize` is not one this table maps.
    @inlinable
    public func unmap(iova: UInt64, pageSize: UInt64) -> UInt64 {
        guard pageSize.nonzeroBitCount == 1, pageSizes & pageSize != 0, let found = locate(iova) else { return 0 }
        return clear(found)
    }

    /// Clears the page mapping `iova` in `leafTable`: the walk-free unmap. Returns the bytes unmapped.
    @inlinable
    public func unmap(inLeafTable leafTable: PhysicalAddress, iova: UInt64) -> UInt64 {
        guard let found = locate(inLeafTable: leafTable, iova: iova) else { return 0 }
        return clear(found)
    }

    /// Clears the 4 KiB page mapping `iova` (found by a walk, or in `leafTable` when given) and
    /// returns what it mapped; nil, changing nothing, when no 4 KiB page maps it (nothing, or a
    /// larger page) or another unmap cleared it first. The DMA layer's single-page unmap.
    @inlinable
    public func unmapSmallestPage(iova: UInt64, inLeafTable leafTable: PhysicalAddress? = nil) -> PageTableLookup? {
        let located = leafTable.map { locate(inLeafTable: $0, iova: iova) } ?? locate(iova)
        guard let found = located, found.shift == 12, clear(found) != 0 else { return nil }
        return translation(found, iova & ~0xFFF)
    }

    @inlinable @inline(__always)
    func clear(_ found: Located) -> UInt64 {
        // The first entry decides who unmaps when two threads race on one page.
        guard csupport_cas64(found.firstSlot, found.entry.littleEndian, 0) == found.entry.littleEndian else { return 0 }
        for index in 1..<max(1, found.count) { csupport_store64_release(found.firstSlot + index * 8, 0) }
        return 1 << UInt64(found.shift)
    }
}
