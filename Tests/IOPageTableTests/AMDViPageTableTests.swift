import Emulation
import IOPageTable
import Testing

/// The AMD-Vi v1 format against the specification's encodings.
@Suite struct AMDViPageTableTests {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator

    init() throws {
        memory = try PhysicalMemory(size: 1 << 32)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0x3FFF_FFFF)])
    }

    /// The entry at `level` (the root is level `table.levels`) that the hardware would read for `iova`.
    func entry(_ table: AMDViPageTable, _ iova: UInt64, level: Int) throws -> UInt64 {
        var address = table.root.value
        for current in stride(from: table.levels, to: level, by: -1) {
            let slot = try memory.load64(PhysicalAddress(address + ((iova >> UInt64(12 + 9 * (current - 1))) & 0x1FF) * 8))
            address = slot & 0x000F_FFFF_FFFF_F000
        }
        return try memory.load64(PhysicalAddress(address + ((iova >> UInt64(12 + 9 * (level - 1))) & 0x1FF) * 8))
    }

    @Test func leafAndDirectoryEncodingsMatchTheSpecification() {
        typealias E = AMDViPageTableEncoding
        // PR | address | FC (60) | IR (61) | IW (62), next level 0.
        #expect(E.leafEntry(physical: 0x1234_5000, pageSize: 0x1000, permissions: .readWrite) == 0x7000_0000_1234_5001)
        #expect(E.leafEntry(physical: 0x1234_5000, pageSize: 0x1000, permissions: .read) == 0x3000_0000_1234_5001)
        #expect(E.leafEntry(physical: 0x1234_5000, pageSize: 0x1000, permissions: .write) == 0x5000_0000_1234_5001)
        // Natural large pages keep next level 0.
        #expect(E.leafEntry(physical: 0x4000_0000, pageSize: 1 << 21, permissions: .readWrite) == 0x7000_0000_4000_0001)
        #expect(E.leafEntry(physical: 0x4000_0000, pageSize: 1 << 30, permissions: .readWrite) == 0x7000_0000_4000_0001)
        // Next level 7: 8 KiB has bit 12 clear; 16 KiB bits 13:12 = 01b; 64 KiB bits 15:12 = 0111b;
        // 4 MiB bits 21:12 = 01_1111_1111b; 2 GiB bits 30:12 = 0 followed by 18 ones.
        #expect(E.leafEntry(physical: 0x4000_0000, pageSize: 1 << 13, permissions: .readWrite) == 0x7000_0000_4000_0E01)
        #expect(E.leafEntry(physical: 0x4000_0000, pageSize: 1 << 14, permissions: .readWrite) == 0x7000_0000_4000_1E01)
        #expect(E.leafEntry(physical: 0x4000_0000, pageSize: 1 << 16, permissions: .readWrite) == 0x7000_0000_4000_7E01)
        #expect(E.leafEntry(physical: 0x4000_0000, pageSize: 1 << 22, permissions: .readWrite) == 0x7000_0000_401F_FE01)
        #expect(E.leafEntry(physical: 0x8000_0000, pageSize: 1 << 31, permissions: .readWrite) == 0x7000_0000_BFFF_FE01)
        // Directory: PR | IR | IW | next level in 11:9 | table.
        #expect(E.directoryEntry(table: 0x5000, nextLevel: 2) == 0x6000_0000_0000_5401)
        #expect(E.directoryEntry(table: 0xABC_D000, nextLevel: 5) == 0x6000_0000_0ABC_DA01)
    }

    @Test func pageSizesAreEveryPowerOfTwoTheDepthAllowsWithout512G() {
        typealias E = AMDViPageTableEncoding
        #expect(E.pageSizes(levels: 1) == 0x1F_F000) // 4K...1M
        #expect(E.pageSizes(levels: 2) == 0x3FFF_F000) // 4K...512M
        #expect(E.pageSizes(levels: 3) == 0x7F_FFFF_F000) // 4K...256G
        #expect(E.pageSizes(levels: 4) & (1 << 39) == 0)
        #expect(E.pageSizes(levels: 4) & (1 << 40) != 0)
        #expect(E.pageSizes(levels: 6) == (0xF_FFFF_FFFF_F000 & ~(1 << 39))) // up to 2^51
    }

    @Test(arguments: 1...6)
    func everyDepthMapsItsHighestPageAndWalksEveryLevel(levels: Int) throws {
        let table = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: levels)
        #expect(table.inputAddressBits == min(64, 12 + 9 * levels))
        let top: UInt64 = levels == 6 ? UInt64.max : (1 << UInt64(12 + 9 * levels)) - 1
        let iova = top & ~0xFFF
        try table.map(iova: iova, physical: 0x2345_6000, pageSize: 0x1000, permissions: .read)
        #expect(table.tablePages == levels)
        #expect(table.lookup(iova + 0x7FF) == PageTableLookup(physical: PhysicalAddress(0x2345_67FF), pageSize: 0x1000,
                                                             permissions: .read))
        #expect(try entry(table, iova, level: 1) == 0x3000_0000_2345_6001)
        for level in stride(from: levels, to: 1, by: -1) {
            #expect(try entry(table, iova, level: level) >> 9 & 7 == UInt64(level - 1), "level \(level)")
        }
        if levels < 6 {
            #expect(throws: PageTableError.beyondAddressWidth(iova: top + 1, bits: 12 + 9 * levels)) {
                try table.map(iova: top + 1, physical: 0, pageSize: 0x1000, permissions: .read)
            }
        }
        #expect(table.unmap(iova: iova, pageSize: 0x1000) == 0x1000)
        #expect(table.lookup(iova) == nil)
        table.destroy()
    }

    @Test func naturalAndNextLevelSevenPagesLandAtTheirLevels() throws {
        let table = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: 3)
        try table.map(iova: 0x4000_0000, physical: 0x4000_0000, pageSize: 1 << 30, permissions: .readWrite)
        #expect(try entry(table, 0x4000_0000, level: 3) == 0x7000_0000_4000_0001)
        try table.map(iova: 0x20_0000, physical: 0x60_0000, pageSize: 1 << 21, permissions: .read)
        #expect(try entry(table, 0x20_0000, level: 2) == 0x3000_0000_0060_0001)
        // 4 MiB: two level-2 entries with next level 7.
        try table.map(iova: 0x80_0000, physical: 0xC0_0000, pageSize: 1 << 22, permissions: .readWrite)
        #expect(try entry(table, 0x80_0000, level: 2) == 0x7000_0000_00DF_FE01)
        #expect(try entry(table, 0xA0_0000, level: 2) == 0x7000_0000_00DF_FE01)
        // 64 KiB: sixteen level-1 entries with next level 7.
        try table.map(iova: 0x1_0000, physical: 0x3_0000, pageSize: 1 << 16, permissions: .write)
        for offset in stride(from: UInt64(0), to: 0x1_0000, by: 0x1000) {
            #expect(try entry(table, 0x1_0000 + offset, level: 1) == 0x5000_0000_0003_7E01)
        }
        #expect(try entry(table, 0x2_0000, level: 1) == 0)
        #expect(table.lookup(0x1_ABCD) == PageTableLookup(physical: PhysicalAddress(0x3_ABCD), pageSize: 1 << 16,
                                                          permissions: .write))
        #expect(table.lookup(0xBF_FFFF)?.physical == PhysicalAddress(0xFF_FFFF))
        #expect(table.lookup(0x7FFF_FFFF)?.physical == PhysicalAddress(0x7FFF_FFFF))

        // Unmapping any part of a page removes all of it, every entry it spans.
        #expect(table.unmap(iova: 0x1_8000, pageSize: 0x1000) == 1 << 16)
        for offset in stride(from: UInt64(0), to: 0x1_0000, by: 0x1000) {
            #expect(try entry(table, 0x1_0000 + offset, level: 1) == 0)
        }
        #expect(table.unmap(iova: 0xA0_0000, pageSize: 1 << 21) == 1 << 22)
        #expect(try entry(table, 0x80_0000, level: 2) == 0)
        #expect(table.unmap(iova: 0x80_0000, pageSize: 1 << 21) == 0)
    }

    @Test func refusedMapsChangeNothing() throws {
        let table = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: 3)
        try table.map(iova: 0x1_8000, physical: 0x9_8000, pageSize: 0x1000, permissions: .read)
        let pagesBefore = table.tablePages
        let leafBefore = try (0..<32).map { try entry(table, 0x1_0000 + UInt64($0) * 0x1000, level: 1) }

        // A 64 KiB page over the mapped 4 KiB one: the eight entries written before the clash are undone.
        #expect(throws: PageTableError.alreadyMapped(iova: 0x1_0000)) {
            try table.map(iova: 0x1_0000, physical: 0x4_0000, pageSize: 1 << 16, permissions: .readWrite)
        }
        #expect(throws: PageTableError.alreadyMapped(iova: 0)) {
            try table.map(iova: 0, physical: 0, pageSize: 1 << 21, permissions: .readWrite)
        }
        #expect(throws: PageTableError.misaligned(iova: 0x1000, physical: 0, pageSize: 0x2000)) {
            try table.map(iova: 0x1000, physical: 0, pageSize: 0x2000, permissions: .read)
        }
        #expect(throws: PageTableError.unsupportedPageSize(0x3000)) {
            try table.map(iova: 0, physical: 0, pageSize: 0x3000, permissions: .read)
        }
        #expect(throws: PageTableError.unsupportedPageSize(1 << 39)) {
            try table.map(iova: 0, physical: 0, pageSize: 1 << 39, permissions: .read)
        }
        #expect(throws: PageTableError.noPermissions) {
            try table.map(iova: 0x5000, physical: 0x5000, pageSize: 0x1000, permissions: [])
        }
        #expect(throws: PageTableError.physicalTooWide(physical: 1 << 52, bits: 52)) {
            try table.map(iova: 0x5000, physical: 1 << 52, pageSize: 0x1000, permissions: .read)
        }
        #expect(table.tablePages == pagesBefore)
        #expect(try (0..<32).map { try entry(table, 0x1_0000 + UInt64($0) * 0x1000, level: 1) } == leafBefore)
        #expect(table.lookup(0x1_8000)?.physical == PhysicalAddress(0x9_8000))
        #expect(table.unmap(iova: 0x5000, pageSize: 0x1000) == 0)
        #expect(table.unmap(iova: 0x1_8000, pageSize: 0x3000) == 0) // not a page size: nothing happens
        #expect(table.lookup(0x1_8000) != nil)
    }

    @Test func aLargePageReplacesTablesLeftEmptyByUnmaps() throws {
        let table = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: 3)
        try table.map(iova: 0x4000_0000, physical: 0x1000, pageSize: 0x1000, permissions: .read)
        #expect(table.tablePages == 3)
        #expect(table.unmap(iova: 0x4000_0000, pageSize: 0x1000) == 0x1000)
        try table.map(iova: 0x4000_0000, physical: 0x8000_0000, pageSize: 1 << 30, permissions: .read)
        #expect(table.tablePages == 1)
        #expect(table.lookup(0x4123_4567)?.physical == PhysicalAddress(0x8123_4567))
    }

    @Test func lookupFollowsTablesThatSkipLevels() throws {
        let table = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: 4)
        let leaf = try pages.allocate()
        // The level-4 entry 2 points straight at a level-1 table.
        try memory.store64(table.root + 2 * 8, AMDViPageTableEncoding.directoryEntry(table: leaf.value, nextLevel: 1))
        try memory.store64(leaf + 7 * 8, AMDViPageTableEncoding.leafEntry(physical: 0x7_7000, pageSize: 0x1000,
                                                                           permissions: .readWrite))
        let iova: UInt64 = 2 << 39 | 7 << 12
        #expect(table.lookup(iova + 1)?.physical == PhysicalAddress(0x7_7001))
        #expect(table.lookup(iova | 1 << 21) == nil)
        #expect(table.lookup(iova | 1 << 38) == nil)
        // Map does not build under a skipping entry; it refuses without writing.
        #expect(throws: PageTableError.alreadyMapped(iova: iova + 0x1000)) {
            try table.map(iova: iova + 0x1000, physical: 0, pageSize: 0x1000, permissions: .read)
        }
        #expect(table.unmap(iova: iova, pageSize: 0x1000) == 0x1000)
        #expect(try memory.load64(leaf + 7 * 8) == 0)
    }

    @Test func theLeafTablePathsAgreeWithTheWalkingOnes() throws {
        let table = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: 3)
        #expect(try table.leafTable(containing: 0x20_0000, create: false) == nil)
        let leaf = try #require(try table.leafTable(containing: 0x20_0000, create: true))
        try table.map(inLeafTable: leaf, iova: 0x24_0000, physical: 0x5_0000, pageSize: 1 << 16, permissions: .read)
        #expect(table.lookup(0x24_1234) == table.lookup(inLeafTable: leaf, iova: 0x24_1234))
        #expect(table.lookup(0x24_1234)?.physical == PhysicalAddress(0x5_1234))
        #expect(throws: PageTableError.unsupportedPageSize(1 << 21)) {
            try table.map(inLeafTable: leaf, iova: 0x20_0000, physical: 0, pageSize: 1 << 21, permissions: .read)
        }
        #expect(table.unmap(inLeafTable: leaf, iova: 0x24_F000) == 1 << 16)
        #expect(table.lookup(0x24_0000) == nil)
        try table.map(iova: 0x4000_0000, physical: 0, pageSize: 1 << 30, permissions: .read)
        #expect(try table.leafTable(containing: 0x4000_0000, create: true) == nil)
    }

    @Test func depthsOutsideOneToSixAreRefused() {
        for levels in [0, 7] {
            #expect(throws: PageTableError.self) { _ = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: levels) }
        }
        #expect(throws: PageTableError.self) {
            _ = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: 1, pageSizes: 1 << 21 | 1 << 12)
        }
    }
}
