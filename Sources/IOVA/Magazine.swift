import Glibc

/// A fixed-capacity stack of freed blocks of one size class (their first granule numbers),
/// Linux's `struct iova_magazine`. Slot 0 holds the count. Moved between a thread's cache and
/// the depot by pointer, never copied.
struct Magazine: @unchecked Sendable {
    static let capacity = 128
    let storage: UnsafeMutablePointer<UInt64>

    static func make() -> Magazine {
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity + 1)
        p.initialize(to: 0)
        return Magazine(storage: p)
    }

    func destroy() { storage.deallocate() }

    @inline(__always) var count: Int {
        get { Int(truncatingIfNeeded: storage[0]) }
        nonmutating set { storage[0] = UInt64(truncatingIfNeeded: newValue) }
    }
    @inline(__always) var isFull: Bool { storage[0] == UInt64(Self.capacity) }
    @inline(__always) var isEmpty: Bool { storage[0] == 0 }

    @inline(__always) func push(_ pfn: UInt64) {
        let n = storage[0] &+ 1
        storage[Int(truncatingIfNeeded: n)] = pfn
        storage[0] = n
    }

    /// Pops a block whose first granule is `<= maxStart`: the top one if it qualifies (the
    /// common case), else the topmost qualifying one, swapped out with the top.
    @inline(__always) func pop(maxStart: UInt64) -> UInt64? {
        let n = Int(truncatingIfNeeded: storage[0])
        if n == 0 { return nil }
        let top = storage[n]
        if top <= maxStart {
            storage[0] = UInt64(n &- 1)
            return top
        }
        return popScan(maxStart: maxStart, count: n)
    }

    @inline(never) func popScan(maxStart: UInt64, count n: Int) -> UInt64? {
        var i = n - 1
        while i >= 1 {
            let pfn = storage[i]
            if pfn <= maxStart {
                storage[i] = storage[n]
                storage[0] = UInt64(n - 1)
                return pfn
            }
            i -= 1
        }
        return nil
    }

    /// Calls `body` with every block and empties the magazine.
    func drain(_ body: (UInt64) -> Void) {
        let n = count
        var i = 1
        while i <= n { body(storage[i]); i += 1 }
        storage[0] = 0
    }
}
