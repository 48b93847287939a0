import Testing
@testable import IOVA

/// Direct checks of each public operation and its errors.
@Suite struct BasicTests {
    static let g: UInt64 = 4096

    func make(_ space: ClosedRange<UInt64> = 0...0xFFFF_FFFF, caches: Bool = true) throws -> IOVAAllocator {
        try IOVAAllocator(granule: Self.g, space: space, options: IOVAOptions(cachesEnabled: caches))
    }

    @Test func invalidInit() {
        #expect(throws: IOVAError.invalidGranule(0)) { try IOVAAllocator(granule: 0, space: 0...0xFFFF) }
        #expect(throws: IOVAError.invalidGranule(3000)) { try IOVAAllocator(granule: 3000, space: 0...0xFFFF) }
        #expect(throws: IOVAError.invalidRange(first: 1, last: 4095)) { try IOVAAllocator(granule: 4096, space: 1...4095) }
        #expect(throws: IOVAError.invalidRange(first: 0, last: 100)) { try IOVAAllocator(granule: 4096, space: 0...100) }
        #expect(throws: IOVAError.spaceTooLarge(granules: UInt64.max)) { try IOVAAllocator(granule: 1, space: 1...UInt64.max) }
        #expect(IOVAError.exhausted(size: 0x2000, limit: 0xFFFF_FFFF).description.contains("0x2000"))
        #expect(IOVAError.exhausted(size: 0x2000, limit: 0xFFFF_FFFF).description.contains("0xffffffff"))
    }

    @Test func wholeSixtyFourBitSpace() throws {
        let a = try IOVAAllocator(granule: 4096, space: 0...UInt64.max)
        let top = try a.allocate(size: 4096, limit: UInt64.max)
        #expect(top == UInt64.max - 4095)
        #expect(a.allocation(containing: UInt64.max) == top...UInt64.max)
        try a.free(address: top, size: 4096)
        let s = a.statistics
        #expect(s.reservedBytes == 4096)
        #expect(s.freeBytes == 0 &- 4096)
    }

    /// The live table's leaves grow with the space (64 KiB up to 2^36 granules, up to 4 GiB of
    /// reserved-not-committed bytes at 2^52): frees are still validated at both ends.
    @Test(arguments: [UInt64(0xFFFF_FFFF_FFFF), (UInt64(1) << 57) - 1, UInt64.max] as [UInt64])
    func cachedFreesValidatedAcrossWideSpaces(last: UInt64) throws {
        let a = try IOVAAllocator(granule: 4096, space: 0...last)
        for limit in [UInt64(0x1_FFFF), last] {
            let block = try a.allocate(size: 2 * 4096, limit: limit)
            #expect(throws: IOVAError.sizeMismatch(address: block, allocated: 2 * 4096, given: 4096)) {
                try a.free(address: block, size: 4096)
            }
            try a.free(address: block, size: 2 * 4096)
            #expect(throws: IOVAError.notAllocated(address: block, size: 2 * 4096)) {
                try a.free(address: block, size: 2 * 4096)
            }
            #expect(try a.allocate(size: 2 * 4096, limit: limit) == block)
        }
    }

    @Test func roundingInward() throws {
        let a = try IOVAAllocator(granule: 4096, space: 100...0x10_0fff)
        #expect(a.space == 4096...0x10_0fff)
        #expect(a.statistics.reservedBytes == 0)
        #expect(a.statistics.freeBytes == 0x10_0000)
    }

    @Test func addressZeroReserved() throws {
        let a = try make(0...0x3fff)  // four granules
        #expect(a.reservedRange(containing: 0) == 0...0xfff)
        var got: [UInt64] = []
        for _ in 0..<3 { got.append(try a.allocate(size: 4096, limit: 0x3fff)) }
        #expect(Set(got) == [0x1000, 0x2000, 0x3000])
        #expect(throws: IOVAError.exhausted(size: 4096, limit: 0x3fff)) { try a.allocate(size: 4096, limit: 0x3fff) }
        #expect(a.statistics.failures == 1)
    }

    @Test func topDownAndAligned() throws {
        let a = try make(caches: false)
        #expect(try a.allocate(size: 4096, limit: 0xFFFF_FFFF) == 0xFFFF_F000)
        #expect(try a.allocate(size: 3 * 4096, limit: 0xFFFF_FFFF) == 0xFFFF_C000)
        #expect(try a.allocate(size: 1, limit: 0x1234_5678) == 0x1234_4000)
        let unaligned = try a.allocate(size: 3 * 4096, limit: 0x8000_0fff, sizeAligned: false)
        #expect(unaligned == 0x8000_1000 - 0x3000)
        let big = try a.allocate(size: 0x10_0000, limit: 0xFFFF_FFFF)
        #expect(big % 0x10_0000 == 0)
    }

    @Test func smallSizesUseWholePowerOfTwoBlocks() throws {
        let a = try make()
        let x = try a.allocate(size: 3 * 4096, limit: 0xFFFF_FFFF)
        #expect(x % 0x4000 == 0)
        #expect(a.allocation(containing: x) == x...(x + 0x3fff))
        #expect(a.statistics.allocatedBytes == 0x4000)
        #expect(throws: IOVAError.sizeMismatch(address: x, allocated: 0x3000, given: 0x4000)) {
            try a.free(address: x, size: 0x4000)
        }
        #expect(a.allocatedSize(at: x) == 0x3000)
        #expect(a.allocatedSize(at: x + 0x1000) == nil)
        try a.free(address: x, size: 0x2001)  // same granule count
        #expect(a.allocatedSize(at: x) == nil)
        let big = try a.allocate(size: 0x10_1000, limit: 0xFFFF_FFFF)
        #expect(a.allocatedSize(at: big) == 0x10_1000)
        try a.free(address: big, size: 0x10_1000)
        #expect(a.allocatedSize(at: big) == nil)
        #expect(a.statistics.allocatedBytes == 0)
        #expect(a.allocation(containing: x) == x...(x + 0x3fff))  // cached, not yet reused
        a.drainCaches()
        #expect(a.allocation(containing: x) == nil)
    }

    @Test(arguments: [true, false]) func wrongFreesChangeNothing(caches: Bool) throws {
        let a = try make(caches: caches)
        let x = try a.allocate(size: 4096, limit: 0xFFFF_FFFF)
        let y = try a.allocate(size: 0x40_0000, limit: 0xFFFF_FFFF)
        let before = a.statistics
        #expect(throws: IOVAError.zeroSize) { try a.free(address: x, size: 0) }
        #expect(throws: IOVAError.outsideSpace(address: x + 1)) { try a.free(address: x + 1, size: 4096) }
        #expect(throws: IOVAError.outsideSpace(address: 0x1_0000_0000)) { try a.free(address: 0x1_0000_0000, size: 4096) }
        #expect(throws: IOVAError.notAllocated(address: 0x5000, size: 4096)) { try a.free(address: 0x5000, size: 4096) }
        #expect(throws: IOVAError.notAllocated(address: 0, size: 4096)) { try a.free(address: 0, size: 4096) }
        #expect(throws: IOVAError.notAllocated(address: y + 4096, size: 4096)) { try a.free(address: y + 4096, size: 4096) }
        #expect(throws: IOVAError.sizeMismatch(address: y, allocated: 0x40_0000, given: 4096)) { try a.free(address: y, size: 4096) }
        #expect(throws: IOVAError.sizeMismatch(address: x, allocated: 4096, given: 0x40_0000)) { try a.free(address: x, size: 0x40_0000) }
        #expect(throws: IOVAError.sizeMismatch(address: x, allocated: 4096, given: 8192)) { try a.free(address: x, size: 8192) }
        #expect(a.statistics == before)
        try a.free(address: x, size: 4096)
        try a.free(address: y, size: 0x40_0000)
        let after = a.statistics
        #expect(throws: IOVAError.notAllocated(address: x, size: 4096)) { try a.free(address: x, size: 4096) }
        #expect(throws: IOVAError.notAllocated(address: y, size: 0x40_0000)) { try a.free(address: y, size: 0x40_0000) }
        #expect(a.statistics == after)
        #expect(after.allocatedBytes == 0 && after.liveAllocations == 0)
    }

    @Test func badAllocations() throws {
        let a = try make(0x1000_0000...0x1FFF_FFFF)
        #expect(throws: IOVAError.zeroSize) { try a.allocate(size: 0, limit: .max) }
        #expect(throws: IOVAError.exhausted(size: 4096, limit: 0xFFF_FFFF)) { try a.allocate(size: 4096, limit: 0xFFF_FFFF) }
        #expect(throws: IOVAError.exhausted(size: 4096, limit: 0)) { try a.allocate(size: 4096, limit: 0) }
        #expect(throws: IOVAError.exhausted(size: .max, limit: .max)) { try a.allocate(size: .max, limit: .max) }
        #expect(throws: IOVAError.exhausted(size: .max, limit: .max)) { try a.allocate(size: .max, limit: .max, sizeAligned: false) }
        #expect(throws: IOVAError.exhausted(size: 0x1000_0001, limit: .max)) { try a.allocate(size: 0x1000_0001, limit: .max) }
        let whole = try a.allocate(size: 0x1000_0000, limit: .max)
        #expect(whole == 0x1000_0000)
        try a.free(address: whole, size: 0x1000_0000)
        #expect(a.statistics.failures == 5)
    }

    @Test func reserveMergesAndBlocks() throws {
        let a = try make(caches: false)
        try a.reserve(0xFEE0_0000...0xFEEF_FFFF)
        try a.reserve(0xFEF0_0000...0xFEF0_0001)        // adjacent, rounded outward
        try a.reserve(0xFED0_0000...0xFEE0_0fff)        // overlapping
        #expect(a.reservedRange(containing: 0xFEE8_0000) == 0xFED0_0000...0xFEF0_0fff)
        try a.reserve(0x2_0000_0000...0x3_0000_0000)    // outside: no-op
        #expect(a.statistics.reservedBytes == 4096 + 0xFEF0_1000 - 0xFED0_0000)
        let x = try a.allocate(size: 0x100_0000, limit: 0xFFFF_FFFF)
        #expect(x == 0xFF00_0000)
        let y = try a.allocate(size: 0x100_0000, limit: 0xFFFF_FFFF)
        #expect(y == 0xFD00_0000)  // skips the hole
        let before = a.statistics
        #expect(throws: IOVAError.reserveOverlapsAllocation(first: 0xFD00_0000, last: 0xFD00_0fff)) {
            try a.reserve(0xFD00_0000...0xFD00_0000)
        }
        #expect(a.statistics == before)
        #expect(a.allocation(containing: 0xFF12_3456) == 0xFF00_0000...0xFFFF_FFFF)
    }

    @Test func reserveOverCachedRangeDrainsIt() throws {
        let a = try make()
        let x = try a.allocate(size: 4096, limit: 0xFFFF_FFFF)
        try a.free(address: x, size: 4096)
        try a.reserve(x...x)
        #expect(a.reservedRange(containing: x) == x...(x + 4095))
        let y = try a.allocate(size: 4096, limit: 0xFFFF_FFFF)
        #expect(y != x)
    }

    @Test(arguments: [true, false]) func preferredLimit(caches: Bool) throws {
        let a = try make(0...0xFF_FFFF_FFFF, caches: caches)
        let x = try a.allocate(size: 8192, limit: 0xFF_FFFF_FFFF, preferredLimit: 0xFFFF_FFFF)
        #expect(x <= 0xFFFF_E000)
        let y = try a.allocate(size: 8192, limit: 0xFF_FFFF_FFFF)
        #expect(y == 0xFF_FFFF_E000)
        try a.free(address: x, size: 8192)
        try a.reserve(0x1000...0xFFFF_FFFF)
        let z = try a.allocate(size: 8192, limit: 0xFF_FFFF_FFFF, preferredLimit: 0xFFFF_FFFF)
        #expect(z > 0xFFFF_FFFF)
        let s = a.statistics
        #expect(s.preferredHits == 1)
        #expect(s.preferredFallbacks == 1)
    }

    @Test func cacheHitsAndExhaustionDrain() throws {
        let a = try make(0...0x7fff)  // 7 usable granules
        var xs: [UInt64] = []
        for _ in 0..<7 { xs.append(try a.allocate(size: 4096, limit: .max)) }
        for x in xs { try a.free(address: x, size: 4096) }
        // All seven are cached as single granules; a two-granule block needs a drain.
        let two = try a.allocate(size: 8192, limit: .max)
        #expect(two % 8192 == 0)
        let s = a.statistics
        #expect(s.exhaustionRetries == 1)
        #expect(s.allocatedBytes == 8192 && s.freeBytes == 5 * 4096 && s.cachedBytes == 0)
        let one = try a.allocate(size: 4096, limit: .max)
        try a.free(address: one, size: 4096)
        _ = try a.allocate(size: 4096, limit: .max)
        #expect(a.statistics.cacheHits == 1)
    }

    /// The hot path's cache-only allocation refills an empty magazine from the thread's other
    /// one and from the depot, and only gives up (nil, nothing changed) when both are dry.
    @Test func cacheOnlyAllocationRefillsFromTheOtherMagazineAndTheDepot() throws {
        let a = try make(0...0xFFF_FFFF)
        var blocks: [UInt64] = []
        for _ in 0..<300 { blocks.append(try a.allocate(size: 4096, limit: .max)) }
        for block in blocks { try a.freeExclusively(address: block, size: 4096) }
        let before = a.statistics
        #expect(before.cachedBytes == 300 * 4096)
        var again: Set<UInt64> = []
        for _ in 0..<300 {
            guard let block = a.allocateFromCache(size: 4096, limit: .max) else { break }
            again.insert(block)
        }
        #expect(again == Set(blocks))
        #expect(a.allocateFromCache(size: 4096, limit: .max) == nil)
        let after = a.statistics
        #expect(after.cacheHits == before.cacheHits + 300)
        #expect(after.cacheMisses == before.cacheMisses)
        #expect(after.cachedBytes == 0 && after.allocatedBytes == 300 * 4096)
    }

    @Test func manyAllocatorsKeepSeparateCaches() throws {
        let a = try make()
        let b = try make()
        let x = try a.allocate(size: 4096, limit: .max)
        try a.free(address: x, size: 4096)
        let y = try b.allocate(size: 4096, limit: .max)
        #expect(a.statistics.cachedBytes == 4096)
        #expect(b.statistics.cachedBytes == 0)
        #expect(x == y)  // same address, separate spaces
        try b.free(address: y, size: 4096)
        for _ in 0..<100 {
            let c = try make()
            let z = try c.allocate(size: 4096, limit: .max)
            try c.free(address: z, size: 4096)
        }
        #expect(try a.allocate(size: 4096, limit: .max) == x)
    }
}
