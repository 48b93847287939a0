import Testing
@testable import IOVA

/// Long-run fragmentation: sizes of 1–64 pages with random lifetimes, all under a 32-bit
/// limit, with the window below 4 GiB squeezed to 256 MiB so that the allocator runs at its
/// capacity. Two identical runs on the same allocator must fail equally often and leave
/// the same largest free block: a leaked or lost range would show up as degradation.
@Suite struct FragmentationTests {
    struct RunResult {
        var attempts = 0
        var failures = 0
        var largestFreeSamples: [UInt64] = []
        var failureRate: Double { Double(failures) / Double(max(attempts, 1)) }
        var meanLargestFree: Double {
            Double(largestFreeSamples.reduce(0, +)) / Double(max(largestFreeSamples.count, 1))
        }
    }

    static let g: UInt64 = 4096
    static let window: UInt64 = 0x1000_0000  // 256 MiB usable below 4 GiB

    func run(_ a: IOVAAllocator, seed: UInt64, operations: Int) throws -> RunResult {
        var rng = SeededRandom(seed: seed)
        let maxLifetime = 3600
        var expiring = [[(UInt64, UInt64)]](repeating: [], count: maxLifetime + 1)
        var result = RunResult()
        for op in 0..<operations {
            let slot = op % expiring.count
            for (addr, size) in expiring[slot] { try a.free(address: addr, size: size) }
            expiring[slot].removeAll(keepingCapacity: true)
            let pages = 1 + rng.next() % 64
            let lifetime = 1 + Int(rng.next() % UInt64(maxLifetime))
            let size = pages * Self.g
            result.attempts += 1
            do {
                let addr = try a.allocate(size: size, limit: 0xFFFF_FFFF)
                #expect(addr + size - 1 < Self.window && addr >= 0x1000)
                expiring[(op + lifetime) % expiring.count].append((addr, size))
            } catch IOVAError.exhausted {
                result.failures += 1
            }
            if op % 5_000 == 4_999 { result.largestFreeSamples.append(a.statistics.largestFreeBlock) }
        }
        for bucket in expiring {
            for (addr, size) in bucket { try a.free(address: addr, size: size) }
        }
        return result
    }

    @Test(arguments: [(UInt64(2024), true), (UInt64(77), false)])
    func steadyStateDoesNotDegrade(seed: UInt64, caches: Bool) throws {
        let a = try IOVAAllocator(granule: Self.g, space: 0...0xFFFF_FFFF,
                                  options: IOVAOptions(cachesEnabled: caches))
        try a.reserve(Self.window...0xFFFF_FFFF)
        let total = a.statistics.freeBytes
        let first = try run(a, seed: seed, operations: 120_000)
        a.drainCaches()
        let afterFirst = a.statistics
        let second = try run(a, seed: seed, operations: 120_000)
        a.drainCaches()
        let afterSecond = a.statistics
        let context = "seed \(seed) caches \(caches): failure rate \(first.failureRate) then \(second.failureRate), mean largest free \(first.meanLargestFree) then \(second.meanLargestFree)"
        // The workload really is at capacity, but not hopeless.
        #expect(first.failureRate > 0.001 && first.failureRate < 0.5, "\(context)")
        // No degradation between the two runs.
        #expect(second.failureRate <= first.failureRate * 1.05 + 0.002, "\(context)")
        #expect(second.meanLargestFree >= first.meanLargestFree * 0.95, "\(context)")
        // Nothing leaked: everything is free again and merges back into whole blocks.
        for s in [afterFirst, afterSecond] {
            #expect(s.freeBytes == total && s.allocatedBytes == 0 && s.liveAllocations == 0, "\(context) \(s)")
            #expect(s.largestFreeBlock == Self.window - Self.g, "\(context) \(s)")
        }
        // The window below 4 GiB merged back: its top half is one free block again.
        let half = try a.allocate(size: Self.window / 2, limit: 0xFFFF_FFFF)
        #expect(half == Self.window / 2)
        try a.free(address: half, size: Self.window / 2)
        #expect(a.allocation(containing: 0x0FFF_F000) == nil)
        #expect(a.allocation(containing: 0x1000) == nil)
    }
}
