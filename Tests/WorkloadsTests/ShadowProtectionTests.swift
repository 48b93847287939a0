import DMA
import Emulation
import IOMMUCore
import Testing
@testable import Workloads

/// The shadow strategy against the attack scenarios and the fuzzer: what it
/// closes (the rest of the page, use after unmap, the lazy window), what it
/// opens (a readable copy of a from-device buffer), and a model that notices
/// when a pool's contents go astray.
@Suite struct ShadowProtectionTests {
    static let families = IOMMUFamily.allCases.filter(\.isEmulated)

    static func outcome(_ name: String, _ family: IOMMUFamily, _ strategy: ProtectionStrategy = .shadow) throws -> AttackOutcome {
        let scenario = try #require(AttackScenario.named(name))
        return try scenario.run(AttackContext(family: family, strategy: strategy, stormFaults: 2000))
    }

    @Test func theStrategyIsStrictWithShadowBuffersAndJoinsEveryRun() {
        #expect(ProtectionStrategy.shadow.policy == DefaultDomainPolicy(invalidation: .strict))
        #expect(ProtectionStrategy.shadow.usesShadowBuffers && !ProtectionStrategy.strict.usesShadowBuffers)
        #expect(ProtectionStrategy.all.map(\.name) == ["strict", "lazy", "shadow"])
        #expect(ProtectionStrategy.fuzzed.contains(.shadow))
    }

    @Test(arguments: families)
    func aShadowDeviceReachesItsOldBusAddressesButNeverTheMemoryBehindThem(family: IOMMUFamily) throws {
        let useAfterUnmap = try Self.outcome("use-after-unmap", family)
        #expect(useAfterUnmap.verdict == "protected" && useAfterUnmap.bytesLeaked == 0)
        #expect(useAfterUnmap.contained == useAfterUnmap.attempts && useAfterUnmap.faults == 0, "the slots stay mapped")
        let window = try Self.outcome("lazy-window", family)
        #expect(window.bytesLeaked == 0 && window.contained == window.attempts)
        #expect(window.notes.contains { $0.hasPrefix("after flushDeferred: 1024 of 1024") })
    }

    @Test(arguments: families)
    func theRestOfThePageIsNoLongerExposedToAnyDevice(family: IOMMUFamily) throws {
        let shadow = try Self.outcome("sub-page", family)
        #expect(shadow.bytesLeaked == 0 && shadow.contained == 4, "\(shadow.notes)")
        let strict = try Self.outcome("sub-page", family, .strict)
        #expect(strict.bytesLeakedInWindows[ExposureWindow.pageGranularity.rawValue, default: 0] > 0)
    }

    @Test(arguments: families)
    func aWrongDirectionWriteStaysInTheSlotAndAFromDeviceBuffersCopyIsReadable(family: IOMMUFamily) throws {
        let shadow = try Self.outcome("wrong-direction", family)
        #expect(shadow.bytesLeakedUndocumented == 0 && shadow.faults == 0)
        #expect(shadow.contained == 2, "the two writes into to-device buffers changed no caller memory")
        #expect(shadow.bytesLeakedInWindows == [ExposureWindow.shadowCopyIn.rawValue: 8192], "two 4 KiB reads")
        let strict = try Self.outcome("wrong-direction", family, .strict)
        switch family {
        case .amdGART: #expect(strict.verdict == "window: coarse-permissions" && strict.faults == 0)
        case .armSMMU: #expect(strict.verdict == "window: coarse-permissions" && strict.blocked == 2, "write-only reads")
        default: #expect(strict.verdict == "protected" && strict.blocked == 4)
        }
    }

    @Test(arguments: families)
    func aFaultStormAimsOnlyAtUnmappedAddresses(family: IOMMUFamily) throws {
        let storm = try FaultStorm.run(family: family, strategy: .shadow, faults: 4000)
        #expect(storm.faultsRaised == 4000 && storm.bytesLeaked == 0 && storm.bystanderFailures == 0)
        #expect((family == .amdGART) == (storm.shadowPoolDrawsRedrawn > 0), "only a GART puts other devices' pools in nic0's domain")
    }

    @Test func theFuzzerTracksEveryPoolByteAndCatchesAStrayCopy() throws {
        let session = try FuzzSession(.init(family: .intelVTd, strategy: .shadow, operations: 3000, seed: 9))
        session.run()
        #expect(session.report.mismatch == nil, "\(session.report.mismatch.map(String.init(describing:)) ?? "")")
        #expect(session.report.bytesReached[ReachKind.shadow.rawValue, default: 0] > 0)
        let device = try #require(session.devices.first { $0.shadowPool != nil })
        let layout = try #require(device.shadowPool)
        // As if an unmap had copied a slot's byte where it did not belong: the next sweep must notice.
        let target = PhysicalAddress(layout.physical.value + 4093)
        let byte = try session.platform.memory.read(target, count: 1)[0]
        try session.platform.memory.write(target, bytes: [byte ^ 0x5A])
        #expect(throws: FuzzStop.self) { try session.sweep() }
        #expect(session.report.mismatch?.detail.contains(hex(target.value)) == true)
    }

    @Test func removingAndReaddingAShadowDeviceGivesItAFreshZeroedPool() throws {
        let session = try FuzzSession(.init(family: .amdVi, strategy: .shadow, operations: 0, seed: 3))
        let nic = try #require(session.devices.first { $0.device.name == "nic0" })
        let first = try #require(nic.shadowPool)
        let pages = session.platform.pages.allocatedPages
        try session.removeDevice(nic)
        // The pool goes back (and the emptied group's domain takes its tables with it).
        #expect(nic.shadowPool == nil && session.platform.pages.allocatedPages <= pages - first.bytes / 4096)
        try session.addDevice(nic)
        let second = try #require(nic.shadowPool)
        #expect(second.bytes == first.bytes && session.report.mismatch == nil)
        try session.sweep()
    }
}
