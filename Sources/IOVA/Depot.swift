/// The shared, bounded store of full magazines per size class (Linux's `iova_rcache` depot),
/// plus a pool of empty magazines so that exchanging one never allocates in steady state.
/// Lives behind its own lock; a thread takes it only when its own magazines of a class are
/// both empty (allocation) or both full (free).
struct Depot {
    var full: [ContiguousArray<Magazine>]
    var empty: ContiguousArray<Magazine> = []
    let limit: Int

    init(limit: Int) {
        self.limit = limit
        full = (0..<ThreadCache.classes).map { _ in
            var a = ContiguousArray<Magazine>()
            a.reserveCapacity(limit)
            return a
        }
        empty.reserveCapacity(2 * ThreadCache.classes + 2)
    }

    /// Ranges and granules held.
    func contents() -> (ranges: UInt64, granules: UInt64) {
        var ranges: UInt64 = 0
        var granules: UInt64 = 0
        for k in 0..<full.count {
            for m in full[k] {
                ranges += UInt64(m.count)
                granules += UInt64(m.count) << UInt64(k)
            }
        }
        return (ranges, granules)
    }

    /// An empty magazine from the pool, or a new one.
    mutating func takeEmpty() -> Magazine {
        empty.popLast() ?? Magazine.make()
    }

    mutating func giveEmpty(_ m: Magazine) {
        if empty.count < 2 * ThreadCache.classes + 2 { empty.append(m) } else { m.destroy() }
    }

    mutating func destroy() {
        for k in 0..<full.count {
            for m in full[k] { m.destroy() }
            full[k].removeAll()
        }
        for m in empty { m.destroy() }
        empty.removeAll()
    }
}
