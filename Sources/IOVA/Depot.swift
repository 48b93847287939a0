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

    /// A full magazine of class `order`, preferably one that `owner` handed in: a thread that
    /// gets its own blocks back keeps to the page-table cache lines it already writes instead
    /// of sharing lines with another thread's blocks.
    mutating func takeFull(order: Int, preferring owner: UInt64) -> Magazine? {
        guard var index = full[order].indices.last else { return nil }
        while full[order][index].owner != owner {
            if index == 0 { return full[order].popLast() }
            index -= 1
        }
        full[order].swapAt(index, full[order].count - 1)
        return full[order].popLast()
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
