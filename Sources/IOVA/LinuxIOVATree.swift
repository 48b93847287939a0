/// The state of a ``LinuxIOVAAllocator``: the ordered ranges (Linux's rbtree,
/// anchored by a node at the top pfn), the two cached nodes and the caches.
struct LinuxIOVAState: ~Copyable {
    var nodes: [LinuxIOVANode] = [LinuxIOVANode(lo: .max, hi: .max, reserved: true)]
    /// The cached nodes, named by their first pfn (every node has a distinct one).
    var cached32Lo: UInt64 = .max
    var cachedLo: UInt64 = .max
    var max32AllocSize: UInt64
    let dma32Pfn: UInt64
    /// Linux's pci_32bit_workaround: cleared for good the first time the 32-bit try fails.
    var tryPreferred = true
    var caches: LinuxIOVACaches
    var statistics = LinuxIOVAStatistics()

    init(dma32Pfn: UInt64, cpus: Int) {
        self.dma32Pfn = dma32Pfn
        max32AllocSize = dma32Pfn
        caches = LinuxIOVACaches(cpus: cpus)
    }

    /// The last node whose first pfn is at most `pfn`, if it also covers `pfn`.
    func index(containing pfn: UInt64) -> Int? {
        var low = 0, high = nodes.count
        while low < high {
            let middle = (low + high) / 2
            if nodes[middle].lo <= pfn { low = middle + 1 } else { high = middle }
        }
        guard low > 0, nodes[low - 1].hi >= pfn else { return nil }
        return low - 1
    }

    private func index(startingAt lo: UInt64) -> Int {
        if let found = index(containing: lo), nodes[found].lo == lo { return found }
        return nodes.count - 1 // the anchor
    }

    mutating func reserve(_ lo: UInt64, _ hi: UInt64) throws(IOVAError) {
        var first = lo, last = hi
        var overlapping: [Int] = []
        for (index, node) in nodes.enumerated() where node.lo <= hi && node.hi >= lo && index < nodes.count - 1 {
            guard node.reserved else { throw .reserveOverlapsAllocation(first: node.lo, last: node.hi) }
            overlapping.append(index)
            first = min(first, node.lo)
            last = max(last, node.hi)
        }
        for index in overlapping.reversed() { nodes.remove(at: index) }
        let position = nodes.firstIndex { $0.lo > first } ?? nodes.count - 1
        nodes.insert(LinuxIOVANode(lo: first, hi: min(last, UInt64.max - 1), reserved: true), at: position)
    }

    /// alloc_iova_fast: the size is rounded up to a power of two when cacheable, then the cache, then the tree.
    mutating func allocateFast(_ pages: UInt64, limitPfn: UInt64, flush: Bool, cpu: Int, startPfn: UInt64) -> UInt64? {
        var size = pages
        if size < 1 << (LinuxIOVACaches.orders - 1) { size = LinuxIOVACaches.roundUpPowerOfTwo(size) }
        let order = LinuxIOVACaches.order(of: size)
        if order < LinuxIOVACaches.orders, limitPfn + 1 >= size,
           let pfn = caches.get(order: order, limit: limitPfn + 1 - size, cpu: cpu) {
            statistics.cacheHits += 1
            return pfn
        }
        statistics.cacheMisses += 1
        if let pfn = allocateFromTree(size, limitPfn: limitPfn + 1, startPfn: startPfn) { return pfn }
        guard flush else { return nil }
        statistics.cacheFlushes += 1
        for pfn in caches.drainAll() { removeNode(startingAt: pfn) }
        return allocateFromTree(size, limitPfn: limitPfn + 1, startPfn: startPfn)
    }

    /// The top-down search below the exclusive `limitPfn`, from the cached node, retrying from the limit.
    mutating func allocateFromTree(_ size: UInt64, limitPfn: UInt64, startPfn: UInt64) -> UInt64? {
        let sizeMinusOne = size - 1
        let alignMask: UInt64 = sizeMinusOne == 0 ? .max : ~UInt64(0) << UInt64(64 - sizeMinusOne.leadingZeroBitCount)
        var high = limitPfn, low = startPfn
        if limitPfn <= dma32Pfn, size >= max32AllocSize { return nil }
        var current: Int? = index(startingAt: limitPfn <= dma32Pfn ? cached32Lo : cachedLo)
        let retryPfn = nodes[current!].hi
        var previous = current!
        var candidate: UInt64 = 0
        var retried = false
        while true {
            repeat {
                high = min(high, nodes[current!].lo)
                candidate = (high &- size) & alignMask
                previous = current!
                current = current! > 0 ? current! - 1 : nil
            } while current != nil && candidate <= nodes[current!].hi && candidate >= low
            if high < size || candidate < low {
                if !retried, low == startPfn, retryPfn < limitPfn {
                    retried = true
                    high = limitPfn
                    low = retryPfn + 1
                    current = nodes.firstIndex { $0.hi >= limitPfn } ?? nodes.count - 1
                    continue
                }
                max32AllocSize = size
                return nil
            }
            break
        }
        nodes.insert(LinuxIOVANode(lo: candidate, hi: candidate + sizeMinusOne, reserved: false), at: previous)
        if candidate + sizeMinusOne < dma32Pfn { cached32Lo = candidate } else { cachedLo = candidate }
        statistics.treeAllocations += 1
        return candidate
    }

    /// free_iova_fast: into the cache when cacheable, else out of the tree.
    mutating func freeFast(_ pfn: UInt64, pages: UInt64, cpu: Int) {
        let order = LinuxIOVACaches.order(of: pages)
        if order < LinuxIOVACaches.orders {
            caches.insert(order: order, pfn: pfn, cpu: cpu)
            return
        }
        removeNode(startingAt: pfn)
    }

    /// remove_iova with the cached-node update of __cached_rbnode_delete_update.
    mutating func removeNode(startingAt pfn: UInt64) {
        guard let index = index(containing: pfn), index < nodes.count - 1 else { return }
        let freed = nodes[index]
        let next = nodes[index + 1].lo
        let cached32 = nodes[self.index(startingAt: cached32Lo)]
        if freed.lo == cached32.lo || (freed.hi < dma32Pfn && freed.lo >= cached32.lo) {
            cached32Lo = next
            max32AllocSize = dma32Pfn
        }
        if freed.lo >= nodes[self.index(startingAt: cachedLo)].lo { cachedLo = next }
        nodes.remove(at: index)
    }

    mutating func trimDepot() {
        for pfn in caches.trimDepot() { removeNode(startingAt: pfn) }
    }
}
