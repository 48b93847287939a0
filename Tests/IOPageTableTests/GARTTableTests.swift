import Emulation
import IOPageTable
import Testing

@Suite struct GARTTableTests {
    static func table(base: UInt64 = 0xC000_0000, size: UInt64 = 32 << 20) throws -> GARTTable {
        let memory = try PhysicalMemory(size: 4 << 30)
        let pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0xBFFF_FFFF)])
        return try GARTTable(memory: memory, pageAllocator: pages, apertureBase: base, apertureSize: size)
    }

    @Test func entriesFollowTheK8Encoding() {
        // Physical bits 31:12 stay in place, bits 39:32 move to entry bits 11:4; valid and coherent set.
        #expect(GARTTable.entry(physical: 0x12_3456_7000) == 0x3456_7123)
        #expect(GARTTable.entry(physical: 0x1000) == 0x0000_1003)
        #expect(GARTTable.entry(physical: 0xFF_FFFF_F000) == 0xFFFF_FFF3)
        #expect(GARTEntry.physical(of: 0x3456_7123) == 0x12_3456_7000)
        #expect(GARTEntry.physical(of: 0xFFFF_FFF3) == 0xFF_FFFF_F000)
    }

    @Test func mapWritesTheEntryAtItsIndexAndLeavesItsNeighbourAlone() throws {
        let table = try Self.table()
        #expect(table.entries == 8192)
        #expect(table.tablePages == 8)
        #expect(table.tableBaseRegister == UInt32(table.table.value >> 12) << 4)
        try table.map(iova: 0xC000_5000, physical: 0x3_4000_0000, pageSize: 4096, permissions: .read)
        try table.map(iova: 0xC000_4000, physical: 0x7000, pageSize: 4096, permissions: .write)
        // Entries 4 and 5 share one 64-bit word: both halves hold their own entry.
        let word = try table.memory.load64(table.table + 16)
        #expect(word == UInt64(0x0000_7003) | UInt64(0x4000_0033) << 32)
        #expect(try table.read(5) == 0x4000_0033)
        #expect(table.lookup(0xC000_5ABC) == PageTableLookup(physical: PhysicalAddress(0x3_4000_0ABC), pageSize: 4096,
                                                             permissions: .readWrite))
        #expect(table.unmap(iova: 0xC000_5000, pageSize: 4096) == 4096)
        #expect(table.unmap(iova: 0xC000_5000, pageSize: 4096) == 0)
        #expect(table.lookup(0xC000_5000) == nil)
        #expect(table.lookup(0xC000_4000)?.physical == PhysicalAddress(0x7000))
    }

    @Test func refusalsChangeNoEntry() throws {
        let table = try Self.table()
        try table.map(iova: 0xC000_0000, physical: 0x1000, pageSize: 4096, permissions: .readWrite)
        #expect(throws: PageTableError.alreadyMapped(iova: 0xC000_0000)) {
            try table.map(iova: 0xC000_0000, physical: 0x2000, pageSize: 4096, permissions: .readWrite)
        }
        #expect(throws: PageTableError.beyondAddressWidth(iova: 0xC200_0000, bits: 25)) {
            try table.map(iova: 0xC200_0000, physical: 0x2000, pageSize: 4096, permissions: .readWrite)
        }
        #expect(throws: PageTableError.beyondAddressWidth(iova: 0xBFFF_F000, bits: 25)) {
            try table.map(iova: 0xBFFF_F000, physical: 0x2000, pageSize: 4096, permissions: .readWrite)
        }
        #expect(throws: PageTableError.physicalTooWide(physical: 1 << 40, bits: 40)) {
            try table.map(iova: 0xC000_1000, physical: 1 << 40, pageSize: 4096, permissions: .readWrite)
        }
        #expect(throws: PageTableError.unsupportedPageSize(2 << 20)) {
            try table.map(iova: 0xC020_0000, physical: 0x20_0000, pageSize: 2 << 20, permissions: .readWrite)
        }
        #expect(throws: PageTableError.misaligned(iova: 0xC000_1800, physical: 0x2000, pageSize: 4096)) {
            try table.map(iova: 0xC000_1800, physical: 0x2000, pageSize: 4096, permissions: .readWrite)
        }
        #expect(throws: PageTableError.noPermissions) {
            try table.map(iova: 0xC000_1000, physical: 0x2000, pageSize: 4096, permissions: [])
        }
        #expect(try table.read(0) == 0x1003)
        #expect((1..<8192).allSatisfy { (try? table.read(UInt64($0))) == 0 })
    }

    @Test func apertureShapesTheHardwareCannotEncodeAreRefused() throws {
        #expect(throws: PageTableError.memory(.invalidRequest("GART aperture size 0x3000000 must be a power of two from 32 MiB to 2 GiB"))) {
            _ = try Self.table(size: 48 << 20)
        }
        #expect(throws: PageTableError.misaligned(iova: 0xC100_0000, physical: 0, pageSize: 64 << 20)) {
            _ = try Self.table(base: 0xC100_0000, size: 64 << 20)
        }
    }

    @Test func concurrentMapsOfNeighbouringEntriesAreNotLost() async throws {
        let table = try Self.table()
        await withTaskGroup(of: Void.self) { group in
            for parity in 0..<2 as Range<UInt64> {
                group.addTask {
                    for index in stride(from: parity, to: 2048, by: 2) {
                        try? table.map(iova: 0xC000_0000 + index << 12, physical: 0x10_0000 + index << 12,
                                       pageSize: 4096, permissions: .readWrite)
                    }
                }
            }
        }
        #expect((0..<2048 as Range<UInt64>).allSatisfy { table.lookup(0xC000_0000 + $0 << 12)?.physical.value == 0x10_0000 + $0 << 12 })
    }

    /// The single-page path shares each 64-bit word between two entries too: racing maps and
    /// unmaps of the two halves never undo each other.
    @Test func concurrentMapsAndUnmapsOfTheSinglePagePathAreNotLost() async throws {
        let table = try Self.table()
        await withTaskGroup(of: Void.self) { group in
            for parity in 0..<2 as Range<UInt64> {
                group.addTask {
                    for round in 0..<5 {
                        for index in stride(from: parity, to: 2048, by: 2) {
                            let iova = 0xC000_0000 + index << 12
                            if round % 2 == 0 {
                                try? table.mapGranule(iova: iova, physical: 0x10_0000 + index << 12, permissions: .readWrite)
                            } else if index % 4 >= 2 {
                                _ = table.unmapGranule(iova: iova)
                            }
                        }
                    }
                }
            }
        }
        // Even rounds map every entry, odd ones unmap half; the last round maps: a lost update shows as a hole.
        #expect((0..<2048 as Range<UInt64>).allSatisfy { table.lookup(0xC000_0000 + $0 << 12)?.physical.value == 0x10_0000 + $0 << 12 })
        #expect(table.unmapGranule(iova: 0xC000_0000)?.physical == PhysicalAddress(0x10_0000))
        #expect(table.unmapGranule(iova: 0xC000_0000) == nil)
        #expect(table.lookup(0xC000_1000)?.physical == PhysicalAddress(0x10_1000))
    }

    @Test func destroyGivesTheTableBack() throws {
        let table = try Self.table()
        let before = table.pageAllocator.allocatedPages
        table.destroy()
        table.destroy()
        #expect(table.pageAllocator.allocatedPages == before - 8)
    }
}
