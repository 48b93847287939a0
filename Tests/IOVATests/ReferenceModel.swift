@testable import IOVA

/// A reproducible random source (SplitMix64): the same seed gives the same sequence.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The obviously-correct model: a sorted array of occupied granule intervals (live blocks and
/// reserved pieces). Linear where it must be; meant for checking, not speed.
struct ReferenceModel {
    struct Interval {
        var first: UInt64
        var last: UInt64
        /// Requested granules for a live block (0 for a reserved piece).
        var requested: UInt64
        var isReserved: Bool { requested == 0 }
    }

    let firstPfn: UInt64
    let lastPfn: UInt64
    private(set) var occupied: [Interval] = []
    private(set) var liveGranules: UInt64 = 0
    private(set) var reservedGranules: UInt64 = 0
    private(set) var liveCount = 0

    init(firstPfn: UInt64, lastPfn: UInt64) {
        self.firstPfn = firstPfn
        self.lastPfn = lastPfn
        if firstPfn == 0 { reserve(first: 0, last: 0) }
    }

    var freeGranules: UInt64 { (lastPfn - firstPfn + 1) - liveGranules - reservedGranules }

    /// Index of the first interval whose last granule is >= pfn.
    private func lowerIndex(_ pfn: UInt64) -> Int {
        var lo = 0, hi = occupied.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if occupied[mid].last < pfn { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    func interval(containing pfn: UInt64) -> Interval? {
        let i = lowerIndex(pfn)
        guard i < occupied.count, occupied[i].first <= pfn else { return nil }
        return occupied[i]
    }

    func overlapsAnything(first: UInt64, last: UInt64) -> Bool {
        let i = lowerIndex(first)
        return i < occupied.count && occupied[i].first <= last
    }

    func overlapsLive(first: UInt64, last: UInt64) -> Bool {
        var i = lowerIndex(first)
        while i < occupied.count, occupied[i].first <= last {
            if !occupied[i].isReserved { return true }
            i += 1
        }
        return false
    }

    /// The highest aligned block of `size` granules in a gap, ending at or below `limit`.
    func highestFit(size: UInt64, align: UInt64, limit: UInt64) -> UInt64? {
        let top = min(limit, lastPfn)
        guard top >= firstPfn else { return nil }
        var i = lowerIndex(top)  // first interval reaching top or beyond
        var gapLast = top
        if i < occupied.count, occupied[i].first <= top {
            if occupied[i].first == 0 { return nil }
            gapLast = occupied[i].first - 1
        }
        i -= 1
        while true {
            let gapFirst = i >= 0 ? occupied[i].last + 1 : firstPfn
            if gapLast >= gapFirst, gapLast - gapFirst + 1 >= size {
                let start = (gapLast - (size - 1)) & ~(align - 1)
                if start >= gapFirst { return start }
            }
            if i < 0 { return nil }
            if occupied[i].first == 0 || occupied[i].first - 1 < firstPfn { return nil }
            gapLast = occupied[i].first - 1
            i -= 1
        }
    }

    mutating func addLive(first: UInt64, granules blockLength: UInt64, requested: UInt64) {
        let i = lowerIndex(first)
        occupied.insert(Interval(first: first, last: first + blockLength - 1, requested: requested), at: i)
        liveGranules += blockLength
        liveCount += 1
    }

    mutating func removeLive(first: UInt64) {
        let i = lowerIndex(first)
        let iv = occupied.remove(at: i)
        liveGranules -= iv.last - iv.first + 1
        liveCount -= 1
    }

    /// Adds the uncovered parts of [first, last] as reserved pieces (caller checked no live overlap).
    mutating func reserve(first: UInt64, last: UInt64) {
        var cursor = first
        var pieces: [Interval] = []
        var i = lowerIndex(first)
        while cursor <= last {
            if i < occupied.count, occupied[i].first <= last {
                let iv = occupied[i]
                if iv.first > cursor { pieces.append(Interval(first: cursor, last: iv.first - 1, requested: 0)) }
                if iv.last >= last { cursor = last &+ 1; if last == .max { break } ; break }
                cursor = iv.last + 1
                i += 1
            } else {
                pieces.append(Interval(first: cursor, last: last, requested: 0))
                break
            }
        }
        for p in pieces {
            occupied.insert(p, at: lowerIndex(p.first))
            reservedGranules += p.last - p.first + 1
        }
    }

    /// The merged reserved hole around pfn (consecutive reserved pieces).
    func reservedHole(containing pfn: UInt64) -> (UInt64, UInt64)? {
        var i = lowerIndex(pfn)
        guard i < occupied.count, occupied[i].first <= pfn, occupied[i].isReserved else { return nil }
        var lo = occupied[i].first, hi = occupied[i].last
        var j = i + 1
        while j < occupied.count, occupied[j].isReserved, occupied[j].first == hi + 1 { hi = occupied[j].last; j += 1 }
        i -= 1
        while i >= 0, occupied[i].isReserved, occupied[i].last + 1 == lo { lo = occupied[i].first; i -= 1 }
        return (lo, hi)
    }
}
