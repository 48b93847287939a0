import Emulation
import IOPageTable
import Testing

/// The single-page paths remember level-1 tables; a table freed when a large page replaces
/// an empty subtree must never be written through again.
@Suite struct VTdLeafTableCacheTests {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator

    init() throws {
        memory = try PhysicalMemory(size: 1 << 34)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0xFFF_FFFF)])
    }

    @Test func neighbouringPagesShareTheRememberedTable() throws {
        let table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: 4)
        for page: UInt64 in 0..<8 {
            try table.map4K(iova: 0x8000_0000 + page << 12, physical: 0x100_0000 + page << 12, permissions: .readWrite)
        }
        #expect(table.tablePages == 4)
        for page: UInt64 in 0..<8 {
            #expect(table.lookup(0x8000_0000 + page << 12)?.physical == PhysicalAddress(0x100_0000 + page << 12))
            #expect(table.unmap4K(iova: 0x8000_0000 + page << 12)?.physical == PhysicalAddress(0x100_0000 + page << 12))
        }
        #expect(table.unmap4K(iova: 0x8000_0000) == nil)
    }

    @Test func aLargePageOverAnEmptiedTableIsNotBypassed() throws {
        let table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: 4)
        let block: UInt64 = 0x4020_0000
        try table.map4K(iova: block + 0x3000, physical: 0x200_0000, permissions: .readWrite)
        #expect(table.unmap4K(iova: block + 0x3000) != nil)
        // The emptied level-1 table is freed and replaced by the 2 MiB page.
        try table.map(iova: block, physical: 0x400_0000, pageSize: PageSize.size2M, permissions: .read)
        #expect(table.unmap4K(iova: block + 0x3000) == nil)
        #expect(throws: PageTableError.alreadyMapped(iova: block + 0x5000)) {
            try table.map4K(iova: block + 0x5000, physical: 0x300_0000, permissions: .readWrite)
        }
        #expect(table.lookup(block + 0x5000)?.physical == PhysicalAddress(0x400_5000))
        #expect(table.lookup(block + 0x5000)?.pageSize == PageSize.size2M)
        // After the large page goes, a fresh level-1 table serves the block again.
        #expect(table.unmap(iova: block, pageSize: PageSize.size2M) == PageSize.size2M)
        try table.map4K(iova: block + 0x5000, physical: 0x300_0000, permissions: .readWrite)
        #expect(table.lookup(block + 0x5000)?.physical == PhysicalAddress(0x300_0000))
    }

    @Test func aGigabytePageForgetsEveryTableBeneathIt() throws {
        let table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: 4)
        let gigabyte: UInt64 = 0x8000_0000
        for block: UInt64 in [0, 1, 511] {
            let iova = gigabyte + block << 21
            try table.map4K(iova: iova, physical: 0x200_0000, permissions: .readWrite)
            #expect(table.unmap4K(iova: iova) != nil)
        }
        try table.map(iova: gigabyte, physical: 0x4000_0000, pageSize: PageSize.size1G, permissions: .readWrite)
        for block: UInt64 in [0, 1, 511] {
            #expect(throws: PageTableError.alreadyMapped(iova: gigabyte + block << 21)) {
                try table.map4K(iova: gigabyte + block << 21, physical: 0x300_0000, permissions: .readWrite)
            }
        }
        #expect(table.lookup(gigabyte + 511 << 21)?.pageSize == PageSize.size1G)
    }
}
