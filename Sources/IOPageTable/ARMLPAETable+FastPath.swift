import CSupport
import Emulation

/// The granule-sized map and unmap that every single-page DMA mapping uses. Same checks,
/// encodings and results as ``ARMLPAETable/map(iova:physical:pageSize:permissions:)`` and
/// ``ARMLPAETable/unmap(iova:pageSize:)`` with the granule as the page size, but walking with
/// raw atomic loads and the remembered level-3 tables, without intermediate errors or optionals
/// (Linux's io-pgtable-arm walks from the top on every call).
extension ARMLPAETable {
    /// Maps one page of the table's granule. With `exclusive` the caller owns `iova` until it
    /// unmaps it, and the descriptor is installed with a check and a store rather than a
    /// compare-and-swap: a present entry is still refused.
    /// - Throws: ``PageTableError/misaligned(iova:physical:pageSize:)``, ``PageTableError/beyondAddressWidth(iova:bits:)``,
    ///   ``PageTableError/physicalTooWide(physical:bits:)``, ``PageTableError/noPermissions``,
    ///   ``PageTableError/alreadyMapped(iova:)`` (also when a block covers `iova`), ``PageTableError/memory(_:)``.
    @inline(__always)
    public func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions,
                           exclusive: Bool = false) throws(PageTableError) {
        let size: UInt64 = 1 &<< granuleShift
        guard (iova | physical) & (size &- 1) == 0 else { throw .misaligned(iova: iova, physical: physical, pageSize: size) }
        guard iova >> UInt64(inputAddressBits) == 0 else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(physicalAddressBits) == 0 else {
            throw .physicalTooWide(physical: physical, bits: physicalAddressBits)
        }
        guard !permissions.isEmpty else { throw .noPermissions }
        let limit = memory.size &- 8
        var table = leafTables.table(for: iova)
        if table == 0 { table = try walkToLastLevel(iova: iova, limit: limit) }
        let slot = table &+ lastLevelOffset(iova)
        guard slot <= limit else { throw .memory(.outOfRange(address: slot, count: 8, memorySize: memory.size)) }
        let leaf = Self.pageDescriptor(physical: physical, writable: permissions.rawValue & 2 != 0)
        let entry = memoryBase + Int(truncatingIfNeeded: slot)
        if exclusive {
            guard csupport_load64_relaxed(entry) == 0 else { throw .alreadyMapped(iova: iova) }
            csupport_store64_release(entry, leaf)
        } else {
            guard csupport_cas64(entry, 0, leaf) == 0 else { throw .alreadyMapped(iova: iova) }
        }
    }

    /// Clears the granule-sized page mapping `iova`; returns what it mapped, or nil (changing
    /// nothing) when no such page is mapped there: nothing at all, or a block, which only the
    /// general ``unmap(iova:pageSize:)`` removes.
    @inline(__always)
    public func unmapGranule(iova: UInt64) -> PageTableLookup? {
        guard iova >> UInt64(inputAddressBits) == 0 else { return nil }
        let limit = memory.size &- 8
        var table = leafTables.table(for: iova)
        if table == 0 {
            table = root.value
            var level = startLevel
            while level < 3 {
                let slot = entryAddress(table, iova, level: level).value
                guard slot <= limit else { return nil }
                let entry = csupport_load64_acquire(memoryBase + Int(truncatingIfNeeded: slot))
                guard entry & ARMLPAEDescriptor.valid != 0, !isLeaf(entry, level: level) else { return nil }
                table = outputAddress(entry)
                level &+= 1
            }
            leafTables.remember(table, for: iova)
        }
        let slot = table &+ lastLevelOffset(iova)
        guard slot <= limit else { return nil }
        let address = memoryBase + Int(truncatingIfNeeded: slot)
        let entry = csupport_load64_acquire(address)
        let page = ARMLPAEDescriptor.valid | ARMLPAEDescriptor.tableOrPage
        guard entry & page == page, csupport_cas64(address, entry, 0) == entry else { return nil }
        // As lookup(_:) reports them: read unless unprivileged access is off, write unless AP[2].
        let readable: UInt8 = entry & ARMLPAEDescriptor.unprivileged != 0 ? 1 : 0
        let writable: UInt8 = entry & ARMLPAEDescriptor.readOnly == 0 ? readable << 1 : 0
        return PageTableLookup(physical: PhysicalAddress(outputAddress(entry)), pageSize: 1 &<< granuleShift,
                               permissions: AccessPermissions(rawValue: readable | writable))
    }

    /// Where the level-3 descriptor of `iova` sits in its table.
    @inline(__always)
    func lastLevelOffset(_ iova: UInt64) -> UInt64 {
        ((iova &>> granuleShift) & lastLevelIndexMask) &* 8
    }

    /// ``leafDescriptor(physical:isPage:permissions:)`` for a page, without the option-set calls.
    @inline(__always)
    static func pageDescriptor(physical: UInt64, writable: Bool) -> UInt64 {
        let page = physical & ARMLPAEDescriptor.outputAddressMask | ARMLPAEDescriptor.valid | ARMLPAEDescriptor.tableOrPage
            | ARMLPAEDescriptor.cacheableAttributeIndex << ARMLPAEDescriptor.attributeIndexShift
            | ARMLPAEDescriptor.unprivileged | ARMLPAEDescriptor.innerShareable | ARMLPAEDescriptor.accessFlag
            | ARMLPAEDescriptor.notGlobal
        return writable ? page : page | ARMLPAEDescriptor.readOnly
    }

    /// Walks (creating levels) down to the level-3 table covering `iova` and remembers it.
    @inline(never)
    func walkToLastLevel(iova: UInt64, limit: UInt64) throws(PageTableError) -> UInt64 {
        var table = root.value
        do {
            for level in startLevel..<3 { table = try nextTable(from: table, iova: iova, level: level) }
        } catch let error as PageTableError {
            throw error
        } catch let error as MemoryError {
            throw .memory(error)
        } catch {
            throw .memory(.invalidRequest("\(error)"))
        }
        leafTables.remember(table, for: iova)
        return table
    }
}
