/// Linux's per-CPU IOVA range caches (iova_rcache): per size order, each CPU
/// holds a loaded and a previous magazine of 127 pfns; full magazines go to a
/// shared depot, from which an empty CPU takes one back. The pfns stay
/// allocated in the tree while cached.
struct LinuxIOVACaches {
    static let orders = 6
    static let magazineSize = 127

    private var loaded: [[[UInt64]]]
    private var previous: [[[UInt64]]]
    private var depot: [[[UInt64]]]

    init(cpus: Int) {
        loaded = Array(repeating: Array(repeating: [], count: cpus), count: Self.orders)
        previous = loaded
        depot = Array(repeating: [], count: Self.orders)
    }

    static func roundUpPowerOfTwo(_ value: UInt64) -> UInt64 {
        value <= 1 ? 1 : 1 << UInt64(64 - (value - 1).leadingZeroBitCount)
    }

    /// order_base_2.
    static func order(of pages: UInt64) -> Int { pages <= 1 ? 0 : 64 - (pages - 1).leadingZeroBitCount }

    private func slot(_ cpu: Int) -> Int { min(max(cpu, 0), loaded[0].count - 1) }

    /// A cached pfn no higher than `limit`, from `cpu`'s magazines or the depot.
    mutating func get(order: Int, limit: UInt64, cpu: Int) -> UInt64? {
        let c = slot(cpu)
        if loaded[order][c].isEmpty {
            if !previous[order][c].isEmpty {
                swap(&loaded[order][c], &previous[order][c])
            } else if let magazine = depot[order].popLast() {
                loaded[order][c] = magazine
            } else {
                return nil
            }
        }
        // The newest entry that fits; the last entry fills its slot.
        var index = loaded[order][c].count - 1
        while loaded[order][c][index] > limit {
            if index == 0 { return nil }
            index -= 1
        }
        let pfn = loaded[order][c][index]
        loaded[order][c][index] = loaded[order][c][loaded[order][c].count - 1]
        loaded[order][c].removeLast()
        return pfn
    }

    mutating func insert(order: Int, pfn: UInt64, cpu: Int) {
        let c = slot(cpu)
        if loaded[order][c].count >= Self.magazineSize {
            if previous[order][c].count < Self.magazineSize {
                swap(&loaded[order][c], &previous[order][c])
            } else {
                depot[order].append(loaded[order][c])
                loaded[order][c] = []
            }
        }
        loaded[order][c].append(pfn)
    }

    /// Every cached pfn, caches emptied (free_cpu_cached_iovas for each CPU, then free_global_cached_iovas).
    mutating func drainAll() -> [UInt64] {
        var all: [UInt64] = []
        for c in loaded[0].indices {
            for order in 0..<Self.orders {
                all += loaded[order][c] + previous[order][c]
                loaded[order][c] = []
                previous[order][c] = []
            }
        }
        for order in 0..<Self.orders {
            for magazine in depot[order] { all += magazine }
            depot[order] = []
        }
        return all
    }

    /// One magazine per order out of a depot holding more than one per CPU.
    mutating func trimDepot() -> [UInt64] {
        var freed: [UInt64] = []
        for order in 0..<Self.orders where depot[order].count > loaded[0].count {
            freed += depot[order].removeLast()
        }
        return freed
    }
}
