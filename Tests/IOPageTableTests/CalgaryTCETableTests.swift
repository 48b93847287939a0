import Emulation
import IOPageTable
import Testing

@Suite struct CalgaryTCETableTests {
    static func table(window: UInt64 = 32 << 20) throws -> CalgaryTCETable {
        let memory = try PhysicalMemory(size: 8 << 30)
        let pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress((8 << 30) - 1)])
        return try CalgaryTCETable(memory: memory, pageAllocator: pages, windowBytes: window)
    }

    @Test func entriesFollowTheTCEFormat() {
        #expect(CalgaryTCETable.entry(physical: 0x1234_5678_9000, permissions: .readWrite) == 0x1234_5678_9003)
        #expect(CalgaryTCETable.entry(physical: 0x1234_5678_9000, permissions: .read) == 0x1234_5678_9001)
        #expect(CalgaryTCETable.entry(physical: 0x1234_5678_9000, permissions: .write) == 0x1234_5678_9002)
        #expect(CalgaryTCE.pageMask == 0x0000_FFFF_FFFF_F000)
    }

    @Test func sizeCodesWindowsAndTheTARValue() throws {
        #expect(CalgaryTableAddress.sizeCode(windowBytes: 32 << 20) == 0)
        #expect(CalgaryTableAddress.sizeCode(windowBytes: 2 << 30) == 6)
        #expect(CalgaryTableAddress.sizeCode(windowBytes: 4 << 30) == 7)
        #expect(CalgaryTableAddress.sizeCode(windowBytes: 8 << 30) == nil)
        #expect(CalgaryTableAddress.sizeCode(windowBytes: 16 << 20) == nil)
        let table = try Self.table(window: 2 << 30)
        #expect(table.entries == 512 * 1024)
        #expect(table.tablePages == 1024)
        #expect(table.table.value % (4 << 20) == 0, "aligned to its own 4 MiB size")
        #expect(table.tableAddressRegister == table.table.value | 6)
        #expect(table.tableAddressRegister & ~CalgaryTableAddress.softwareBits == 0)
    }

    @Test func mapUnmapAndLookupUseEntryNForBusPageN() throws {
        let table = try Self.table()
        try table.map(iova: 0x3000, physical: 0xAB_CDEF_0000, pageSize: 4096, permissions: .read)
        #expect(try table.memory.load64(table.table + 3 * 8) == 0xAB_CDEF_0001)
        #expect(table.lookup(0x3123) == PageTableLookup(physical: PhysicalAddress(0xAB_CDEF_0123), pageSize: 4096,
                                                        permissions: .read))
        #expect(table.unmap(iova: 0x3000, pageSize: 4096) == 4096)
        #expect(try table.memory.load64(table.table + 3 * 8) == 0)
        #expect(table.unmap(iova: 0x3000, pageSize: 4096) == 0)
        #expect(table.lookup(0x3000) == nil)
    }

    @Test func refusalsChangeNoEntry() throws {
        let table = try Self.table()
        try table.map(iova: 0, physical: 0x5000, pageSize: 4096, permissions: .readWrite)
        #expect(throws: PageTableError.alreadyMapped(iova: 0)) {
            try table.map(iova: 0, physical: 0x6000, pageSize: 4096, permissions: .readWrite)
        }
        #expect(throws: PageTableError.beyondAddressWidth(iova: 32 << 20, bits: 25)) {
            try table.map(iova: 32 << 20, physical: 0x6000, pageSize: 4096, permissions: .readWrite)
        }
        #expect(throws: PageTableError.physicalTooWide(physical: 1 << 48, bits: 48)) {
            try table.map(iova: 0x1000, physical: 1 << 48, pageSize: 4096, permissions: .readWrite)
        }
        #expect(throws: PageTableError.unsupportedPageSize(2 << 20)) {
            try table.map(iova: 0x20_0000, physical: 0x20_0000, pageSize: 2 << 20, permissions: .readWrite)
        }
        #expect(throws: PageTableError.noPermissions) {
            try table.map(iova: 0x1000, physical: 0x6000, pageSize: 4096, permissions: [])
        }
        #expect(try table.memory.load64(table.table) == 0x5003)
        #expect(try table.memory.load64(table.table + 8) == 0)
        #expect(throws: PageTableError.memory(.invalidRequest("Calgary DMA window 0x3000000 must be a power of two from 32 MiB to 4 GiB"))) {
            _ = try Self.table(window: 48 << 20)
        }
    }

    @Test func destroyGivesTheTableBack() throws {
        let table = try Self.table()
        let before = table.pageAllocator.allocatedPages
        table.destroy()
        table.destroy()
        #expect(table.pageAllocator.allocatedPages == before - 16)
    }
}
