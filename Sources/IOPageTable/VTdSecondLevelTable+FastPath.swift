import CSupport
import Emulation

/// The 4 KiB map and unmap that every single-page DMA mapping uses. Same
/// checks, encodings and results as ``VTdSecondLevelTable/map(iova:physical:pageSize:permissions:)``
/// and ``VTdSecondLevelTable/unmap(iova:pageSize:)``, but walking the levels
/// with raw atomic loads and no intermediate errors or optionals.
extension VTdSecondLevelTable {
    /// Maps one 4 KiB page. With `exclusive` the caller owns `iova` until it unmaps it, and the
    /// entry is installed with a check and a store rather than a compare-and-swap (Linux's VT-d
    /// driver uses a CPU-local cmpxchg there): a present entry is still refused.
    /// - Throws: ``PageTableError/misaligned(iova:physical:pageSize:)``, ``PageTableError/beyondAddressWidth(iova:bits:)``,
    ///   ``PageTableError/physicalTooWide(physical:bits:)``, ``PageTableError/noPermissions``,
    ///   ``PageTableError/alreadyMapped(iova:)``, ``PageTableError/memory(_:)``.
    @inline(__always)
    public func map4K(iova: UInt64, physical: UInt64, permissions: AccessPermissions,
                      exclusive: Bool = false) throws(PageTableError) {
        guard (iova | physical) & 0xFFF == 0 else {
            throw .misaligned(iova: iova, physical: physical, pageSize: PageSize.size4K)
        }
        guard iova >> UInt64(inputAddressBits) == 0 else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(physicalAddressBits) == 0 else {
            throw .physicalTooWide(physical: physical, bits: physicalAddressBits)
        }
        guard !permissions.isEmpty else { throw .noPermissions }
        let limit = memory.size &- 8
        var table = leafTables.table(for: iova)
        if table == 0 { table = try walkToLevel1(iova: iova, limit: limit) }
        let slot = table &+ ((iova >> 9) & 0xFF8)
        guard slot <= limit else { throw .memory(.outOfRange(address: slot, count: 8, memorySize: memory.size)) }
        let leaf = Self.leafEntry(physical: physical, pageSize: PageSize.size4K, permissions: permissions)
        let entry = memoryBase + Int(slot)
        if exclusive {
            guard csupport_load64_relaxed(entry) == 0 else { throw .alreadyMapped(iova: iova) }
            csupport_store64_release(entry, leaf)
        } else {
            guard csupport_cas64(entry, 0, leaf) == 0 else { throw .alreadyMapped(iova: iova) }
        }
    }

    /// Walks (creating levels) down to the level-1 table covering `iova` and remembers it.
    @inline(never)
    func walkToLevel1(iova: UInt64, limit: UInt64) throws(PageTableError) -> UInt64 {
        var table = root.value
        var level = levels
        while level > 1 {
            let slot = table &+ ((iova >> UInt64(9 &* level)) & 0xFF8)
            guard slot <= limit else { throw .memory(.outOfRange(address: slot, count: 8, memorySize: memory.size)) }
            var entry = csupport_load64_acquire(memoryBase + Int(slot))
            if entry == 0 {
                do { entry = try nextTable(from: table, iova: iova, level: level) } catch {
                    if let error = error as? PageTableError { throw error }
                    if let error = error as? MemoryError { throw .memory(error) }
                    throw .memory(.invalidRequest("\(error)"))
                }
                table = entry
            } else {
                guard entry & VTdPTE.pageSize == 0 else { throw .alreadyMapped(iova: iova) }
                table = entry & VTdPTE.addressMask
            }
            level &-= 1
        }
        leafTables.remember(table, for: iova)
        return table
    }

    /// Clears the 4 KiB leaf mapping `iova`; returns what it mapped, or nil
    /// (changing nothing) when no 4 KiB page is mapped there: nothing at all,
    /// or a larger page, which only the general ``unmap(iova:pageSize:)`` removes.
    @inline(__always)
    public func unmap4K(iova: UInt64) -> PageTableLookup? {
        guard iova >> UInt64(inputAddressBits) == 0 else { return nil }
        let limit = memory.size &- 8
        var table = leafTables.table(for: iova)
        if table == 0 {
            table = root.value
            var level = levels
            while level > 1 {
                let slot = table &+ ((iova >> UInt64(9 &* level)) & 0xFF8)
                guard slot <= limit else { return nil }
                let entry = csupport_load64_acquire(memoryBase + Int(slot))
                guard entry & (VTdPTE.read | VTdPTE.write) != 0, entry & VTdPTE.pageSize == 0 else { return nil }
                table = entry & VTdPTE.addressMask
                level &-= 1
            }
            leafTables.remember(table, for: iova)
        }
        let slot = table &+ ((iova >> 9) & 0xFF8)
        guard slot <= limit else { return nil }
        let entry = csupport_load64_acquire(memoryBase + Int(slot))
        guard entry & (VTdPTE.read | VTdPTE.write) != 0,
              csupport_cas64(memoryBase + Int(slot), entry, 0) == entry else { return nil }
        return PageTableLookup(physical: PhysicalAddress(entry & VTdPTE.addressMask), pageSize: PageSize.size4K,
                               permissions: AccessPermissions(rawValue: UInt8(entry & 3)))
    }
}
