import Emulation
import IOPageTable
import Testing

/// The granule-page fast path of the Arm table: the same descriptors as the general map, for
/// every granule, and never a write through a level-3 table it remembered after that table was
/// freed (an emptied table replaced by a block).
@Suite struct ARMLPAEFastPathTests {
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator

    init() throws {
        memory = try PhysicalMemory(size: 1 << 34)
        pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0x3_FFFF_FFFF)])
    }

    @Test(arguments: ARMTranslationGranule.allCases)
    func granulePagesAreTheGeneralMapsDescriptors(granule: ARMTranslationGranule) throws {
        let general = try ARMLPAETable(memory: memory, pageAllocator: pages, granule: granule)
        let fast = try ARMLPAETable(memory: memory, pageAllocator: pages, granule: granule)
        let size = granule.rawValue
        for index: UInt64 in 0..<6 {
            let iova = 0x8000_0000 + index * size, physical = 0x4000_0000 + index * size
            let permissions: AccessPermissions = index % 2 == 0 ? .read : .readWrite
            try general.map(iova: iova, physical: physical, pageSize: size, permissions: permissions)
            try fast.mapGranule(iova: iova, physical: physical, permissions: permissions, exclusive: index % 3 == 0)
            #expect(fast.lookup(iova) == general.lookup(iova))
        }
        #expect(fast.tablePages == general.tablePages)
        for index: UInt64 in 0..<6 {
            let iova = 0x8000_0000 + index * size
            let expected = general.lookup(iova)
            #expect(fast.unmapGranule(iova: iova) == expected)
            #expect(fast.unmapGranule(iova: iova) == nil)
            #expect(fast.lookup(iova) == nil)
        }
        #expect(throws: PageTableError.misaligned(iova: 0x8000_0000 + size / 2, physical: 0x4000_0000, pageSize: size)) {
            try fast.mapGranule(iova: 0x8000_0000 + size / 2, physical: 0x4000_0000, permissions: .read)
        }
        #expect(throws: PageTableError.beyondAddressWidth(iova: 1 << 48, bits: 48)) {
            try fast.mapGranule(iova: 1 << 48, physical: 0x4000_0000, permissions: .read)
        }
        #expect(throws: PageTableError.noPermissions) { try fast.mapGranule(iova: 0x8000_0000, physical: 0x4000_0000, permissions: []) }
        try fast.mapGranule(iova: 0x8000_0000, physical: 0x4000_0000, permissions: .read)
        #expect(throws: PageTableError.alreadyMapped(iova: 0x8000_0000)) {
            try fast.mapGranule(iova: 0x8000_0000, physical: 0x5000_0000, permissions: .readWrite, exclusive: true)
        }
        #expect(fast.lookup(0x8000_0000)?.physical == PhysicalAddress(0x4000_0000))
    }

    @Test(arguments: ARMTranslationGranule.allCases)
    func aBlockOverAnEmptiedTableIsNotBypassed(granule: ARMTranslationGranule) throws {
        let table = try ARMLPAETable(memory: memory, pageAllocator: pages, granule: granule)
        let blockSize: UInt64 = 1 << UInt64(granule.shift(atLevel: 2))
        let block = 2 * blockSize, page = granule.rawValue
        try table.mapGranule(iova: block + 3 * page, physical: 0x4000_0000, permissions: .readWrite)
        #expect(table.unmapGranule(iova: block + 3 * page) != nil)
        let pagesBefore = table.tablePages
        // The emptied level-3 table is freed and replaced by the block.
        try table.map(iova: block, physical: 0x2_0000_0000, pageSize: blockSize, permissions: .read)
        #expect(table.tablePages == pagesBefore - Int(page >> 12))
        #expect(table.unmapGranule(iova: block + 5 * page) == nil)
        #expect(throws: PageTableError.alreadyMapped(iova: block + 5 * page)) {
            try table.mapGranule(iova: block + 5 * page, physical: 0x4000_0000, permissions: .readWrite)
        }
        #expect(table.lookup(block + 5 * page)?.pageSize == blockSize)
        // After the block goes, a fresh level-3 table serves the range again.
        #expect(table.unmap(iova: block, pageSize: blockSize) == blockSize)
        try table.mapGranule(iova: block + 5 * page, physical: 0x4000_0000, permissions: .readWrite)
        #expect(table.lookup(block + 5 * page)?.physical == PhysicalAddress(0x4000_0000))
    }
}
