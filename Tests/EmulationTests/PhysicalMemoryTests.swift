import Emulation
import Testing

@Suite struct PhysicalMemoryTests {
    @Test func sixtyFourGiBOfAddressesAreUsableAndLazilyBacked() throws {
        let memory = try PhysicalMemory(size: 64 << 30)
        let top = PhysicalAddress((64 << 30) - 8)
        try memory.store64(top, 0xDEAD_BEEF_CAFE_F00D)
        #expect(try memory.load64(top) == 0xDEAD_BEEF_CAFE_F00D)
        #expect(try memory.read(PhysicalAddress(1 << 35), count: 4) == [0, 0, 0, 0])
    }

    @Test func outOfRangeAccessIsAnErrorNotACrash() throws {
        let memory = try PhysicalMemory(size: 1 << 20)
        #expect(throws: MemoryError.outOfRange(address: 1 << 20, count: 1, memorySize: 1 << 20)) {
            try memory.write(PhysicalAddress(1 << 20), bytes: [1])
        }
        #expect(throws: MemoryError.self) { try memory.read(PhysicalAddress((1 << 20) - 2), count: 4) }
        #expect(throws: MemoryError.self) { try memory.load64(PhysicalAddress(UInt64.max - 3)) }
        #expect(throws: MemoryError.misaligned(address: 4, alignment: 8)) { try memory.load64(PhysicalAddress(4)) }
        #expect(throws: MemoryError.self) { try memory.copy(from: PhysicalAddress(0), to: PhysicalAddress(UInt64.max), count: 2) }
    }

    @Test func copyAndFillMoveBytes() throws {
        let memory = try PhysicalMemory(size: 1 << 20)
        try memory.write(PhysicalAddress(0x100), bytes: [1, 2, 3, 4])
        try memory.copy(from: PhysicalAddress(0x100), to: PhysicalAddress(0x2000), count: 4)
        #expect(try memory.read(PhysicalAddress(0x2000), count: 4) == [1, 2, 3, 4])
        try memory.fill(PhysicalAddress(0x2001), count: 2, with: 9)
        #expect(try memory.read(PhysicalAddress(0x2000), count: 4) == [1, 9, 9, 4])
    }

    @Test func invalidSizesAreRefused() {
        #expect(throws: MemoryError.self) { try PhysicalMemory(size: 0) }
        #expect(throws: MemoryError.self) { try PhysicalMemory(size: 4097) }
    }
}

@Suite struct PhysicalPageAllocatorTests {
    @Test func allocatesAlignedZeroedPagesInTheRequestedZone() throws {
        let memory = try PhysicalMemory(size: 8 << 30)
        let pages = try PhysicalPageAllocator(memory: memory)
        let high = try pages.allocate(pages: 4, zone: .above(PhysicalAddress(1 << 32)))
        #expect(high.value >= 1 << 32)
        let aligned = try pages.allocate(pages: 512, alignment: 1 << 21)
        #expect(aligned.value % (1 << 21) == 0)
        let low = try pages.allocate(zone: .below(PhysicalAddress(0xFFFF_FFFF)))
        #expect(low.value < 1 << 32)
        #expect(try memory.read(high, count: 16) == [UInt8](repeating: 0, count: 16))
        #expect(pages.allocatedPages == 517)
    }

    @Test func doubleAndWildFreesAreRefusedAndChangeNothing() throws {
        let memory = try PhysicalMemory(size: 1 << 24)
        let pages = try PhysicalPageAllocator(memory: memory, usable: [PhysicalAddress(0x10_0000)...PhysicalAddress(0xFF_FFFF)])
        let page = try pages.allocate(pages: 2)
        try pages.free(page, pages: 2)
        let free = pages.freePages
        #expect(throws: MemoryError.notAllocated(address: page.value, pages: 2)) { try pages.free(page, pages: 2) }
        #expect(throws: MemoryError.self) { try pages.free(PhysicalAddress(0), pages: 1) } // outside the managed RAM
        #expect(throws: MemoryError.self) { try pages.free(PhysicalAddress(0x10_0001)) }
        #expect(pages.freePages == free)
    }

    @Test func exhaustionIsAnError() throws {
        let memory = try PhysicalMemory(size: 1 << 20)
        let pages = try PhysicalPageAllocator(memory: memory)
        #expect(throws: MemoryError.self) { try pages.allocate(pages: 257) }
        #expect(throws: MemoryError.self) { try pages.allocate(pages: 0) }
    }
}
