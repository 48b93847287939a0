import CSupport
import Emulation

/// The single-page map and unmap of the DMA layer's hot path: the same checks, entries and
/// results as ``GARTTable/map(iova:physical:pageSize:permissions:)`` and
/// ``GARTTable/unmap(iova:pageSize:)`` for 4 KiB, on the GATT's CPU view, without the
/// bounds-checked memory calls and the closure of the general exchange.
extension GARTTable {
    /// Maps one 4 KiB page. `exclusive` changes nothing here: the 32-bit entry shares its
    /// 64-bit word with a neighbour, which another thread may be changing, so the entry is
    /// always installed with a compare-and-swap of the word.
    /// - Throws: ``PageTableError/misaligned(iova:physical:pageSize:)``, ``PageTableError/beyondAddressWidth(iova:bits:)``,
    ///   ``PageTableError/physicalTooWide(physical:bits:)``, ``PageTableError/noPermissions``, ``PageTableError/alreadyMapped(iova:)``.
    @inline(__always)
    public func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions,
                           exclusive: Bool = false) throws(PageTableError) {
        guard (iova | physical) & 0xFFF == 0 else { throw .misaligned(iova: iova, physical: physical, pageSize: PageSize.size4K) }
        guard let index = index(of: iova) else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(GARTEntry.physicalAddressBits) == 0 else {
            throw .physicalTooWide(physical: physical, bits: GARTEntry.physicalAddressBits)
        }
        guard !permissions.isEmpty else { throw .noPermissions }
        guard replaceEntry(index, with: GARTEntry.encode(physical: physical), ifValid: false) != nil else {
            throw .alreadyMapped(iova: iova)
        }
    }

    /// Clears the entry for the page at `iova`; returns what it mapped, or nil (changing
    /// nothing) when the entry was not valid or `iova` lies outside the aperture.
    @inline(__always)
    public func unmapGranule(iova: UInt64) -> PageTableLookup? {
        guard let index = index(of: iova), let old = replaceEntry(index, with: 0, ifValid: true) else { return nil }
        return PageTableLookup(physical: PhysicalAddress(GARTEntry.physical(of: old)), pageSize: PageSize.size4K,
                               permissions: .readWrite)
    }

    /// Replaces entry `index` by `desired` when its valid bit is `ifValid`, atomically on its
    /// 64-bit word; returns the entry replaced, nil when it did not qualify.
    @inline(__always)
    private func replaceEntry(_ index: UInt64, with desired: UInt32, ifValid: Bool) -> UInt32? {
        let offset = index &* 4
        let word = entriesBase + Int(truncatingIfNeeded: offset & ~7)
        let shift: UInt64 = offset & 4 == 0 ? 0 : 32
        var current = csupport_load64_acquire(word)
        while true {
            let entry = UInt32(truncatingIfNeeded: current &>> shift)
            guard (entry & GARTEntry.valid != 0) == ifValid else { return nil }
            let replacement = current & ~(0xFFFF_FFFF &<< shift) | UInt64(desired) &<< shift
            let found = csupport_cas64(word, current, replacement)
            if found == current { return entry }
            current = found
        }
    }
}
