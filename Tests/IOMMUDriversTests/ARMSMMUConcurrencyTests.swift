import Dispatch
import Emulation
import IOMMUCore
import IOMMUDrivers
import Synchronization
import Testing

@Suite struct ARMSMMUConcurrencyTests {
    /// Threads map, DMA, unmap and fault in one domain at once: every strict
    /// unmap shuts the device out at once, and every fault is delivered once.
    @Test func concurrentMapsUnmapsAndFaultsStayConsistent() throws {
        let bed = try SMMUBed()
        let domain = try bed.domain(of: bed.nic)
        let delivered = Atomic<Int>(0)
        domain.setFaultHandler { _ in delivered.add(1, ordering: .relaxed) }
        let threads = 4, rounds = 100
        let buffers = try (0..<threads).map { _ in try bed.pages.allocate() }
        let failures = HostLock<[String]>([])
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for round in 0..<rounds {
                let iova = IOVirtualAddress(UInt64(thread + 1) << 30 | UInt64(round) << 12)
                do {
                    try domain.map(iova: iova, physical: buffers[thread], size: 0x1000, permissions: .readWrite)
                    let written = bed.nic.engine.write(to: iova + 8, bytes: [UInt8(truncatingIfNeeded: round)])
                    try domain.unmap(iova: iova, size: 0x1000)
                    let stray = bed.nic.engine.write(to: iova + 8, bytes: [0xFF])
                    if !written.completed || stray.completed {
                        failures.withLock { $0.append("thread \(thread) round \(round): \(written) \(stray)") }
                    }
                } catch {
                    failures.withLock { $0.append("thread \(thread) round \(round): \(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(delivered.load(ordering: .relaxed) == threads * rounds)
        #expect(bed.unit.statistics.eventsRecorded == UInt64(threads * rounds))
        for (thread, buffer) in buffers.enumerated() {
            #expect(try bed.memory.read(buffer + 8, count: 1) == [UInt8(rounds - 1)], "thread \(thread)")
        }
    }
}
