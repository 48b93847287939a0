import Emulation
import Synchronization

/// The AArch64 (VMSAv8-64) stage-1 translation table format an SMMUv3 CD
/// points at, as Linux's io-pgtable-arm builds it for ARM_64_LPAE_S1: tables
/// of one granule (4, 16 or 64 KiB) of 8-byte descriptors; bits 1:0 = 0b11
/// for a table (levels 0-2) or page (level 3), 0b01 for a block; AP[2] for
/// read-only; AP[1] so that unprivileged device accesses are allowed; AF set
/// so no access-flag fault occurs; nG so the TLB tags entries by ASID.
/// Write-only does not exist in this format: a write-only mapping is readable too.
///
/// Map and unmap of different ranges may run concurrently: a new table level
/// is installed with compare-and-swap and leaves only over empty entries.
public final class ARMLPAETable: Sendable {
    public let memory: PhysicalMemory
    public let pageAllocator: PhysicalPageAllocator
    public let granule: ARMTranslationGranule
    /// The level-`startLevel` table: what CD.TTB0 points at.
    public let root: PhysicalAddress
    /// Input address bits (64 - CD.T0SZ).
    public let inputAddressBits: Int
    /// Output address bits; wider physical addresses are refused.
    public let physicalAddressBits: Int
    /// The level the hardware starts walking at for this granule and input size.
    public let startLevel: Int
    /// Page sizes this table may use, as a bitmap of sizes (bit n = 2^n bytes).
    public let pageSizes: UInt64
    private let tablePageCount = Atomic<Int>(1)
    /// The CPU view of all of emulated memory, for the single-page fast path's
    /// raw walk (each entry address is still checked against the memory size).
    nonisolated(unsafe) let memoryBase: UnsafeMutableRawPointer
    /// Level-3 tables by the block one of them covers, for the single-page fast path.
    let leafTables: LeafTableCache
    /// The granule's shift and the level-3 index mask, stored: the fast path would otherwise
    /// call into the granule enum for them on every page.
    let granuleShift: UInt64
    let lastLevelIndexMask: UInt64
    /// The output-address bits of a descriptor, granule-aligned.
    let outputMask: UInt64

    /// Creates an empty table.
    /// - Throws: ``PageTableError/unsupportedAddressWidth(bits:)`` unless `inputAddressBits` is 25...48
    ///   (the T0SZ range 16...39) and `physicalAddressBits` is 32...48, ``PageTableError/memory(_:)`` when no
    ///   memory is free for the root table.
    public init(memory: PhysicalMemory, pageAllocator: PhysicalPageAllocator, granule: ARMTranslationGranule = .size4K,
                inputAddressBits: Int = 48, physicalAddressBits: Int = 48) throws(PageTableError) {
        guard (25...48).contains(inputAddressBits) else { throw .unsupportedAddressWidth(bits: inputAddressBits) }
        guard (32...48).contains(physicalAddressBits) else { throw .unsupportedAddressWidth(bits: physicalAddressBits) }
        self.memory = memory
        self.pageAllocator = pageAllocator
        self.granule = granule
        self.inputAddressBits = inputAddressBits
        self.physicalAddressBits = physicalAddressBits
        startLevel = granule.startLevel(inputBits: inputAddressBits)
        pageSizes = granule.pageSizes.filter { $0 >> UInt64(inputAddressBits) == 0 }.reduce(0, |)
        leafTables = LeafTableCache(blockShift: UInt64(granule.shift(atLevel: 2)))
        granuleShift = UInt64(granule.shift)
        lastLevelIndexMask = UInt64(granule.entriesPerTable - 1)
        outputMask = ARMLPAEDescriptor.outputAddressMask & ~(granule.rawValue - 1)
        do {
            memoryBase = try memory.pointer(to: PhysicalAddress(0), count: memory.size)
            root = try Self.allocateTable(pageAllocator, granule)
        } catch {
            leafTables.destroy()
            throw .memory(error)
        }
    }

    deinit { leafTables.destroy() }

    /// Pages of 4 KiB the table occupies, the root included.
    public var tablePages: Int { tablePageCount.load(ordering: .relaxed) * Int(granule.rawValue >> 12) }

    private static func allocateTable(_ allocator: PhysicalPageAllocator, _ granule: ARMTranslationGranule) throws(MemoryError) -> PhysicalAddress {
        try allocator.allocate(pages: granule.rawValue >> 12, alignment: granule.rawValue)
    }

    @inline(__always)
    func entryAddress(_ table: UInt64, _ iova: UInt64, level: Int) -> PhysicalAddress {
        let bits = granule.indexBits(atLevel: level, inputBits: inputAddressBits)
        return PhysicalAddress(table + ((iova >> UInt64(granule.shift(atLevel: level))) & ((1 << UInt64(bits)) - 1)) * 8)
    }

    /// The next-level table or output address a descriptor holds.
    @inline(__always)
    func outputAddress(_ entry: UInt64) -> UInt64 { entry & outputMask }

    @inline(__always)
    func isLeaf(_ entry: UInt64, level: Int) -> Bool {
        level == 3 || entry & ARMLPAEDescriptor.tableOrPage == 0
    }

    /// Encodes a leaf: a page at level 3 (`isPage`) or a block above it. The known-encoding tests pin this.
    public static func leafDescriptor(physical: UInt64, isPage: Bool, permissions: AccessPermissions) -> UInt64 {
        let page = pageDescriptor(physical: physical, writable: permissions.contains(.write))
        return isPage ? page : page & ~ARMLPAEDescriptor.tableOrPage
    }

    /// Encodes a table descriptor pointing at the next level.
    public static func tableDescriptor(next: UInt64) -> UInt64 {
        next & ARMLPAEDescriptor.outputAddressMask | ARMLPAEDescriptor.valid | ARMLPAEDescriptor.tableOrPage
    }

    /// Maps one page or block of `pageSize` bytes.
    /// - Throws: ``PageTableError/unsupportedPageSize(_:)``, ``PageTableError/misaligned(iova:physical:pageSize:)``,
    ///   ``PageTableError/beyondAddressWidth(iova:bits:)``, ``PageTableError/physicalTooWide(physical:bits:)``,
    ///   ``PageTableError/noPermissions``, ``PageTableError/alreadyMapped(iova:)`` when any part of
    ///   the range is mapped, ``PageTableError/memory(_:)`` when no table memory is free.
    public func map(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(PageTableError) {
        guard pageSizes & pageSize != 0, let target = granule.level(forPageSize: pageSize) else {
            throw .unsupportedPageSize(pageSize)
        }
        guard (iova | physical) & (pageSize - 1) == 0 else { throw .misaligned(iova: iova, physical: physical, pageSize: pageSize) }
        guard iova >> UInt64(inputAddressBits) == 0 else { throw .beyondAddressWidth(iova: iova, bits: inputAddressBits) }
        guard physical >> UInt64(physicalAddressBits) == 0 else { throw .physicalTooWide(physical: physical, bits: physicalAddressBits) }
        guard !permissions.isEmpty else { throw .noPermissions }
        do {
            var table = root.value
            for level in startLevel..<target { table = try nextTable(from: table, iova: iova, level: level) }
            let slot = entryAddress(table, iova, level: target)
            let leaf = Self.leafDescriptor(physical: physical, isPage: target == 3, permissions: permissions)
            var found = try memory.compareExchange64(slot, expected: 0, desired: leaf)
            if found != 0, target < 3, !isLeaf(found, level: target), try isEmptyTree(outputAddress(found), level: target + 1) {
                // An empty lower-level table left behind by earlier unmaps: replace it by the block.
                if try memory.compareExchange64(slot, expected: found, desired: leaf) == found {
                    // The single-page path must not reach the freed tables through what it remembers.
                    leafTables.forget(first: iova, size: pageSize)
                    try freeTree(outputAddress(found), level: target + 1)
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
            let fresh = try Self.allocateTable(pageAllocator, granule)
            entry = try memory.compareExchange64(slot, expected: 0, desired: Self.tableDescriptor(next: fresh.value))
            if entry == 0 {
                tablePageCount.add(1, ordering: .relaxed)
                return fresh.value
            }
            try pageAllocator.free(fresh, pages: granule.rawValue >> 12) // another thread installed the level first
        }
        guard !isLeaf(entry, level: level) else { throw PageTableError.alreadyMapped(iova: iova) }
        return outputAddress(entry)
    }

    /// Clears the leaf mapping `iova` at the level of `pageSize`, or a larger
    /// block covering it. Returns the bytes unmapped: 0 when nothing was mapped
    /// there, the block's size when a larger block covered `iova`.
    public func unmap(iova: UInt64, pageSize: UInt64) -> UInt64 {
        guard let target = granule.level(forPageSize: pageSize), iova >> UInt64(inputAddressBits) == 0 else { return 0 }
        var table = root.value
        for level in startLevel...3 {
            let slot = entryAddress(table, iova, level: level)
            guard let entry = try? memory.load64(slot), entry & ARMLPAEDescriptor.valid != 0 else { return 0 }
            if isLeaf(entry, level: level) {
                guard level <= target, (try? memory.compareExchange64(slot, expected: entry, desired: 0)) == entry else { return 0 }
                return 1 << UInt64(granule.shift(atLevel: level))
            }
            if level == target { return 0 } // a table where the caller expected a block: nothing of that size here
            table = outputAddress(entry)
        }
        return 0
    }

    /// The translation of `iova`, as an unprivileged device access sees it.
    public func lookup(_ iova: UInt64) -> PageTableLookup? {
        guard iova >> UInt64(inputAddressBits) == 0 else { return nil }
        var table = root.value
        for level in startLevel...3 {
            guard let entry = try? memory.load64(entryAddress(table, iova, level: level)),
                  entry & ARMLPAEDescriptor.valid != 0 else { return nil }
            if isLeaf(entry, level: level) {
                let size: UInt64 = 1 << UInt64(granule.shift(atLevel: level))
                var permissions = AccessPermissions.readWrite
                if entry & ARMLPAEDescriptor.readOnly != 0 { permissions.remove(.write) }
                if entry & ARMLPAEDescriptor.unprivileged == 0 { permissions = [] }
                return PageTableLookup(physical: PhysicalAddress((outputAddress(entry) & ~(size - 1)) | (iova & (size - 1))),
                                       pageSize: size, permissions: permissions)
            }
            table = outputAddress(entry)
        }
        return nil
    }

    private func isEmptyTree(_ table: UInt64, level: Int) throws -> Bool {
        for index in 0..<UInt64(granule.entriesPerTable) {
            let entry = try memory.load64(PhysicalAddress(table + index * 8))
            guard entry != 0 else { continue }
            if isLeaf(entry, level: level) { return false }
            guard try isEmptyTree(outputAddress(entry), level: level + 1) else { return false }
        }
        return true
    }

    private func freeTree(_ table: UInt64, level: Int) throws {
        if level < 3 {
            let count = level == startLevel ? 1 << granule.indexBits(atLevel: level, inputBits: inputAddressBits)
                : granule.entriesPerTable
            for index in 0..<UInt64(count) {
                let entry = try memory.load64(PhysicalAddress(table + index * 8))
                if entry & ARMLPAEDescriptor.valid != 0, !isLeaf(entry, level: level) {
                    try freeTree(outputAddress(entry), level: level + 1)
                }
            }
        }
        try pageAllocator.free(PhysicalAddress(table), pages: granule.rawValue >> 12)
        tablePageCount.subtract(1, ordering: .relaxed)
    }

    /// Frees every table, the root included. The table must not be used afterwards.
    public func destroy() {
        leafTables.forgetAll()
        try? freeTree(root.value, level: startLevel)
    }
}
