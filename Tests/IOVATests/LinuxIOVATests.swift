import IOVA
import Testing

/// Linux 6.12 iova.c placement, checked against what the oracle traces show Linux doing.
@Suite struct LinuxIOVATests {
    static let top: UInt64 = (1 << 48) - 1

    func allocator() throws -> LinuxIOVAAllocator {
        let allocator = try LinuxIOVAAllocator(granule: 4096, space: 0...Self.top)
        try allocator.reserve(0xFEE0_0000...0xFEEF_FFFF) // the x86 MSI window, as every Linux DMA domain has
        return allocator
    }

    @Test func pciDevicesGetTopDownAddressesBelow4GiBFirst() throws {
        let iova = try allocator()
        // Linux's first NVMe dma_alloc of 512 bytes: dma_addr=fffff000; the next page goes right below.
        #expect(try iova.allocate(size: 512, limit: Self.top, preferredLimit: 0xFFFF_FFFF) == 0xFFFF_F000)
        #expect(try iova.allocate(size: 4096, limit: Self.top, preferredLimit: 0xFFFF_FFFF) == 0xFFFF_E000)
        // Without the 32-bit-first try, the top of the 48-bit space.
        #expect(try iova.allocate(size: 4096, limit: Self.top) == Self.top - 0xFFF)
    }

    @Test func rangesAreSizeAlignedAndSmallSizesRoundToPowersOfTwo() throws {
        let iova = try allocator()
        _ = try iova.allocate(size: 4096, limit: 0xFFFF_FFFF)            // 0xfffff000
        #expect(try iova.allocate(size: 0x20000, limit: 0xFFFF_FFFF) == 0xFFFC_0000) // 128 KiB aligned below it
        // 3 pages are allocated as 4 (cacheable sizes are rounded up), aligned to 16 KiB.
        let three = try iova.allocate(size: 3 * 4096, limit: 0xFFFF_FFFF)
        #expect(three == 0xFFFB_C000)
        #expect(iova.allocation(containing: three + 0x3000) == three...(three + 0x3FFF))
    }

    @Test func freedRangesComeBackFromThePerCPUCacheLastInFirstOut() throws {
        let iova = try allocator()
        let a = try iova.allocate(size: 4096, limit: 0xFFFF_FFFF, cpu: 1)
        let b = try iova.allocate(size: 4096, limit: 0xFFFF_FFFF, cpu: 1)
        try iova.free(address: a, size: 4096, cpu: 1)
        try iova.free(address: b, size: 4096, cpu: 1)
        #expect(try iova.allocate(size: 4096, limit: 0xFFFF_FFFF, cpu: 1) == b)
        #expect(try iova.allocate(size: 4096, limit: 0xFFFF_FFFF, cpu: 1) == a)
        // Another CPU's cache is separate: it gets a fresh range from the tree.
        try iova.free(address: a, size: 4096, cpu: 1)
        #expect(try iova.allocate(size: 4096, limit: 0xFFFF_FFFF, cpu: 0) != a)
        #expect(iova.statistics.cacheHits == 2)
    }

    @Test func reservedRangesAreSkippedAndFreeingTheUnknownIsAnError() throws {
        let iova = try LinuxIOVAAllocator(granule: 4096, space: 0...0xFFFF_FFFF)
        try iova.reserve(0xFFF0_0000...0xFFFF_FFFF)
        #expect(try iova.allocate(size: 4096, limit: 0xFFFF_FFFF) == 0xFFEF_F000)
        #expect(throws: IOVAError.notAllocated(address: 0xFFF0_0000, size: 4096)) {
            try iova.free(address: 0xFFF0_0000, size: 4096)
        }
        #expect(throws: IOVAError.exhausted(size: 1 << 33, limit: 0xFFFF_FFFF)) {
            try iova.allocate(size: 1 << 33, limit: 0xFFFF_FFFF)
        }
    }
}
