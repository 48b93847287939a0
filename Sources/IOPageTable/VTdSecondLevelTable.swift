import Emulation
import Synchronization

/// The Intel VT-d second-level page-table format (VT-d spec 9.8): 3, 4 or 5
/// levels of 512 eight-byte entries; bit 0 read, bit 1 write, bit 7 page
/// size for 2 MiB (level 2) and 1 GiB (level 3) leaves, bits 51:12 the next
/// table or the page frame.
///
/// Map and unmap of different ranges may run concurrently: a new table level
/// is installed with compare-and-swap, so two threads racing to create the
/// same level agree on one table, and leaves are installed only over empty
/// entries.
public final class VTdSecondLevelTable: Sendable {
    public let memory: PhysicalMemory
    public let pageAllocator: PhysicalPageAllocator
    /// The top-level table: what a context entry's SLPTPTR points at.
    public let root: PhysicalAddress
    public let levels: Int
    /// Page sizes this table may use, as a bitmap of sizes (bit n = 2^n bytes).
    public let pageSizes: UInt64
    /// Physical address bits the hardware accepts in an entry.
    public let physicalAddressBits: Int
    private let tablePageCount = Atomic<Int>(1)
    /// The CPU view of all of emulated memory, for the single-page fast path's
    /// raw walk (each entry address is still checked against the memory size).
    nonisolated(unsafe) let memoryBase: UnsafeMutableRawPointer
    /// Level-1 tables by 2 MiB block, for the single-page fast path.
    let leafTables = LeafTableCache(blockShift: 21)

    /// Creates an empty table.
    /// - Throws: ``PageTableError/unsupportedPageSize(_:)`` when `levels` is not 3, 4 or 5
    ///   (reported as the missing top level size), ``PageTableError/memory(_:)`` when no page is free.
    public init(memory: PhysicalMemory, pageAllocator: PhysicalPageAllocator, levels: Int = 4,
                largePages: Bool = true, physicalAddressBits: Int = 46) throws(PageTableError) {
        guard (3...5).contains(levels) else { throw .unsupportedPageSize(1 << UInt64(12 + 9 * levels)) }
        self.memory = memory
        self.pageAllocator = pageAllocator
        self.levels = levels
        self.physicalAddressBits = physicalAddressBits
        pageSizes = largePages ? PageSize.size4K | PageSize.size2M | PageSize.size1G : PageSize.size4K
        do {
            root = try pageAllocator.allocate()
            memoryBase = try memory.pointer(to: PhysicalAddress(0), count: memory.size)
        } catch { throw .memory(error) }
    }

    deinit { leafTables.destroy() }

    public var inputAddressBits: Int { 12 + 9 * levels }
    /// Pages of memory the table occupies, the root included.
    public var tablePages: Int { tablePageCount.load(ordering: .relaxed) }

    @inline(__always)
    static func level(for pageSize: UInt64) -> Int? {
        switch pageSize {
        case PageSize.size4K: 1
        case PageSize.size2M: 2
        case PageSize.size1G: 3
        default: nil
        }
    }

    @inline(__always)
    func entryAddress(_ table: UInt64, _ iova: UInt64, level: Int) -> PhysicalAddress {
        PhysicalAddress(table + ((iova >> UInt64(9 * level)) & 0xFF8))
    }

    /// Encodes a leaf entry: the known-encoding tests pin this.
    public static func leafEntry(physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) -> UInt64 {
        var entry = physical & VTdPTE.addressMask
        // AccessPermissions' raw bits (1 read, 2 write) are the entry's R and W bits; testing
        // them directly spares two global-constant accessor calls on every map.
        if permissions.rawValue & 1 != 0 { entry |= VTdPTE.read }
        if permissions.rawValue & 2 != 0 { entry |= VTdPTE.write }
        if pageSize > PageSize.size4K { entry |= VTdPTE.pageSize }
        return entry
    }

    /// Maps one page of `pageSize` bytes.
    /// - Throws: ``PageTableError/unsupportedPageSize(_:)``, ``PageTableError/misaligned(iova:physical:pageSize:)``,
    ///   ``PageTableError/beyondAddressWidth(iova:bits:)``, ``PageTableError/physicalTooWide(physical:bits:)``,
    ///   ``PageTableError/noPermissions``, ``PageTableError/alreadyMapped(iova:)`` when any part of
    ///   the page is mapped, ``PageTableError/memory(_:)`` when no table page is free.
    public func map(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(PageTableError) {
        guard pageSizes & pageSize != 0, let target = Self.level(for: pageSize) else { throw .unsupportedPageSize(pageSize) }
        guard (iova | physical) & (pageSize - 1) == 0 else { throw .misaligned(iova: iova, physical: physical, pageSize: pageSize) }
        guard iova >> UInt64(inputAddressBits) == 0 else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(physicalAddressBits) == 0 else { throw .physicalTooWide(physical: physical, bits: physicalAddressBits) }
        guard !permissions.isEmpty else { throw .noPermissions }
        do {
            var table = root.value
            for level in stride(from: levels, to: target, by: -1) {
                table = try nextTable(from: table, iova: iova, level: level)
            }
            let slot = entryAddress(table, iova, level: target)
            let leaf = Self.leafEntry(physical: physical, pageSize: pageSize, permissions: permissions)
            var found = try memory.compareExchange64(slot, expected: 0, desired: leaf)
            if found != 0, target > 1, found & VTdPTE.pageSize == 0, try isEmptyTree(found & VTdPTE.addressMask, level: target - 1) {
                // An empty lower-level table left behind by earlier unmaps: replace it by the large page.
                if try memory.compareExchange64(slot, expected: found, desired: leaf) == found {
                    leafTables.forget(first: iova, size: pageSize)
                    try freeTree(found & VTdPTE.addressMask, level: target - 1)
                    found = 0
                }
            }
            guard found == 0 else { throw PageTableError.alreadyMapped(iova: iova) }
        } catch let error as PageTableError {
            throw error
        } catch let error as MemoryError {
            throw .memory(error)
        } catch {
            throw .memory(.invalidRequest("\(error)"))
        }
    }

    /// Descends one level, creating the next table when it does not exist.
    func nextTable(from table: UInt64, iova: UInt64, level: Int) throws -> UInt64 {
        let slot = entryAddress(table, iova, level: level)
        var entry = try memory.load64(slot)
        if entry == 0 {
            let fresh = try pageAllocator.allocate()
            let desired = fresh.value | VTdPTE.read | VTdPTE.write
            entry = try memory.compareExchange64(slot, expected: 0, desired: desired)
            if entry == 0 {
                tablePageCount.add(1, ordering: .relaxed)
                return fresh.value
            }
            try pageAllocator.free(fresh) // another thread installed the level first
        }
        guard entry & VTdPTE.pageSize == 0 else { throw PageTableError.alreadyMapped(iova: iova) }
        return entry & VTdPTE.addressMask
    }

    /// Clears the entry mapping `iova` at the level of `pageSize`, or a larger
    /// page covering it. Returns the bytes unmapped: 0 when nothing was mapped
    /// there, the larger page's size when a larger page covered `iova`.
    public func unmap(iova: UInt64, pageSize: UInt64) -> UInt64 {
        guard let target = Self.level(for: pageSize), iova >> UInt64(inputAddressBits) == 0 else { return 0 }
        var table = root.value
        for level in stride(from: levels, through: 1, by: -1) {
            let slot = entryAddress(table, iova, level: level)
            guard let entry = try? memory.load64(slot), entry & (VTdPTE.read | VTdPTE.write) != 0 else { return 0 }
            let isLeaf = level == 1 || entry & VTdPTE.pageSize != 0
            if isLeaf {
                let size: UInt64 = 1 << UInt64(12 + 9 * (level - 1))
                guard level >= target, (try? memory.compareExchange64(slot, expected: entry, desired: 0)) == entry else { return 0 }
                return size
            }
            if level == target { return 0 } // a table where the caller expected a page: nothing of that size here
            table = entry & VTdPTE.addressMask
        }
        return 0
    }

    /// The translation of `iova`, as the software sees it.
    public func lookup(_ iova: UInt64) -> PageTableLookup? {
        guard iova >> UInt64(inputAddressBits) == 0 else { return nil }
        var table = root.value
        var permissions = AccessPermissions.readWrite
        for level in stride(from: levels, through: 1, by: -1) {
            guard let entry = try? memory.load64(entryAddress(table, iova, level: level)),
                  entry & (VTdPTE.read | VTdPTE.write) != 0 else { return nil }
            permissions.formIntersection(AccessPermissions(rawValue: UInt8(entry & 3)))
            if level == 1 || entry & VTdPTE.pageSize != 0 {
                let size: UInt64 = 1 << UInt64(12 + 9 * (level - 1))
                return PageTableLookup(physical: PhysicalAddress((entry & VTdPTE.addressMask) | (iova & (size - 1))),
                                       pageSize: size, permissions: permissions)
            }
            table = entry & VTdPTE.addressMask
        }
        return nil
    }

    private func isEmptyTree(_ table: UInt64, level: Int) throws -> Bool {
        for index in 0..<512 {
            let entry = try memory.load64(PhysicalAddress(table + UInt64(index) * 8))
            guard entry != 0 else { continue }
            if level == 1 || entry & VTdPTE.pageSize != 0 { return false }
            guard try isEmptyTree(entry & VTdPTE.addressMask, level: level - 1) else { return false }
        }
        return true
    }

    private func freeTree(_ table: UInt64, level: Int) throws {
        if level > 1 {
            for index in 0..<512 {
                let entry = try memory.load64(PhysicalAddress(table + UInt64(index) * 8))
                if entry != 0, entry & VTdPTE.pageSize == 0 { try freeTree(entry & VTdPTE.addressMask, level: level - 1) }
            }
        }
        try pageAllocator.free(PhysicalAddress(table))
        tablePageCount.subtract(1, ordering: .relaxed)
    }

    /// Frees every table page, the root included. The table must not be used afterwards.
    public func destroy() {
        leafTables.forgetAll()
        try? freeTree(root.value, level: levels)
    }
}
