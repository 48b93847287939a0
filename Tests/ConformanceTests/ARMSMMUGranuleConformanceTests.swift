import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// The generic DMA layer on SMMU domains whose smallest page is larger than
/// the CPU's 4 KiB page: the default workload must pass with every granule.
@Suite struct ARMSMMUGranuleConformanceTests {
    @Test(arguments: [UInt64(4096), 16384, 65536])
    func theDefaultWorkloadPassesWithEveryGranule(granule: UInt64) throws {
        for policy in [DefaultDomainPolicy(), DefaultDomainPolicy(invalidation: .lazy)] {
            var specification = try PlatformSpecification.defaultPlatform(family: .armSMMU, policy: policy)
            specification.units[0].smmuGranule = granule
            let platform = try EmulatedPlatform(specification)
            let nic = try #require(platform.dma(for: "nic0")?.managed?.group.defaultDomain)
            #expect(nic.pageSizes.smallest == granule)
            let report = DefaultWorkload(iterations: 12, seed: 5).run(on: platform)
            #expect(report.checksFailed == 0,
                    "\(granule) \(policy): \(report.platform.devices.compactMap(\.workload).flatMap(\.notes))")
        }
    }

    @Test func anUnknownGranuleIsRefused() throws {
        var specification = try PlatformSpecification.defaultPlatform(family: .armSMMU)
        specification.units[0].smmuGranule = 8192
        #expect(throws: PlatformError.self) { try EmulatedPlatform(specification) }
    }
}
