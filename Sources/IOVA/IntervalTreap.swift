/// An ordered set of disjoint granule intervals `[start, start + length)`, keyed by `start`,
/// kept as a treap in flat arrays. Each node also stores the largest `length` in its subtree,
/// so a top-down search for a free range that fits skips whole subtrees of small gaps.
/// Priorities are a hash of the key, so shapes are deterministic and balanced in expectation.
///
/// Not thread-safe: the owner keeps it behind a lock. Node slots are recycled; the arrays only
/// grow when the set reaches a new high-water mark.
struct IntervalTreap {
    struct Node {
        var start: UInt64
        var length: UInt64
        var maxLength: UInt64
        var left: Int32
        var right: Int32
        var priority: UInt32
        /// Caller payload (the range tree stores the requested size and flags here).
        var tag: UInt32
    }

    private(set) var nodes: ContiguousArray<Node> = []
    private var freeSlots: ContiguousArray<Int32> = []
    private(set) var root: Int32 = -1
    private(set) var count: Int = 0

    init() {}

    /// Largest interval length in the whole set (0 when empty).
    var largestLength: UInt64 { root < 0 ? 0 : nodes[Int(root)].maxLength }

    // MARK: queries

    /// The interval with the greatest start `<= key`.
    func floor(_ key: UInt64) -> Node? {
        var t = root
        var best: Int32 = -1
        while t >= 0 {
            let n = nodes[Int(t)]
            if n.start <= key { best = t; t = n.right } else { t = n.left }
        }
        return best < 0 ? nil : nodes[Int(best)]
    }

    /// The interval with the smallest start `> key`.
    func successor(_ key: UInt64) -> Node? {
        var t = root
        var best: Int32 = -1
        while t >= 0 {
            let n = nodes[Int(t)]
            if n.start > key { best = t; t = n.left } else { t = n.right }
        }
        return best < 0 ? nil : nodes[Int(best)]
    }

    /// The highest-placed block of `size` granules, aligned to `align` (a power of two), that lies
    /// inside one interval, starts at or above `floorKey` and ends at or below `limit`.
    /// Returns the block's start and the interval holding it.
    func highestFit(size: UInt64, align: UInt64, floorKey: UInt64, limit: UInt64) -> (block: UInt64, node: Node)? {
        fit(root, size: size, mask: align &- 1, floorKey: floorKey, limit: limit)
    }

    private func fit(_ t: Int32, size: UInt64, mask: UInt64, floorKey: UInt64, limit: UInt64) -> (block: UInt64, node: Node)? {
        if t < 0 { return nil }
        let n = nodes[Int(t)]
        if n.maxLength < size { return nil }
        if n.start > limit { return fit(n.left, size: size, mask: mask, floorKey: floorKey, limit: limit) }
        if let r = fit(n.right, size: size, mask: mask, floorKey: floorKey, limit: limit) { return r }
        if n.length >= size {
            let last = n.start &+ (n.length &- 1)
            let hi = min(last, limit)
            let lowest = max(n.start, floorKey)
            if hi >= lowest, hi - lowest >= size &- 1 {
                let block = (hi &- (size &- 1)) & ~mask
                if block >= lowest && block <= hi { return (block, n) }
            }
        }
        if n.start < floorKey { return nil }  // everything to the left starts lower still
        return fit(n.left, size: size, mask: mask, floorKey: floorKey, limit: limit)
    }

    /// Visits intervals in ascending order.
    func forEach(_ body: (Node) -> Void) {
        var stack: [Int32] = []
        var t = root
        while t >= 0 || !stack.isEmpty {
            while t >= 0 { stack.append(t); t = nodes[Int(t)].left }
            let top = stack.removeLast()
            body(nodes[Int(top)])
            t = nodes[Int(top)].right
        }
    }

    // MARK: updates

    /// Inserts an interval whose start is not yet present.
    mutating func insert(start: UInt64, length: UInt64, tag: UInt32 = 0) {
        let node = Node(start: start, length: length, maxLength: length, left: -1, right: -1,
                        priority: Self.priority(start), tag: tag)
        let index: Int32
        if let slot = freeSlots.popLast() {
            index = slot
            nodes[Int(slot)] = node
        } else {
            index = Int32(nodes.count)
            nodes.append(node)
        }
        let (l, r) = split(root, key: start)
        root = merge(merge(l, index), r)
        count += 1
    }

    /// Removes the interval starting exactly at `start`; returns it, or nil if there is none.
    @discardableResult
    mutating func remove(start: UInt64) -> Node? {
        // Find the node and its parent, then replace it by the merge of its children.
        var parent: Int32 = -1
        var t = root
        while t >= 0 {
            let n = nodes[Int(t)]
            if n.start == start { break }
            parent = t
            t = start < n.start ? n.left : n.right
        }
        if t < 0 { return nil }
        let removed = nodes[Int(t)]
        let joined = merge(removed.left, removed.right)
        if parent < 0 {
            root = joined
        } else if nodes[Int(parent)].left == t {
            nodes[Int(parent)].left = joined
        } else {
            nodes[Int(parent)].right = joined
        }
        freeSlots.append(t)
        count -= 1
        refreshPath(to: start)
        return removed
    }

    /// Changes the length and/or tag of the interval starting at `start` (keeps its key).
    mutating func update(start: UInt64, length: UInt64, tag: UInt32) {
        var t = root
        while t >= 0 {
            let n = nodes[Int(t)]
            if n.start == start {
                nodes[Int(t)].length = length
                nodes[Int(t)].tag = tag
                break
            }
            t = start < n.start ? n.left : n.right
        }
        refreshPath(to: start)
    }

    mutating func removeAll() {
        nodes.removeAll(keepingCapacity: true)
        freeSlots.removeAll(keepingCapacity: true)
        root = -1
        count = 0
    }

    // MARK: treap internals

    private static func priority(_ key: UInt64) -> UInt32 {
        var z = key &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return UInt32(truncatingIfNeeded: z ^ (z >> 31))
    }

    private mutating func pull(_ t: Int32) {
        let n = nodes[Int(t)]
        var m = n.length
        if n.left >= 0 { m = max(m, nodes[Int(n.left)].maxLength) }
        if n.right >= 0 { m = max(m, nodes[Int(n.right)].maxLength) }
        nodes[Int(t)].maxLength = m
    }

    /// Recomputes `maxLength` along the search path for `key`, bottom-up.
    private mutating func refreshPath(to key: UInt64) {
        var stack = ContiguousArray<Int32>()
        stack.reserveCapacity(64)
        var t = root
        while t >= 0 {
            stack.append(t)
            let n = nodes[Int(t)]
            if n.start == key { break }
            t = key < n.start ? n.left : n.right
        }
        while let s = stack.popLast() { pull(s) }
    }

    /// Splits `t` into keys `< key` and keys `>= key`.
    private mutating func split(_ t: Int32, key: UInt64) -> (Int32, Int32) {
        if t < 0 { return (-1, -1) }
        if nodes[Int(t)].start < key {
            let (l, r) = split(nodes[Int(t)].right, key: key)
            nodes[Int(t)].right = l
            pull(t)
            return (t, r)
        } else {
            let (l, r) = split(nodes[Int(t)].left, key: key)
            nodes[Int(t)].left = r
            pull(t)
            return (l, t)
        }
    }

    /// Joins two treaps where every key of `a` is below every key of `b`.
    private mutating func merge(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        if nodes[Int(a)].priority >= nodes[Int(b)].priority {
            nodes[Int(a)].right = merge(nodes[Int(a)].right, b)
            pull(a)
            return a
        } else {
            nodes[Int(b)].left = merge(a, nodes[Int(b)].left)
            pull(b)
            return b
        }
    }
}
