import Emulation
import Synchronization

/// The AMD GART's GATT: one flat, physically contiguous table of 32-bit
/// entries, entry n translating the 4 KiB page at aperture base + n × 4 KiB
/// (see ``GARTEntry`` for the bits). There are no levels, no large pages and
/// no permission bits: a valid entry lets a device read and write the page.
///
/// Entries are installed and cleared with compare-and-swap on the aligned
/// 64-bit word that holds them, so concurrent map and unmap of different
/// pages never lose each other's update, and a map never overwrites a
/// valid entry.
public final class GARTTable: Sendable {
    public let memory: PhysicalMemory
    public let pageAllocator: PhysicalPageAllocator
    /// First bus address of the aperture.
    public let apertureBase: UInt64
    public let apertureSize: UInt64
    /// The GATT itself: what the GART table base register points at.
    public let table: PhysicalAddress
    public let entries: UInt64
    private let destroyed = Atomic<Bool>(false)
    /// The CPU view of the GATT, for the single-page fast path.
    nonisolated(unsafe) let entriesBase: UnsafeMutableRawPointer

    /// Allocates a zeroed GATT (every entry invalid) for an aperture.
    /// - Throws: ``PageTableError/memory(_:)`` with ``MemoryError/invalidRequest(_:)`` when the size is not a
    ///   power of two from 32 MiB to 2 GiB, ``PageTableError/misaligned(iova:physical:pageSize:)`` when the
    ///   base is not aligned to the size or lies beyond the 40-bit bus address the base register holds, and
    ///   ``PageTableError/memory(_:)`` when no contiguous run of pages is free.
    public init(memory: PhysicalMemory, pageAllocator: PhysicalPageAllocator, apertureBase: UInt64,
                apertureSize: UInt64) throws(PageTableError) {
        guard GARTApertureSize.encoding(of: apertureSize) != nil else {
            throw .memory(.invalidRequest("GART aperture size \(hex(apertureSize)) must be a power of two from 32 MiB to 2 GiB"))
        }
        guard apertureBase & (apertureSize - 1) == 0, apertureBase >> 40 == 0 else {
            throw .misaligned(iova: apertureBase, physical: 0, pageSize: apertureSize)
        }
        self.memory = memory
        self.pageAllocator = pageAllocator
        self.apertureBase = apertureBase
        self.apertureSize = apertureSize
        entries = apertureSize >> 12
        do {
            table = try pageAllocator.allocate(pages: apertureSize >> 22)
            entriesBase = try memory.pointer(to: table, count: apertureSize >> 10)
        } catch { throw .memory(error) }
    }

    /// Pages of memory the GATT occupies: four bytes per aperture page.
    public var tablePages: UInt64 { (apertureSize >> 12) * 4 / PageSize.size4K }
    /// The value for the GART table base register (F3x98): table bits 39:12 in bits 31:4.
    public var tableBaseRegister: UInt32 { UInt32(truncatingIfNeeded: (table.value >> 12) << 4) }
    /// Bits of the offset into the aperture: the table's input width.
    public var inputAddressBits: Int { apertureSize.trailingZeroBitCount }

    /// The known encoding of an entry mapping `physical`; tests pin it.
    public static func entry(physical: UInt64) -> UInt32 { GARTEntry.encode(physical: physical) }

    /// Maps one 4 KiB page. `permissions` must not be empty but cannot be
    /// expressed: the GART grants reads and writes alike.
    /// - Throws: ``PageTableError/unsupportedPageSize(_:)`` for anything but 4 KiB,
    ///   ``PageTableError/misaligned(iova:physical:pageSize:)``, ``PageTableError/beyondAddressWidth(iova:bits:)``
    ///   when `iova` is outside the aperture (the table is indexed by the offset into it),
    ///   ``PageTableError/physicalTooWide(physical:bits:)`` beyond the GART's 40-bit reach,
    ///   ``PageTableError/noPermissions``, ``PageTableError/alreadyMapped(iova:)``, ``PageTableError/memory(_:)``.
    public func map(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(PageTableError) {
        guard pageSize == PageSize.size4K else { throw .unsupportedPageSize(pageSize) }
        guard (iova | physical) & 0xFFF == 0 else { throw .misaligned(iova: iova, physical: physical, pageSize: pageSize) }
        guard let index = index(of: iova) else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(GARTEntry.physicalAddressBits) == 0 else {
            throw .physicalTooWide(physical: physical, bits: GARTEntry.physicalAddressBits)
        }
        guard !permissions.isEmpty else { throw .noPermissions }
        let installed: Bool
        do {
            installed = try exchange(index, desired: GARTEntry.encode(physical: physical)) { $0 & GARTEntry.valid == 0 }
        } catch { throw .memory(error) }
        guard installed else { throw .alreadyMapped(iova: iova) }
    }

    /// Clears the entry for the page at `iova`; returns 4096 when it was valid, else 0.
    public func unmap(iova: UInt64, pageSize: UInt64) -> UInt64 {
        guard pageSize == PageSize.size4K, let index = index(of: iova) else { return 0 }
        let cleared = (try? exchange(index, desired: 0) { $0 & GARTEntry.valid != 0 }) ?? false
        return cleared ? PageSize.size4K : 0
    }

    /// What the GATT says about `iova`; nil outside the aperture or for an invalid entry.
    public func lookup(_ iova: UInt64) -> PageTableLookup? {
        guard let index = index(of: iova), let entry = try? read(index), entry & GARTEntry.valid != 0 else { return nil }
        return PageTableLookup(physical: PhysicalAddress(GARTEntry.physical(of: entry) | (iova & 0xFFF)),
                               pageSize: PageSize.size4K, permissions: .readWrite)
    }

    /// The raw entry at `index`, as the hardware reads it.
    /// - Throws: ``MemoryError`` when the table is unreadable.
    public func read(_ index: UInt64) throws(MemoryError) -> UInt32 {
        let address = table.value + index * 4
        let word = try memory.load64(PhysicalAddress(address & ~7))
        return UInt32(truncatingIfNeeded: address & 4 == 0 ? word : word >> 32)
    }

    /// Frees the GATT. The table must not be used afterwards; a second call does nothing.
    public func destroy() {
        guard !destroyed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try? pageAllocator.free(table, pages: tablePages)
    }

    @inline(__always)
    func index(of iova: UInt64) -> UInt64? {
        guard iova >= apertureBase, iova - apertureBase < apertureSize else { return nil }
        return (iova - apertureBase) >> 12
    }

    /// Replaces the 32-bit entry at `index` by `desired` if `accepts` the
    /// current one, atomically on its 64-bit word; returns whether it did.
    private func exchange(_ index: UInt64, desired: UInt32, accepts: (UInt32) -> Bool) throws(MemoryError) -> Bool {
        let address = table.value + index * 4
        let word = PhysicalAddress(address & ~7)
        let shift: UInt64 = address & 4 == 0 ? 0 : 32
        var current = try memory.load64(word)
        while true {
            guard accepts(UInt32(truncatingIfNeeded: current >> shift)) else { return false }
            let replacement = current & ~(0xFFFF_FFFF << shift) | UInt64(desired) << shift
            let found = try memory.compareExchange64(word, expected: current, desired: replacement)
            if found == current { return true }
            current = found
        }
    }
}
