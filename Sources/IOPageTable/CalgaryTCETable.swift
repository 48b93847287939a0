import Emulation
import Synchronization

/// One IBM Calgary TCE table: a flat, physically contiguous array of 64-bit
/// translation control entries, entry n translating bus page n of the PHB's
/// DMA window [0, entries × 4 KiB) (see ``CalgaryTCE`` for the bits). Sizes
/// go from 8K entries (a 64 KiB table, 32 MiB window) to 1M entries (8 MiB,
/// 4 GiB), each step doubling, as the TAR's size code encodes them.
///
/// Entries are installed only over empty ones and cleared with
/// compare-and-swap, so concurrent map and unmap of different pages are safe.
public final class CalgaryTCETable: Sendable {
    public let memory: PhysicalMemory
    public let pageAllocator: PhysicalPageAllocator
    /// The TAR size code (0 = 8K entries ... 7 = 1M entries).
    public let sizeCode: UInt64
    public let entries: UInt64
    public let table: PhysicalAddress
    private let destroyed = Atomic<Bool>(false)
    /// The CPU view of the table, for the single-page fast path.
    nonisolated(unsafe) let entriesBase: UnsafeMutableRawPointer

    /// Allocates a zeroed table (no valid TCE) for a window of `windowBytes`,
    /// aligned to its own size as the TAR's base field requires.
    /// - Throws: ``PageTableError/memory(_:)`` with ``MemoryError/invalidRequest(_:)`` unless the window is a
    ///   power of two from 32 MiB to 4 GiB; ``PageTableError/memory(_:)`` when no aligned run of pages is free.
    public init(memory: PhysicalMemory, pageAllocator: PhysicalPageAllocator, windowBytes: UInt64) throws(PageTableError) {
        guard let code = CalgaryTableAddress.sizeCode(windowBytes: windowBytes) else {
            throw .memory(.invalidRequest("Calgary DMA window \(hex(windowBytes)) must be a power of two from 32 MiB to 4 GiB"))
        }
        self.memory = memory
        self.pageAllocator = pageAllocator
        sizeCode = code
        entries = CalgaryTableAddress.entries(sizeCode: code)
        let bytes = entries * 8
        do {
            table = try pageAllocator.allocate(pages: bytes >> 12, alignment: bytes)
            entriesBase = try memory.pointer(to: table, count: bytes)
        } catch { throw .memory(error) }
    }

    public var windowBytes: UInt64 { entries << 12 }
    public var tablePages: UInt64 { (entries * 8) >> 12 }
    /// The value for the PHB's TAR: table base and size code.
    public var tableAddressRegister: UInt64 { table.value | sizeCode }
    public var inputAddressBits: Int { windowBytes.trailingZeroBitCount }

    /// The known encoding of a TCE; tests pin it.
    public static func entry(physical: UInt64, permissions: AccessPermissions) -> UInt64 {
        CalgaryTCE.encode(physical: physical, permissions: permissions)
    }

    /// Maps one 4 KiB page with `permissions`.
    /// - Throws: ``PageTableError/unsupportedPageSize(_:)`` for anything but 4 KiB,
    ///   ``PageTableError/misaligned(iova:physical:pageSize:)``, ``PageTableError/beyondAddressWidth(iova:bits:)``
    ///   beyond the window, ``PageTableError/physicalTooWide(physical:bits:)`` beyond 48 bits,
    ///   ``PageTableError/noPermissions``, ``PageTableError/alreadyMapped(iova:)``, ``PageTableError/memory(_:)``.
    public func map(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(PageTableError) {
        guard pageSize == PageSize.size4K else { throw .unsupportedPageSize(pageSize) }
        guard (iova | physical) & 0xFFF == 0 else { throw .misaligned(iova: iova, physical: physical, pageSize: pageSize) }
        guard iova < windowBytes else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(CalgaryTCE.physicalAddressBits) == 0 else {
            throw .physicalTooWide(physical: physical, bits: CalgaryTCE.physicalAddressBits)
        }
        guard !permissions.isEmpty else { throw .noPermissions }
        let found: UInt64
        do {
            found = try memory.compareExchange64(slot(iova), expected: 0,
                                                 desired: CalgaryTCE.encode(physical: physical, permissions: permissions))
        } catch { throw .memory(error) }
        guard found == 0 else { throw .alreadyMapped(iova: iova) }
    }

    /// Clears the TCE for the page at `iova`; returns 4096 when it was valid, else 0.
    public func unmap(iova: UInt64, pageSize: UInt64) -> UInt64 {
        guard pageSize == PageSize.size4K, iova < windowBytes,
              let entry = try? memory.load64(slot(iova)), entry & (CalgaryTCE.read | CalgaryTCE.write) != 0,
              (try? memory.compareExchange64(slot(iova), expected: entry, desired: 0)) == entry else { return 0 }
        return PageSize.size4K
    }

    /// What the table says about `iova`; nil beyond the window or for an invalid TCE.
    public func lookup(_ iova: UInt64) -> PageTableLookup? {
        guard iova < windowBytes, let entry = try? memory.load64(slot(iova)) else { return nil }
        let permissions = CalgaryTCE.permissions(of: entry)
        guard !permissions.isEmpty else { return nil }
        return PageTableLookup(physical: PhysicalAddress((entry & CalgaryTCE.pageMask) | (iova & 0xFFF)),
                               pageSize: PageSize.size4K, permissions: permissions)
    }

    /// Frees the table. It must not be used afterwards; a second call does nothing.
    public func destroy() {
        guard !destroyed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try? pageAllocator.free(table, pages: tablePages)
    }

    @inline(__always)
    private func slot(_ iova: UInt64) -> PhysicalAddress { table + (iova >> 12) * 8 }
}
