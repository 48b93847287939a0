import Emulation
import IOMMUCore
import Testing
@testable import Workloads

/// The protection fuzzer on every family and strategy, and proof that it
/// notices when the stack and the model part ways.
@Suite struct ProtectionFuzzTests {
    static let families = IOMMUFamily.allCases.filter(\.isEmulated)
    /// Operations per family and strategy in the debug suite (`iommu-sim fuzz` and .ci/fuzz.sh run more).
    static let operations = 12_000


    @Test(arguments: families)
    func everyOperationAgreesWithTheModel(family: IOMMUFamily) throws {
        for strategy in ProtectionStrategy.fuzzed {
            let report = try ProtectionFuzzer.run(.init(family: family, strategy: strategy, operations: Self.operations, seed: 1))
            #expect(report.mismatch == nil, "\(report.mismatch.map(String.init(describing:)) ?? "")")
            #expect(report.operations == Self.operations)
            #expect(report.deviceAccesses > Self.operations / 4 && report.faults > 0 && report.refusalsChecked > 0)
            #expect((report.bytesReached[ReachKind.mapped.rawValue] ?? 0) > 0 || strategy.passesThrough)
            if strategy.hasStaleWindow { #expect(report.staleHits + report.staleFaults > 0, "\(family): the lazy window was probed") }
            else { #expect(report.staleHits == 0 && report.staleFaults == 0) }
        }
    }

    @Test func theSameSeedReplaysTheSameRun() throws {
        let configuration = ProtectionFuzzer.Configuration(family: .intelVTd, strategy: .lazy, operations: 3000, seed: 77)
        var first = try ProtectionFuzzer.run(configuration)
        var second = try ProtectionFuzzer.run(configuration)
        first.seconds = 0
        second.seconds = 0
        #expect(first == second)
        var other = try ProtectionFuzzer.run(.init(family: .intelVTd, strategy: .lazy, operations: 3000, seed: 78))
        other.seconds = 0
        #expect(other != first)
    }

    @Test func aStrayWriteBehindTheModelsBackIsCaught() throws {
        let session = try FuzzSession(.init(family: .armSMMU, strategy: .strict, operations: 500, seed: 5))
        session.run()
        #expect(session.report.mismatch == nil)
        let pool = try #require(session.pools.first)
        let byte = try session.platform.memory.read(PhysicalAddress(pool.base + 123), count: 1)[0]
        try session.platform.memory.write(PhysicalAddress(pool.base + 123), bytes: [byte ^ 0xFF])
        #expect(throws: FuzzStop.self) { try session.sweep() }
        #expect(session.report.mismatch?.detail.contains(hex(pool.base + 123)) == true)
        #expect(session.report.mismatch?.replay.contains("--seed 5") == true)
    }

    @Test func aMappingRemovedUnderTheDMALayerIsCaught() throws {
        let session = try FuzzSession(.init(family: .intelVTd, strategy: .strict, operations: 0, seed: 9))
        let nic = try #require(session.devices.first { $0.device.name == "nic0" })
        while nic.streams.isEmpty { try session.mapStream(nic) }
        let stream = nic.streams[0]
        // Tear the page out of the tables without telling the model: the next device access must disagree.
        let domain = try #require(session.groupModel(of: nic)?.defaultDomain.domain)
        try domain.unmap(iova: IOVirtualAddress(stream.bus.value & ~0xFFF), size: 4096)
        let access: BusAccess = stream.direction == .toDevice ? .read : .write
        let chunks = session.predict(nic, address: stream.bus.value, length: 1, access: access)
        let result = access == .read ? nic.device.engine.read(from: stream.bus, count: 1).result
                                     : nic.device.engine.write(to: stream.bus, bytes: [0])
        #expect(throws: FuzzStop.self) { try session.compare(result, chunks: chunks, what: "probe") { _, _, _ in } }
        #expect(session.report.mismatch?.detail.contains("though the model reaches") == true)
    }

    @Test func unknownStrategiesAndFamiliesAreNamedInErrors() {
        #expect(ProtectionStrategy.named("lazy") == .lazy)
        #expect(ProtectionStrategy.named("pass-through") == .passThrough)
        #expect(ProtectionStrategy.named("shadow") == .shadow && ProtectionStrategy.all.contains(.shadow))
        #expect(ProtectionStrategy.named("bounce") == nil)
    }
}
