import Emulation
import IOPageTable
import Testing

@Suite struct VTdSecondLevelTableTests {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator

    init() throws {
        memory = try PhysicalMemory(size: 1 << 34)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0xFFF_FFFF)])
    }

    @Test func leafEncodingsMatchTheSpecification() {
        #expect(VTdSecondLevelTable.leafEntry(physical: 0x1234_5000, pageSize: PageSize.size4K, permissions: .readWrite) == 0x1234_5003)
        #expect(VTdSecondLevelTable.leafEntry(physical: 0x1234_5000, pageSize: PageSize.size4K, permissions: .read) == 0x1234_5001)
        #expect(VTdSecondLevelTable.leafEntry(physical: 0x4020_0000, pageSize: PageSize.size2M, permissions: .write) == 0x4020_0082)
        #expect(VTdSecondLevelTable.leafEntry(physical: 0x1_4000_0000, pageSize: PageSize.size1G, permissions: .readWrite)
            == 0x1_4000_0083)
    }

    @Test func mapWritesEachLevelAtTheIndexTheAddressSelects() throws {
        let table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: 4)
        let iova: UInt64 = 0x0000_7F80_4020_3000 // indices 255, 1, 1, 3 from level 4 down
        try table.map(iova: iova, physical: 0xABC_D000, pageSize: PageSize.size4K, permissions: .read)
        let level4 = try memory.load64(table.root + 255 * 8)
        #expect(level4 & 3 == 3)
        let level3 = try memory.load64(PhysicalAddress(level4 & VTdPTE.addressMask) + 1 * 8)
        let level2 = try memory.load64(PhysicalAddress(level3 & VTdPTE.addressMask) + 1 * 8)
        let leaf = try memory.load64(PhysicalAddress(level2 & VTdPTE.addressMask) + 3 * 8)
        #expect(leaf == 0xABC_D001)
        #expect(table.tablePages == 4)
        #expect(table.lookup(iova + 0x123) == PageTableLookup(physical: PhysicalAddress(0xABC_D123), pageSize: 4096, permissions: .read))
    }

    @Test func largePagesSitAtLevelsTwoAndThree() throws {
        let table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: 5)
        try table.map(iova: 0x4000_0000, physical: 0x2_0000_0000, pageSize: PageSize.size1G, permissions: .readWrite)
        try table.map(iova: 0x20_0000, physical: 0x60_0000, pageSize: PageSize.size2M, permissions: .readWrite)
        #expect(table.lookup(0x4567_8000)?.pageSize == PageSize.size1G)
        #expect(table.lookup(0x4567_8000)?.physical == PhysicalAddress(0x2_0567_8000))
        #expect(table.lookup(0x21_0000)?.pageSize == PageSize.size2M)
        #expect(table.inputAddressBits == 57)
    }

    @Test func refusalsChangeNothing() throws {
        let table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: 4)
        try table.map(iova: 0x20_0000, physical: 0x40_0000, pageSize: PageSize.size4K, permissions: .read)
        #expect(throws: PageTableError.alreadyMapped(iova: 0x20_0000)) {
            try table.map(iova: 0x20_0000, physical: 0x80_0000, pageSize: PageSize.size2M, permissions: .read)
        }
        #expect(throws: PageTableError.alreadyMapped(iova: 0x20_0000)) {
            try table.map(iova: 0x20_0000, physical: 0x80_0000, pageSize: PageSize.size4K, permissions: .read)
        }
        #expect(throws: PageTableError.misaligned(iova: 0x1800, physical: 0, pageSize: 4096)) {
            try table.map(iova: 0x1800, physical: 0, pageSize: PageSize.size4K, permissions: .read)
        }
        #expect(throws: PageTableError.beyondAddressWidth(iova: 1 << 48, bits: 48)) {
            try table.map(iova: 1 << 48, physical: 0, pageSize: PageSize.size4K, permissions: .read)
        }
        #expect(throws: PageTableError.unsupportedPageSize(8192)) {
            try table.map(iova: 0, physical: 0, pageSize: 8192, permissions: .read)
        }
        #expect(throws: PageTableError.noPermissions) {
            try table.map(iova: 0x5000, physical: 0, pageSize: PageSize.size4K, permissions: [])
        }
        #expect(table.lookup(0x20_0000)?.physical == PhysicalAddress(0x40_0000))
        #expect(table.lookup(0x5000) == nil)
    }

    @Test func unmapReportsWhatItRemovedAndEmptyTablesGiveWayToLargePages() throws {
        let table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: 4)
        try table.map(iova: 0x20_0000, physical: 0x40_0000, pageSize: PageSize.size4K, permissions: .read)
        #expect(table.unmap(iova: 0x20_0000, pageSize: PageSize.size4K) == 4096)
        #expect(table.unmap(iova: 0x20_0000, pageSize: PageSize.size4K) == 0)
        let before = table.tablePages
        try table.map(iova: 0x20_0000, physical: 0x80_0000, pageSize: PageSize.size2M, permissions: .read)
        #expect(table.tablePages == before - 1) // the emptied level-1 table was freed
        #expect(table.unmap(iova: 0x20_1000, pageSize: PageSize.size4K) == PageSize.size2M)
    }

    @Test func concurrentMapsOfNeighbouringPagesShareOneTable() async throws {
        let table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: 4)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 as Range<UInt64> {
                group.addTask {
                    for page in 0..<256 as Range<UInt64> {
                        let iova = (page * 4 + worker) << 12
                        try? table.map(iova: iova, physical: iova + 0x1000_0000, pageSize: PageSize.size4K, permissions: .readWrite)
                    }
                }
            }
        }
        for page in 0..<1024 as Range<UInt64> {
            #expect(table.lookup(page << 12)?.physical == PhysicalAddress((page << 12) + 0x1000_0000))
        }
        #expect(table.tablePages == 5) // root, one level 3, one level 2, two level 1 tables
    }
}
