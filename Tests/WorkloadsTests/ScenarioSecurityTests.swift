import Emulation
import IOMMUCore
import Testing
@testable import Workloads

/// The malicious scanner and hot removal: what must be blocked is blocked,
/// what must be torn down is torn down, and nothing leaks.
@Suite struct ScenarioSecurityTests {
    static let scan = ScenarioParameters(devices: 2, queueDepth: 6, minSize: 4096, maxSize: 16 << 10, operations: 150,
                                         seed: 5)

    @Test(arguments: [IOMMUFamily.intelVTd, .armSMMU, .ibmCalgary].filter { $0.isEmulated }, ScenarioPolicy.allCases)
    func theScannerIsBlockedAndNothingLeaks(family: IOMMUFamily, policy: ScenarioPolicy) throws {
        let run = try ScenarioRunner.run(.maliciousScan, parameters: Self.scan, family: family, policy: policy)
        let attempted = UInt64(Self.scan.operations * Self.scan.devices)
        #expect(run.checksFailed == 0, "\(run.notes)")
        #expect(run.findings["probesAttempted"] == attempted)
        // Every probe is blocked except reads that happen to land in the scanner's own buffer.
        #expect(run.findings["probesBlocked", default: 0] >= attempted * 9 / 10)
        #expect(run.findings["bytesLeaked", default: 0] == 0)
        #expect(run.findings["bytesWrittenOutside", default: 0] == 0)
        #expect(run.findings["secretsSeen", default: 0] == 0)
        #expect(run.findings["victimBytesCorrupted"] == 0)
        #expect(run.faults >= run.findings["probesBlocked", default: 0], "each blocked probe is a recorded fault")
        #expect(run.notes.contains { $0.contains("probes") && $0.contains("blocked") })
    }

    @Test func aGARTApertureCannotStopTheScannerAndTheReportSaysSo() throws {
        guard IOMMUFamily.amdGART.isEmulated else { return }
        let run = try ScenarioRunner.run(.maliciousScan, parameters: Self.scan, family: .amdGART, policy: .strict)
        // GART passes addresses outside its aperture straight to memory: the scanner reads and writes victims.
        #expect(run.findings["bytesLeaked", default: 0] > 0)
        #expect(run.findings["victimBytesCorrupted", default: 0] > 0)
        #expect(run.notes.contains { $0.contains("cannot isolate") })
        #expect(run.checksFailed == 0)
    }

    @Test(arguments: ScenarioPolicy.allCases)
    func hotRemovalTearsDownEveryMappingAndLeaksNothing(policy: ScenarioPolicy) throws {
        let parameters = ScenarioParameters(devices: 2, queueDepth: 5, minSize: 100, maxSize: 20_000, operations: 3, seed: 9)
        let platform = try ScenarioRunner.makePlatform(.hotRemoval, parameters: parameters, family: .intelVTd, policy: policy)
        let pagesAtStart = platform.pages.allocatedPages
        let context = ScenarioContext(platform: platform, parameters: parameters)
        var scenario = HotRemovalScenario()
        try scenario.prepare(context)
        for _ in 0..<(parameters.operations * parameters.devices) { scenario.step(context) }
        scenario.finish(context)

        #expect(context.checksFailed == 0, "\(context.notes)")
        let cycles = UInt64(parameters.operations * parameters.devices)
        #expect(context.findings["removals"] == cycles)
        #expect(context.findings["replugs"] == cycles)
        #expect(context.findings["mappingsTornDown"] == cycles * UInt64(parameters.queueDepth))
        #expect(context.findings["coherentBuffersTornDown"] == cycles)
        #expect(context.findings["dmaAfterRemovalBlocked"] == cycles)
        #expect(context.findings["mappingsLeaked", default: 0] == 0)
        #expect(platform.pages.allocatedPages == pagesAtStart, "the page allocator is back to its start count")
        // The re-plugged devices start from a clean DMA state: no mapping and an empty address space.
        for device in platform.devices where device.name.hasPrefix("hotplug") {
            let managed = try #require(platform.subsystem.device(at: device.address))
            #expect(managed.device === device, "the IOMMU-API holds the re-plugged device")
        }
        #expect(context.iovaBytesInUse == 0)
    }

    @Test func aRemovedDeviceCanNoLongerReachItsOldMappings() throws {
        let parameters = ScenarioParameters(devices: 1, queueDepth: 3, minSize: 4096, maxSize: 4096, operations: 1, seed: 3)
        let run = try ScenarioRunner.run(.hotRemoval, parameters: parameters, family: .intelVTd, policy: .lazy)
        #expect(run.checksFailed == 0, "\(run.notes)")
        #expect(run.findings["dmaAfterRemovalBlocked"] == 1)
        #expect(run.findings["pagesLeaked"] == 0)
        #expect(run.notes.contains { $0.contains("hot-removed") && $0.contains("3 mappings") })
    }
}
