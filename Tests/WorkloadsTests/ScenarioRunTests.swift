import Foundation
import IOMMUCore
import Testing
@testable import Workloads

/// Every built-in scenario, small, on each policy: devices really move data
/// through the emulated IOMMU and every data check passes.
@Suite struct ScenarioRunTests {
    static func small(_ kind: ScenarioKind) -> ScenarioParameters {
        var parameters = kind.defaults
        parameters.devices = 2
        parameters.queueDepth = 8
        switch kind {
        case .network: parameters.operations = 40
        case .nvme: parameters.operations = 24; parameters.maxSize = 256 << 10
        case .legacy32: parameters.operations = 40; parameters.maxSize = 16 << 10
        case .gpu: parameters.operations = 8; parameters.queueDepth = 3; parameters.minSize = 64 << 10; parameters.maxSize = 512 << 10
        case .hotRemoval: parameters.operations = 4
        case .maliciousScan: parameters.operations = 200
        }
        parameters.seed = 11
        return parameters
    }

    @Test(arguments: ScenarioKind.allCases, ScenarioPolicy.allCases)
    func everyScenarioPassesItsDataChecks(kind: ScenarioKind, policy: ScenarioPolicy) throws {
        let parameters = Self.small(kind)
        let run = try ScenarioRunner.run(kind, parameters: parameters, family: .intelVTd, policy: policy)
        #expect(run.checksFailed == 0, "\(run.notes)")
        if kind == .legacy32, policy == .passthrough, run.bytesMoved == 0 {
            // Without translation (and before bounce buffers) every buffer above 4 GiB is refused, none mis-mapped.
            #expect(run.findings["refusedBeyondMask"] == UInt64(parameters.operations * parameters.devices))
        } else {
            #expect(run.checksPassed > 10)
            #expect(run.bytesMoved > 0)
        }
        #expect(run.operations == UInt64(Self.small(kind).operations * Self.small(kind).devices))
        #expect(!run.timeline.isEmpty)
    }

    @Test(arguments: ScenarioKind.allCases, IOMMUFamily.allCases.filter { $0.isEmulated })
    func everyScenarioRunsOnEveryEmulatedFamily(kind: ScenarioKind, family: IOMMUFamily) throws {
        var parameters = Self.small(kind)
        parameters.devices = 1
        parameters.operations = max(2, parameters.operations / 4)
        let run = try ScenarioRunner.run(kind, parameters: parameters, family: family, policy: .strict)
        #expect(run.checksFailed == 0, "\(run.notes)")
        #expect(run.bytesMoved > 0)
        #expect(run.label == "\(family.rawValue)/strict")
    }

    @Test func aFamilyWithoutEmulationIsAClearError() throws {
        guard let missing = IOMMUFamily.allCases.first(where: { !$0.isEmulated }) else { return }
        #expect(throws: ScenarioError.familyNotEmulated(missing.rawValue)) {
            try ScenarioRunner.report(.network, parameters: Self.small(.network), families: [.intelVTd, missing],
                                      policies: [.strict])
        }
    }

    @Test func theSameSeedGivesTheSameRun() throws {
        let first = try ScenarioRunner.run(.nvme, parameters: Self.small(.nvme), family: .intelVTd, policy: .strict)
        let second = try ScenarioRunner.run(.nvme, parameters: Self.small(.nvme), family: .intelVTd, policy: .strict)
        #expect(first.findings == second.findings)
        #expect(first.bytesMoved == second.bytesMoved)
        #expect(first.checksPassed == second.checksPassed)
    }

    /// 2 MiB coherent buffers land on 2 MiB-aligned IOVAs over 4 KiB-aligned pages: they must unmap.
    @Test(arguments: IOMMUFamily.allCases.filter { $0.isEmulated })
    func largeCoherentBuffersAreFreedOnEveryFamily(family: IOMMUFamily) throws {
        let parameters = ScenarioParameters(devices: 1, queueDepth: 3, minSize: 2 << 20, maxSize: 2 << 20, operations: 2, seed: 1)
        let run = try ScenarioRunner.run(.gpu, parameters: parameters, family: family, policy: .strict)
        #expect(run.checksFailed == 0, "\(run.notes)")
    }
}
