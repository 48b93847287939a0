import Emulation
import IOPageTable
import Testing

@Suite struct ARMLPAETableTests {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator

    init() throws {
        memory = try PhysicalMemory(size: 1 << 34)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0xFFF_FFFF)])
    }

    /// Reads the descriptor a hardware walk would read at `level` for `iova`.
    func descriptor(_ table: ARMLPAETable, _ iova: UInt64, level: Int) throws -> UInt64 {
        var base = table.root.value
        let granule = table.granule
        for current in table.startLevel...level {
            let bits = granule.indexBits(atLevel: current, inputBits: table.inputAddressBits)
            let index = (iova >> UInt64(granule.shift(atLevel: current))) & ((1 << UInt64(bits)) - 1)
            let entry = try memory.load64(PhysicalAddress(base + index * 8))
            if current == level { return entry }
            base = entry & 0x0000_FFFF_FFFF_F000 & ~(granule.rawValue - 1)
        }
        return 0
    }

    @Test func leafAndTableEncodingsMatchTheArchitecture() {
        // Page: bits 1:0 = 0b11, AttrIndx 1 (bit 2), AP[1] (bit 6), SH = inner shareable (bits 9:8), AF (bit 10), nG (bit 11).
        #expect(ARMLPAETable.leafDescriptor(physical: 0x1234_5000, isPage: true, permissions: .readWrite) == 0x1234_5F47)
        // AP[2] (bit 7) makes it read-only.
        #expect(ARMLPAETable.leafDescriptor(physical: 0x1234_5000, isPage: true, permissions: .read) == 0x1234_5FC7)
        // Block: bits 1:0 = 0b01.
        #expect(ARMLPAETable.leafDescriptor(physical: 0x4000_0000, isPage: false, permissions: .read) == 0x4000_0FC5)
        // LPAE has no write-only: a write-only mapping is read-write.
        #expect(ARMLPAETable.leafDescriptor(physical: 0x20_0000, isPage: false, permissions: .write) == 0x20_0F45)
        #expect(ARMLPAETable.tableDescriptor(next: 0x8000_1000) == 0x8000_1003)
    }

    @Test func granuleGeometryFollowsVMSAv8() {
        #expect(ARMTranslationGranule.size4K.pageSizes == [1 << 12, 1 << 21, 1 << 30])
        #expect(ARMTranslationGranule.size16K.pageSizes == [1 << 14, 1 << 25])
        #expect(ARMTranslationGranule.size64K.pageSizes == [1 << 16, 1 << 29])
        // A 48-bit space: 4K walks levels 0-3 (9 bits each), 16K starts at level 0 with a 2-entry table,
        // 64K starts at level 1 with a 64-entry table.
        #expect(ARMTranslationGranule.size4K.startLevel(inputBits: 48) == 0)
        #expect(ARMTranslationGranule.size16K.startLevel(inputBits: 48) == 0)
        #expect(ARMTranslationGranule.size16K.indexBits(atLevel: 0, inputBits: 48) == 1)
        #expect(ARMTranslationGranule.size64K.startLevel(inputBits: 48) == 1)
        #expect(ARMTranslationGranule.size64K.indexBits(atLevel: 1, inputBits: 48) == 6)
        // A 39-bit space with 4K starts at level 1.
        #expect(ARMTranslationGranule.size4K.startLevel(inputBits: 39) == 1)
        #expect(ARMTranslationGranule.size16K.shift(atLevel: 2) == 25)
        #expect(ARMTranslationGranule.size64K.shift(atLevel: 2) == 29)
        // TG0 encodings: 0b00 4K, 0b10 16K, 0b01 64K.
        #expect(ARMTranslationGranule.allCases.map(\.tg0Encoding) == [0, 2, 1])
    }

    @Test(arguments: [
        (ARMTranslationGranule.size4K, UInt64(1) << 12, 3), (.size4K, 1 << 21, 2), (.size4K, 1 << 30, 1),
        (.size16K, 1 << 14, 3), (.size16K, 1 << 25, 2),
        (.size64K, 1 << 16, 3), (.size64K, 1 << 29, 2),
    ])
    func eachPageSizeLandsAtItsLevel(granule: ARMTranslationGranule, pageSize: UInt64, level: Int) throws {
        let table = try ARMLPAETable(memory: memory, pageAllocator: pages, granule: granule)
        let iova: UInt64 = 0x7F_0000_0000 + pageSize * 3
        let physical: UInt64 = 0x2_0000_0000 + pageSize
        try table.map(iova: iova, physical: physical, pageSize: pageSize, permissions: .readWrite)
        let leaf = try descriptor(table, iova, level: level)
        #expect(leaf == ARMLPAETable.leafDescriptor(physical: physical, isPage: level == 3, permissions: .readWrite))
        for upper in table.startLevel..<level {
            #expect(try descriptor(table, iova, level: upper) & 3 == 3, "level \(upper) holds a table descriptor")
        }
        let found = try #require(table.lookup(iova + pageSize - 8))
        #expect(found == PageTableLookup(physical: PhysicalAddress(physical + pageSize - 8), pageSize: pageSize,
                                         permissions: .readWrite))
        #expect(table.unmap(iova: iova, pageSize: pageSize) == pageSize)
        #expect(table.lookup(iova) == nil)
        table.destroy()
    }

    @Test func readOnlyPagesReportOnlyRead() throws {
        let table = try ARMLPAETable(memory: memory, pageAllocator: pages, granule: .size16K)
        try table.map(iova: 0x4000, physical: 0x8000, pageSize: 0x4000, permissions: .read)
        #expect(try descriptor(table, 0x4000, level: 3) & ARMLPAEDescriptor.readOnly != 0)
        #expect(table.lookup(0x4000)?.permissions == .read)
    }

    @Test func refusalsChangeNothing() throws {
        let table = try ARMLPAETable(memory: memory, pageAllocator: pages, granule: .size4K)
        try table.map(iova: 0x20_0000, physical: 0x4000_0000, pageSize: 1 << 21, permissions: .readWrite)
        try table.map(iova: 0x4000_1000, physical: 0x5000, pageSize: 0x1000, permissions: .read)
        let before = try memory.read(table.root, count: 4096)
        let tablePages = table.tablePages
        #expect(throws: PageTableError.alreadyMapped(iova: 0x20_3000)) {
            try table.map(iova: 0x20_3000, physical: 0x9000, pageSize: 0x1000, permissions: .read)
        }
        #expect(throws: PageTableError.alreadyMapped(iova: 0x4000_0000)) {
            try table.map(iova: 0x4000_0000, physical: 0x8000_0000, pageSize: 1 << 30, permissions: .read)
        }
        #expect(throws: PageTableError.misaligned(iova: 0x1800, physical: 0, pageSize: 4096)) {
            try table.map(iova: 0x1800, physical: 0, pageSize: 4096, permissions: .read)
        }
        #expect(throws: PageTableError.beyondAddressWidth(iova: 1 << 48, bits: 48)) {
            try table.map(iova: 1 << 48, physical: 0, pageSize: 4096, permissions: .read)
        }
        #expect(throws: PageTableError.physicalTooWide(physical: 1 << 48, bits: 48)) {
            try table.map(iova: 0, physical: 1 << 48, pageSize: 4096, permissions: .read)
        }
        #expect(throws: PageTableError.unsupportedPageSize(1 << 25)) {
            try table.map(iova: 0, physical: 0, pageSize: 1 << 25, permissions: .read)
        }
        #expect(throws: PageTableError.noPermissions) { try table.map(iova: 0, physical: 0, pageSize: 4096, permissions: []) }
        #expect(try memory.read(table.root, count: 4096) == before)
        #expect(table.tablePages == tablePages)
        #expect(table.lookup(0x20_3000)?.physical == PhysicalAddress(0x4000_3000))
        #expect(table.lookup(0x4000_1000)?.permissions == .read)
        // 16K tables have no 1 GiB block and no 4K page.
        let sixteen = try ARMLPAETable(memory: memory, pageAllocator: pages, granule: .size16K)
        #expect(throws: PageTableError.unsupportedPageSize(1 << 30)) {
            try sixteen.map(iova: 0, physical: 0, pageSize: 1 << 30, permissions: .read)
        }
        #expect(throws: PageTableError.unsupportedAddressWidth(bits: 52)) {
            try ARMLPAETable(memory: memory, pageAllocator: pages, granule: .size64K, inputAddressBits: 52)
        }
    }

    @Test func unmappingInsideABlockRemovesTheBlockAndAnEmptyTableGivesWayToABlock() throws {
        let table = try ARMLPAETable(memory: memory, pageAllocator: pages, granule: .size64K)
        #expect(table.startLevel == 1)
        try table.map(iova: 1 << 29, physical: 0x1_0000_0000, pageSize: 1 << 29, permissions: .readWrite)
        #expect(table.unmap(iova: (1 << 29) + 0x1_0000, pageSize: 0x1_0000) == 1 << 29)
        #expect(table.lookup(1 << 29) == nil)
        try table.map(iova: 0x1_0000, physical: 0x2_0000, pageSize: 0x1_0000, permissions: .readWrite)
        let withLevel3 = table.tablePages
        #expect(table.unmap(iova: 0x1_0000, pageSize: 0x1_0000) == 0x1_0000)
        try table.map(iova: 0, physical: 0x2000_0000, pageSize: 1 << 29, permissions: .readWrite)
        #expect(table.tablePages == withLevel3 - 16) // the empty 64 KiB level-3 table was freed
        #expect(table.lookup(0x1234_5678)?.pageSize == 1 << 29)
        let allocated = pages.allocatedPages
        let owned = UInt64(table.tablePages)
        table.destroy()
        #expect(pages.allocatedPages == allocated - owned)
        #expect(pages.allocatedPages == 0)
    }
}
