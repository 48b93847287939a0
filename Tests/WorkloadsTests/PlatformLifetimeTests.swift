import Emulation
import IOMMUCore
import Testing
import Workloads

/// A platform that goes out of use must free its emulated memory: a reference
/// cycle anywhere (a driver's interrupt closure, the DMA layer's per-domain
/// state) would keep gigabytes of address space reserved per test.
@Suite struct PlatformLifetimeTests {
    @Test(arguments: IOMMUFamily.allCases.filter(\.isEmulated))
    func aDroppedPlatformFreesItsMemory(family: IOMMUFamily) throws {
        weak var memory: PhysicalMemory?
        do {
            let platform = try EmulatedPlatform(.defaultPlatform(family: family))
            memory = platform.memory
            let report = DefaultWorkload(iterations: 4).run(on: platform)
            #expect(report.checksFailed == 0)
        }
        #expect(memory == nil, "the \(family) platform is still alive after its last use")
    }
}
