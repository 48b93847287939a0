import Emulation
import Glibc
import IOMMUCore
import IOMMUDrivers
import Synchronization
import Testing

/// Map and unmap of different pages may run at once, also in the same leaf
/// table: levels are installed with compare-and-swap and the leaf-page
/// array records the one table every racer agrees on.
@Suite struct AMDViConcurrencyTests {
    final class Box: @unchecked Sendable {
        let body: @Sendable (Int) -> Void
        let index: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
    }

    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        var threads: [pthread_t] = []
        for index in 0..<count {
            var thread = pthread_t()
            let box = Unmanaged.passRetained(Box(body, index)).toOpaque()
            let created = pthread_create(&thread, nil, { raw in
                guard let raw else { return nil }
                let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
                box.body(box.index)
                return nil
            }, box)
            if created == 0 { threads.append(thread) }
        }
        for thread in threads { pthread_join(thread, nil) }
    }

    @Test(arguments: [true, false])
    func interleavedPagesOfTwoThreadsInTheSameTablesStayConsistent(leafArray: Bool) throws {
        let bed = try AMDViBed(options: AMDViDriverOptions(leafArray: leafArray))
        let domain = try bed.domain(of: bed.nic)
        let buffer = try bed.pages.allocate()
        let failures = Atomic<Int>(0)
        Self.onThreads(2) { thread in
            for round in 0..<40 {
                // Fresh 2 MiB regions each round, so both threads race to create the same tables.
                let region: UInt64 = 0x4000_0000 + UInt64(round) << 21
                for page in stride(from: UInt64(thread), to: 64, by: 2) {
                    do {
                        try domain.map(iova: IOVirtualAddress(region + page << 12), physical: buffer, size: 0x1000,
                                       permissions: .readWrite)
                    } catch { failures.add(1, ordering: .relaxed) }
                }
                for page in stride(from: UInt64(thread), to: 64, by: 4) {
                    if (try? domain.unmap(iova: IOVirtualAddress(region + page << 12), size: 0x1000)) != 0x1000 {
                        failures.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        for round in UInt64(0)..<40 {
            for page in UInt64(0)..<64 {
                let iova = 0x4000_0000 + round << 21 + page << 12
                #expect((domain.lookup(iova) != nil) == (page % 4 >= 2), "\(hex(iova))")
            }
        }
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x4000_0000 + 2 << 12), count: 1).result.completed)
        // One leaf table per region however the race went: root, one level-2 table, 40 leaf tables.
        #expect(try #require((domain as? AMDViDomain)?.table).tablePages == 42)
    }
}
