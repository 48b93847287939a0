import Glibc
import Synchronization

/// A fixed-capacity stack of freed blocks of one size class, Linux's `struct iova_magazine`.
/// Each entry is the block's first granule and the address of its ``LiveTable`` byte, so that
/// handing a block out again needs no table walk. Slot 0 holds the count. Moved between a
/// thread's cache and the depot by pointer, never copied.
@usableFromInline
struct Magazine: @unchecked Sendable {
    @usableFromInline static let capacity = 128
    @usableFromInline let storage: UnsafeMutablePointer<UInt64>

    @usableFromInline init(storage: UnsafeMutablePointer<UInt64>) { self.storage = storage }

    static func make() -> Magazine {
        // Whole cache lines, so that two threads' magazines never share one.
        let words = 2 * capacity + 8
        let raw = UnsafeMutableRawPointer.allocate(byteCount: words * 8, alignment: 64)
        let p = raw.bindMemory(to: UInt64.self, capacity: words)
        p.initialize(repeating: 0, count: words)
        return Magazine(storage: p)
    }

    func destroy() { UnsafeMutableRawPointer(storage).deallocate() }

    /// Which thread cache last handed this magazine to the depot (a spare word after the entries).
    var owner: UInt64 {
        get { storage[2 &* Self.capacity &+ 1] }
        nonmutating set { storage[2 &* Self.capacity &+ 1] = newValue }
    }

    @inlinable @inline(__always) var count: Int { Int(truncatingIfNeeded: storage[0]) }
    @inlinable @inline(__always) var isFull: Bool { storage[0] == UInt64(Self.capacity) }
    @inlinable @inline(__always) var isEmpty: Bool { storage[0] == 0 }

    @inlinable @inline(__always) func push(_ pfn: UInt64, slot: UnsafeMutablePointer<Atomic<UInt8>>) {
        let n = storage[0] &+ 1
        let i = Int(truncatingIfNeeded: n &* 2)
        storage[i &- 1] = pfn
        storage[i] = UInt64(UInt(bitPattern: slot))
        storage[0] = n
    }

    /// Pops a block whose first granule is `<= maxStart`: the top one if it qualifies (the
    /// common case), else the topmost qualifying one, swapped out with the top.
    @inline(__always) func pop(maxStart: UInt64) -> (UInt64, UnsafeMutablePointer<Atomic<UInt8>>)? {
        let n = Int(truncatingIfNeeded: storage[0])
        if n == 0 { return nil }
        var i = n
        while storage[2 &* i &- 1] > maxStart {
            i -= 1
            if i == 0 { return nil }
        }
        let pfn = storage[2 * i - 1]
        let slot = storage[2 * i]
        storage[2 * i - 1] = storage[2 * n - 1]
        storage[2 * i] = storage[2 * n]
        storage[0] = UInt64(n - 1)
        return (pfn, UnsafeMutablePointer(bitPattern: UInt(slot)).unsafelyUnwrapped)
    }

    /// Calls `body` with every block's first granule and empties the magazine.
    func drain(_ body: (UInt64) -> Void) {
        let n = count
        var i = 1
        while i <= n { body(storage[2 * i - 1]); i += 1 }
        storage[0] = 0
    }
}
