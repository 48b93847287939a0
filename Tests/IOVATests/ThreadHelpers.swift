import Glibc
import Synchronization

/// Runs `body(index)` on `count` fresh POSIX threads (so each has its own thread-local caches
/// and really exits afterwards) and waits for all of them.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable (Int) -> Void
        let index: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
    }
    var threads: [pthread_t] = []
    for i in 0..<count {
        let box = Unmanaged.passRetained(Box(body, i)).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { raw in
            let b = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            b.body(b.index)
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed")
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
}

/// One owner byte per granule; claiming a granule someone else holds reveals an overlap.
final class OwnershipMap: @unchecked Sendable {
    let cells: UnsafeMutablePointer<Atomic<UInt8>>
    let count: Int
    let overlaps = Atomic<Int>(0)

    init(granules: Int) {
        count = granules
        cells = .allocate(capacity: granules)
        for i in 0..<granules { (cells + i).initialize(to: Atomic(0)) }
    }
    deinit { cells.deinitialize(count: count); cells.deallocate() }

    func claim(_ first: Int, _ n: Int, owner: UInt8) {
        for i in first..<(first + n) {
            let (ok, _) = cells[i].compareExchange(expected: 0, desired: owner, ordering: .acquiringAndReleasing)
            if !ok { overlaps.add(1, ordering: .relaxed) }
        }
    }

    func release(_ first: Int, _ n: Int, owner: UInt8) {
        for i in first..<(first + n) {
            let (ok, _) = cells[i].compareExchange(expected: owner, desired: 0, ordering: .acquiringAndReleasing)
            if !ok { overlaps.add(1, ordering: .relaxed) }
        }
    }
}
