import Emulation
import Synchronization

/// The AMD-Vi v1 host page-table format: 1 to 6 levels of 512 eight-byte
/// entries (encoding in ``AMDViPageTableEncoding``). Pages of every power of
/// two from 4 KiB up: natural sizes (4 KiB, 2 MiB, 1 GiB, …) as next-level-0
/// leaves, the sizes between them as next-level-7 leaves repeated over the
/// entries they span.
///
/// The tables this type builds use every level; walks (``lookup(_:)``,
/// ``unmap(iova:pageSize:)``) also follow tables that skip levels, as the
/// hardware does. New levels are installed with compare-and-swap, so map and
/// unmap of different ranges may run concurrently.
public final class AMDViPageTable: Sendable {
    public let memory: PhysicalMemory
    public let pageAllocator: PhysicalPageAllocator
    /// The top-level table: what the device table entry's root pointer holds.
    public let root: PhysicalAddress
    /// The number of levels: the device table entry's Mode field.
    public let levels: Int
    /// Page sizes this table may use, as a bitmap of sizes (bit n = 2^n bytes).
    public let pageSizes: UInt64
    /// Physical address bits the hardware accepts in an entry.
    public let physicalAddressBits: Int
    /// The allocation-free operations, usable without reference counting.
    public let view: AMDViPageTableView
    private let tablePageCount = Atomic<Int>(1)

    /// Creates an empty table.
    /// - Throws: ``PageTableError/memory(_:)`` with ``MemoryError/invalidRequest(_:)`` when
    ///   `levels` is not 1...6 or `pageSizes` names a size the format cannot map at that depth,
    ///   ``PageTableError/memory(_:)`` when no page is free.
    public init(memory: PhysicalMemory, pageAllocator: PhysicalPageAllocator, levels: Int = 3, pageSizes: UInt64? = nil,
                physicalAddressBits: Int = 52) throws(PageTableError) {
        guard (1...6).contains(levels) else {
            throw .memory(.invalidRequest("an AMD-Vi page table has 1 to 6 levels, not \(levels)"))
        }
        let possible = AMDViPageTableEncoding.pageSizes(levels: levels)
        let chosen = pageSizes ?? possible
        guard chosen & ~possible == 0, chosen & PageSize.size4K != 0 else {
            throw .memory(.invalidRequest("page sizes \(hex(chosen)) are not all mappable by a \(levels)-level table"))
        }
        self.memory = memory
        self.pageAllocator = pageAllocator
        self.levels = levels
        self.pageSizes = chosen
        self.physicalAddressBits = min(52, physicalAddressBits)
        do {
            root = try pageAllocator.allocate()
            view = AMDViPageTableView(base: try memory.pointer(to: PhysicalAddress(0), count: memory.size),
                                      memorySize: memory.size, root: root.value, levels: levels, pageSizes: chosen,
                                      physicalAddressBits: self.physicalAddressBits)
        } catch { throw .memory(error) }
    }

    /// Bits of input address the table translates (64 for six levels).
    public var inputAddressBits: Int { min(64, 12 + 9 * levels) }
    /// Pages of memory the table occupies, the root included.
    public var tablePages: Int { tablePageCount.load(ordering: .relaxed) }

    @inline(__always)
    func entryAddress(_ table: UInt64, _ iova: UInt64, level: Int) -> PhysicalAddress {
        PhysicalAddress(table + ((iova >> UInt64(AMDViPageTableEncoding.naturalShift(level: level))) & 0x1FF) * 8)
    }

    /// Checks what ``map(iova:physical:pageSize:permissions:)`` checks before touching memory.
    /// - Throws: as ``AMDViPageTableView/validate(iova:physical:pageSize:permissions:)``.
    public func validate(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(PageTableError) {
        try view.validate(iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
    }

    /// Maps one page of `pageSize` bytes.
    /// - Throws: the errors of ``validate(iova:physical:pageSize:permissions:)``,
    ///   ``PageTableError/alreadyMapped(iova:)`` when any part of the page is mapped,
    ///   ``PageTableError/memory(_:)`` when no table page is free. A refused map changes no entry.
    public func map(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(PageTableError) {
        try validate(iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
        let target = AMDViPageTableEncoding.placement(of: pageSize).level
        guard let table = try descend(iova, to: target, create: true) else { throw .alreadyMapped(iova: iova) }
        if target == 1 {
            try view.map(inLeafTable: PhysicalAddress(table), iova: iova, physical: physical, pageSize: pageSize,
                         permissions: permissions)
            return
        }
        try install(in: table, level: target, iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
    }

    /// The level-1 table whose entries map `iova`, creating the levels above
    /// it when `create` is set; nil when a larger page covers `iova` or
    /// (without `create`) no such table exists yet.
    /// - Throws: ``PageTableError/beyondAddressWidth(iova:bits:)``, ``PageTableError/memory(_:)``.
    public func leafTable(containing iova: UInt64, create: Bool) throws(PageTableError) -> PhysicalAddress? {
        guard inputAddressBits == 64 || iova >> UInt64(inputAddressBits) == 0 else {
            throw .beyondAddressWidth(iova: iova, bits: inputAddressBits)
        }
        return try descend(iova, to: 1, create: create).map(PhysicalAddress.init)
    }

    /// Installs a page of at most 1 MiB into `leafTable`, the level-1 table
    /// covering `iova` (from ``leafTable(containing:create:)``): the walk-free
    /// path of a driver that remembers its leaf tables.
    /// - Throws: as ``AMDViPageTableView/map(inLeafTable:iova:physical:pageSize:permissions:)``; a refused map changes no entry.
    public func map(inLeafTable leafTable: PhysicalAddress, iova: UInt64, physical: UInt64, pageSize: UInt64,
                    permissions: AccessPermissions) throws(PageTableError) {
        try view.map(inLeafTable: leafTable, iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
    }

    /// Descends from the root to the table of `target` level covering `iova`.
    private func descend(_ iova: UInt64, to target: Int, create: Bool) throws(PageTableError) -> UInt64? {
        var table = root.value
        do {
            for level in stride(from: levels, to: target, by: -1) {
                let slot = entryAddress(table, iova, level: level)
                var entry = try memory.load64(slot)
                if entry & AMDViPTE.present == 0 {
                    guard create else { return nil }
                    let fresh = try pageAllocator.allocate()
                    let desired = AMDViPageTableEncoding.directoryEntry(table: fresh.value, nextLevel: level - 1)
                    entry = try memory.compareExchange64(slot, expected: 0, desired: desired)
                    if entry == 0 {
                        tablePageCount.add(1, ordering: .relaxed)
                        entry = desired
                    } else {
                        try pageAllocator.free(fresh) // another thread installed the level first
                    }
                }
                // A page covers the address, or a table skips levels (which only walks follow).
                guard AMDViPageTableEncoding.isDirectory(entry, level: level),
                      AMDViPageTableEncoding.nextLevel(entry) == level - 1 else { return nil }
                table = entry & AMDViPTE.addressMask
            }
        } catch { throw .memory(error) }
        return table
    }

    /// Writes a page of 2 MiB or more (one entry, or the run a next-level-7
    /// page spans) over empty slots; an empty lower table left behind by earlier unmaps
    /// gives way to the page. Anything else in the way undoes the entries
    /// written so far.
    private func install(in table: UInt64, level: Int, iova: UInt64, physical: UInt64, pageSize: UInt64,
                         permissions: AccessPermissions) throws(PageTableError) {
        let count = AMDViPageTableEncoding.placement(of: pageSize).count
        let leaf = AMDViPageTableEncoding.leafEntry(physical: physical, pageSize: pageSize, permissions: permissions)
        let shift = UInt64(AMDViPageTableEncoding.naturalShift(level: level))
        let first = table + (((iova >> shift) & 0x1FF) & ~UInt64(count - 1)) * 8
        do {
            for index in 0..<count {
                let slot = PhysicalAddress(first + UInt64(index) * 8)
                var found = try memory.compareExchange64(slot, expected: 0, desired: leaf)
                if found != 0, AMDViPageTableEncoding.isDirectory(found, level: level),
                   try isEmptyTree(found & AMDViPTE.addressMask, level: AMDViPageTableEncoding.nextLevel(found)),
                   try memory.compareExchange64(slot, expected: found, desired: leaf) == found {
                    try freeTree(found & AMDViPTE.addressMask, level: AMDViPageTableEncoding.nextLevel(found))
                    found = 0
                }
                guard found == 0 else {
                    for undo in 0..<index { _ = try memory.compareExchange64(PhysicalAddress(first + UInt64(undo) * 8),
                                                                             expected: leaf, desired: 0) }
                    throw PageTableError.alreadyMapped(iova: iova)
                }
            }
        } catch let error as PageTableError {
            throw error
        } catch let error as MemoryError {
            throw .memory(error)
        } catch {
            throw .memory(.invalidRequest("\(error)"))
        }
    }

    func isEmptyTree(_ table: UInt64, level: Int) throws -> Bool {
        for index in 0..<512 {
            let entry = try memory.load64(PhysicalAddress(table + UInt64(index) * 8))
            guard entry != 0 else { continue }
            guard AMDViPageTableEncoding.isDirectory(entry, level: level),
                  try isEmptyTree(entry & AMDViPTE.addressMask, level: AMDViPageTableEncoding.nextLevel(entry)) else { return false }
        }
        return true
    }

    func freeTree(_ table: UInt64, level: Int) throws {
        for index in 0..<512 where level > 1 {
            let entry = try memory.load64(PhysicalAddress(table + UInt64(index) * 8))
            if AMDViPageTableEncoding.isDirectory(entry, level: level) {
                try freeTree(entry & AMDViPTE.addressMask, level: AMDViPageTableEncoding.nextLevel(entry))
            }
        }
        try pageAllocator.free(PhysicalAddress(table))
        tablePageCount.subtract(1, ordering: .relaxed)
    }

    /// Frees every table page, the root included. The table must not be used afterwards.
    public func destroy() {
        try? freeTree(root.value, level: levels)
    }
}
