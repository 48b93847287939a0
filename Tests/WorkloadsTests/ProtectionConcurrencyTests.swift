import DMA
import Dispatch
import Emulation
import IOMMUCore
import Testing
import Workloads

/// DMA-API calls from several threads while devices DMA and fault: every
/// transfer still lands where its mapping says. Run under --sanitize=thread by .ci/sanitizers.sh.
@Suite struct ProtectionConcurrencyTests {
    @Test(arguments: IOMMUFamily.allCases.filter(\.isEmulated))
    func threadsMappingMovingAndFaultingAtOnceKeepEveryByteInPlace(family: IOMMUFamily) throws {
        for strategy in ProtectionStrategy.all {
            let platform = try EmulatedPlatform(.defaultPlatform(family: family, policy: strategy.policy))
            let handles = try ["nic0", "nvme0", "legacy-dma"].map { try #require(platform.dma(for: $0)) }
            let buffers = try handles.map { _ in try platform.pages.allocate(pages: 4) }
            let failures = HostLock<[String]>([])
            let rounds = 150
            DispatchQueue.concurrentPerform(iterations: 4) { thread in
                func fail(_ what: String) { failures.withLock { if $0.count < 8 { $0.append("\(family)/\(strategy) thread \(thread): \(what)") } } }
                var generator = SplitMix64(seed: UInt64(thread) + 1)
                if thread == 3 { // a misbehaving device: stray reads all over its address space
                    let nic = handles[0]
                    for _ in 0..<(rounds * 4) {
                        _ = nic.device.engine.read(from: IOVirtualAddress(UInt64.random(in: 0..<(1 << 36), using: &generator)), count: 16)
                    }
                    return
                }
                let dma = handles[thread]
                for round in 0..<rounds {
                    let size = Int.random(in: 1...8192, using: &generator)
                    let pattern = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    let buffer = buffers[thread] + UInt64.random(in: 0...UInt64(4 * 4096 - size), using: &generator)
                    do {
                        let bus = try dma.map(buffer, size: size, direction: .fromDevice)
                        if !dma.device.engine.write(to: bus, bytes: pattern).completed { fail("round \(round): write faulted") }
                        try dma.unmap(bus, size: size, direction: .fromDevice)
                        if try platform.memory.read(buffer, count: size) != pattern { fail("round \(round): data did not land") }
                        if round % 16 == 0 {
                            let ring = try dma.allocateCoherent(size: 4096)
                            _ = dma.device.engine.write(to: ring.busAddress, bytes: [UInt8(round & 0xFF)])
                            if ring.load(at: 0, as: UInt8.self) != UInt8(round & 0xFF) { fail("round \(round): coherent write lost") }
                            try dma.freeCoherent(ring)
                            dma.flushDeferred()
                        }
                    } catch { fail("round \(round): \(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        }
    }
}
