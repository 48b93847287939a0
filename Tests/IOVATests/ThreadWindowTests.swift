import Glibc
import IOVA
import Synchronization
import Testing

/// Refill windows (``IOVAOptions/threadWindowGranules``): the first thread of an allocator
/// allocates top-down from the limit as always; the next ones take new small ranges from the
/// tree a window lower each, and fall back to the whole space when theirs has nothing.
@Suite struct ThreadWindowTests {
    static let granule: UInt64 = 4096
    static let window: UInt64 = 1 << 18  // granules: 1 GiB of 4 KiB pages

    /// Addresses of one single-granule allocation by each of `threads` threads, one after the other.
    static func firstAllocations(_ allocator: IOVAAllocator, threads: Int, limit: UInt64,
                                 preferred: UInt64? = nil) -> [UInt64] {
        let results = Mutex<[Int: UInt64]>([:])
        for index in 0..<threads {
            runOnThreads(1) { _ in
                let address = try? allocator.allocate(size: granule, limit: limit, preferredLimit: preferred)
                results.withLock { $0[index] = address ?? .max }
            }
        }
        return results.withLock { table in (0..<threads).map { table[$0] ?? .max } }
    }

    @Test func eachLaterThreadStartsAWindowLower() throws {
        let allocator = try IOVAAllocator(granule: Self.granule, space: 0...(1 << 36) - 1)
        let limit: UInt64 = (1 << 32) - 1
        let addresses = Self.firstAllocations(allocator, threads: 5, limit: limit)
        let top = limit & ~(Self.granule - 1)
        let stride = Self.window * Self.granule
        #expect(addresses[0] == top)
        #expect(addresses[1] == top - stride)
        #expect(addresses[2] == top - 2 * stride)
        #expect(addresses[3] == top - 3 * stride)
        // Four windows: the fifth thread shares the first one's, just below what that one took.
        #expect(addresses[4] == top - Self.granule)
    }

    @Test func thePreferredLimitIsWindowedToo() throws {
        let allocator = try IOVAAllocator(granule: Self.granule, space: 0...(1 << 40) - 1)
        let addresses = Self.firstAllocations(allocator, threads: 2, limit: (1 << 40) - 1, preferred: (1 << 32) - 1)
        #expect(addresses[0] == (1 << 32) - Self.granule)
        #expect(addresses[1] == (1 << 32) - Self.granule - Self.window * Self.granule)
    }

    @Test func withoutRoomBelowTheWindowAThreadTakesWhatIsFree() throws {
        // A 24-bit space is far smaller than one window: every thread allocates top-down.
        let small = try IOVAAllocator(granule: Self.granule, space: 0...(1 << 24) - 1)
        let addresses = Self.firstAllocations(small, threads: 2, limit: (1 << 24) - 1)
        #expect(addresses == [(1 << 24) - Self.granule, (1 << 24) - 2 * Self.granule])

        // Everything below the second thread's window is reserved: it falls back above it.
        let allocator = try IOVAAllocator(granule: Self.granule, space: 0...(1 << 32) - 1)
        try allocator.reserve(0...((1 << 32) - Self.window * Self.granule - 1))
        let fallback = Self.firstAllocations(allocator, threads: 2, limit: (1 << 32) - 1)
        #expect(fallback == [(1 << 32) - Self.granule, (1 << 32) - 2 * Self.granule])
    }

    @Test func windowsOffKeepsOneTopDownOrder() throws {
        let allocator = try IOVAAllocator(granule: Self.granule, space: 0...(1 << 36) - 1,
                                          options: IOVAOptions(threadWindowGranules: 0))
        let addresses = Self.firstAllocations(allocator, threads: 3, limit: (1 << 32) - 1)
        #expect(addresses == [(1 << 32) - Self.granule, (1 << 32) - 2 * Self.granule, (1 << 32) - 3 * Self.granule])
    }
}
