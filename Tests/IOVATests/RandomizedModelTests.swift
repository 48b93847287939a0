import Testing
@testable import IOVA

/// Seeded random sequences of allocate / free / reserve / lookups, checked step by step
/// against ``ReferenceModel``. A failure names the seed and the operation index; rerun one seed
/// with `swift test --filter RandomizedModelTests` after narrowing the arguments.
@Suite struct RandomizedModelTests {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let seedsWithCaches: [UInt64] = [1, 2, 3, 0xDEAD_BEEF, 42, 7777, 123_456_789, 99]
    static let seedsWithoutCaches: [UInt64] = [11, 12, 13, 14]

    @Test(arguments: seedsWithCaches)
    func withCaches(seed: UInt64) throws {
        try run(seed: seed, caches: true, operations: 40_000)
    }

    @Test(arguments: seedsWithoutCaches)
    func withoutCaches(seed: UInt64) throws {
        try run(seed: seed, caches: false, operations: 40_000)
    }

    func run(seed: UInt64, caches: Bool, operations: Int) throws {
        do {
            try body(seed: seed, caches: caches, operations: operations)
        } catch let f as Failure {
            Issue.record("seed \(seed) (caches: \(caches)): \(f.description)")
        }
    }

    func body(seed: UInt64, caches: Bool, operations: Int) throws {
        var rng = SeededRandom(seed: seed)
        let shift: UInt64 = 12
        let g: UInt64 = 1 << shift
        // Small spaces so that exhaustion and fragmentation happen; half of them start at 0.
        let base: UInt64 = seed % 2 == 0 ? 0 : 0x1000_0000
        let granules: UInt64 = 1 << (12 + rng.next() % 3)
        let a = try IOVAAllocator(granule: g, space: base...(base + granules * g - 1),
                                  options: IOVAOptions(cachesEnabled: caches))
        var model = ReferenceModel(firstPfn: base >> shift, lastPfn: (base >> shift) + granules - 1)
        var live: [(address: UInt64, size: UInt64)] = []
        var recentlyFreed: [UInt64] = []

        func fail(_ op: Int, _ what: String) -> Failure { Failure(description: "op \(op): \(what)") }
        func randomAddress() -> UInt64 {
            switch rng.next() % 4 {
            case 0: return rng.next()
            case 1: return base + (rng.next() % (granules * g))
            default: return base + (rng.next() % granules) * g
            }
        }
        func checkStatistics(_ op: Int) throws {
            let s = a.statistics
            guard s.allocatedBytes == model.liveGranules << shift,
                  s.freeBytes == model.freeGranules << shift,
                  s.reservedBytes == model.reservedGranules << shift,
                  s.liveAllocations == UInt64(model.liveCount)
            else { throw fail(op, "statistics \(s) disagree with model live \(model.liveGranules) free \(model.freeGranules) reserved \(model.reservedGranules) count \(model.liveCount)") }
        }

        for op in 0..<operations {
            let dice = rng.next() % 100
            if dice < 45 {
                // allocate
                let kind = rng.next() % 100
                let gr: UInt64 = kind < 80 ? 1 + rng.next() % 32 : (kind < 97 ? 33 + rng.next() % 480 : 1 + rng.next() % granules)
                let size = gr * g - rng.next() % g
                let aligned = rng.next() % 10 != 0
                let limit: UInt64 = rng.next() % 10 < 7 ? UInt64.max : base + rng.next() % (granules * g)
                let preferred: UInt64? = rng.next() % 5 == 0 ? base + rng.next() % (granules * g) : nil
                let pow2 = gr == 1 ? 1 : UInt64(1) << UInt64(64 - (gr - 1).leadingZeroBitCount)
                let cached = caches && aligned && gr <= 32
                let block = cached ? pow2 : gr
                let align = aligned ? pow2 : 1
                let limitPfn = limit == .max ? model.lastPfn : ((limit + 1) >> shift) &- 1
                let expectedFit = limit != .max && (limit + 1) >> shift == 0 ? nil : model.highestFit(size: block, align: align, limit: limitPfn)
                do {
                    let addr = try a.allocate(size: size, limit: limit, preferredLimit: preferred, sizeAligned: aligned)
                    let pfn = addr >> shift
                    guard addr & (g - 1) == 0, pfn % align == 0 else { throw fail(op, "misaligned \(hex(addr)) for \(gr) granules") }
                    guard pfn >= model.firstPfn, pfn + block - 1 <= model.lastPfn, pfn + block - 1 <= limitPfn
                    else { throw fail(op, "\(hex(addr)) + \(block) granules outside space or limit \(hex(limit))") }
                    guard !model.overlapsAnything(first: pfn, last: pfn + block - 1)
                    else { throw fail(op, "\(hex(addr)) + \(block) granules overlaps a live block or hole") }
                    if !caches {
                        var want = expectedFit
                        if let p = preferred, p < limit {
                            let pp = ((p + 1) >> shift) &- 1
                            if (p + 1) >> shift != 0, let f = model.highestFit(size: block, align: align, limit: pp) { want = f }
                        }
                        guard want == pfn else { throw fail(op, "placed \(hex(addr)), model's highest fit is \(want.map { hex($0 << shift) } ?? "none")") }
                    }
                    model.addLive(first: pfn, granules: block, requested: gr)
                    live.append((addr, size))
                } catch let e as IOVAError {
                    guard e == .exhausted(size: size, limit: limit) else { throw fail(op, "unexpected \(e)") }
                    guard expectedFit == nil else { throw fail(op, "failed \(gr) granules below \(hex(limit)) but \(hex(expectedFit! << shift)) fits") }
                }
            } else if dice < 80 {
                guard !live.isEmpty else { continue }
                let i = Int(rng.next() % UInt64(live.count))
                let (addr, size) = live.swapAt(i, live.count - 1) == () ? live.removeLast() : live.removeLast()
                let gr = ((size - 1) >> shift) + 1
                let other = gr * g - rng.next() % g  // same granule count, maybe other bytes
                do { try a.free(address: addr, size: other) } catch { throw fail(op, "free(\(hex(addr)), \(gr) granules) threw \(error)") }
                model.removeLive(first: addr >> shift)
                recentlyFreed.append(addr)
                if recentlyFreed.count > 64 { recentlyFreed.removeFirst() }
            } else if dice < 90 {
                // A wrong free: must throw the right error and change nothing.
                var addr: UInt64
                var size: UInt64
                switch rng.next() % 5 {
                case 0: addr = recentlyFreed.randomElement(using: &rng) ?? randomAddress(); size = (1 + rng.next() % 32) * g
                case 1 where !live.isEmpty:
                    let l = live.randomElement(using: &rng)!
                    addr = l.address; size = l.size + g * (1 + rng.next() % 4)
                case 2 where !live.isEmpty:
                    let l = live.randomElement(using: &rng)!
                    addr = l.address + g * (rng.next() % 4); size = g
                case 3: addr = randomAddress(); size = rng.next() % 3 == 0 ? 0 : (1 + rng.next() % 64) * g
                default: addr = randomAddress(); size = 1 + rng.next() % (1 << 20)
                }
                let pfn = addr >> shift
                let gr = size == 0 ? 0 : ((size - 1) >> shift) + 1
                let expected: IOVAError?
                if size == 0 {
                    expected = .zeroSize
                } else if addr & (g - 1) != 0 || pfn < model.firstPfn || pfn > model.lastPfn {
                    expected = .outsideSpace(address: addr)
                } else if let iv = model.interval(containing: pfn), iv.first == pfn, !iv.isReserved {
                    expected = iv.requested == gr ? nil : .sizeMismatch(address: addr, allocated: iv.requested << shift, given: size)
                } else {
                    expected = .notAllocated(address: addr, size: size)
                }
                guard let expected else { continue }
                let before = a.statistics
                do {
                    try a.free(address: addr, size: size)
                    throw fail(op, "wrong free(\(hex(addr)), \(hex(size))) succeeded")
                } catch let e as IOVAError {
                    guard e == expected else { throw fail(op, "free(\(hex(addr)), \(hex(size))) threw \(e), expected \(expected)") }
                }
                guard a.statistics == before else { throw fail(op, "failed free changed statistics") }
            } else if dice < 95 {
                let first = base + rng.next() % (granules * g)
                let length = 1 + rng.next() % (8 * g)
                let last = min(first + length, base + granules * g + 4 * g)
                let fp = first >> shift, lp = min(last >> shift, model.lastPfn)
                do {
                    try a.reserve(first...last)
                    guard !model.overlapsLive(first: fp, last: lp) else { throw fail(op, "reserve over a live block succeeded") }
                    model.reserve(first: fp, last: lp)
                } catch let e as IOVAError {
                    guard e == .reserveOverlapsAllocation(first: fp << shift, last: (lp << shift) | (g - 1)),
                          model.overlapsLive(first: fp, last: lp) else { throw fail(op, "reserve threw \(e)") }
                }
            } else if dice < 99 {
                let addr = randomAddress()
                let pfn = addr >> shift
                let got = a.allocation(containing: addr)
                if pfn >= model.firstPfn, pfn <= model.lastPfn, let iv = model.interval(containing: pfn) {
                    if iv.isReserved {
                        guard got == nil else { throw fail(op, "allocation(containing:) found \(got!) in a hole") }
                        let (lo, hi) = model.reservedHole(containing: pfn)!
                        guard a.reservedRange(containing: addr) == (lo << shift)...((hi << shift) | (g - 1))
                        else { throw fail(op, "reservedRange(containing: \(hex(addr))) wrong") }
                    } else {
                        guard got == (iv.first << shift)...((iv.last << shift) | (g - 1))
                        else { throw fail(op, "allocation(containing: \(hex(addr))) = \(String(describing: got))") }
                        guard a.allocatedSize(at: iv.first << shift) == iv.requested << shift
                        else { throw fail(op, "allocatedSize(at: \(hex(iv.first << shift))) wrong") }
                    }
                } else if let got {
                    // Only a cached block (free in the model) may be reported.
                    guard caches, !model.overlapsAnything(first: got.lowerBound >> shift, last: got.upperBound >> shift)
                    else { throw fail(op, "allocation(containing: \(hex(addr))) = \(got) over model's free space") }
                    guard a.allocatedSize(at: got.lowerBound) == nil
                    else { throw fail(op, "allocatedSize(at:) reports a cached block as live") }
                }
            } else {
                if rng.next() % 4 == 0 { a.drainCaches() }
                try checkStatistics(op)
            }
        }
        try checkStatistics(operations)
        for (addr, size) in live {
            try a.free(address: addr, size: size)
            model.removeLive(first: addr >> shift)
        }
        a.drainCaches()
        try checkStatistics(operations + 1)
        let s = a.statistics
        guard s.cachedBytes == 0, s.liveAllocations == 0 else { throw fail(operations + 1, "not empty: \(s)") }
        // The tree's largest free range equals the model's largest gap.
        var largest: UInt64 = 0
        var previousLast: UInt64? = nil
        for iv in model.occupied + [ReferenceModel.Interval(first: model.lastPfn + 1, last: model.lastPfn + 1, requested: 0)] {
            let gapFirst = previousLast.map { $0 + 1 } ?? model.firstPfn
            if iv.first > gapFirst { largest = max(largest, iv.first - gapFirst) }
            previousLast = iv.last
        }
        guard s.largestFreeBlock == largest << shift else { throw fail(operations + 1, "largest free \(s.largestFreeBlock) vs \(largest << shift)") }
    }
}
