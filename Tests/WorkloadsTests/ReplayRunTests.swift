import Emulation
import Foundation
import IOMMUCore
import Testing
import Workloads

@Suite struct ReplayRunTests {
    /// Debug builds replay a prefix on every driver and policy; .ci/replay.sh replays the full traces in release.
    static let prefix = 2500

    static let matrix: [(String, IOMMUFamily, ReplayConfiguration.Policy)] = Oracle.runs.flatMap { run in
        IOMMUFamily.allCases.filter(\.isEmulated).flatMap { family in [(run, family, .strict), (run, family, .lazy)] }
    }

    @Test(arguments: matrix)
    func everyOracleTraceReplaysWithoutErrors(run: String, family: IOMMUFamily, policy: ReplayConfiguration.Policy) throws {
        let trace = try #require(Oracle.traces[run])
        let replayer = try TraceReplayer(trace: trace, configuration: ReplayConfiguration(
            family: family, policy: policy, eventLimit: Self.prefix))
        let report = replayer.run()
        #expect(report.replayErrors == 0, "\(report.errors)")
        #expect(report.replayedCalls > 500)
        #expect(report.peakLiveMappings > 0)
    }

    @Test(arguments: Oracle.runs)
    func theWholeTraceReplaysOnVTdWithItsGroupsAndEveryMappingIsAccountedFor(run: String) throws {
        let trace = try #require(Oracle.traces[run])
        let groups = try IOMMUGroupsDump.read(Oracle.path(run, "groups.txt"))
        let report = try TraceReplayer(trace: trace, configuration: ReplayConfiguration(groups: groups, compare: true)).run()
        #expect(report.replayErrors == 0, "\(report.errors)")
        let counts = report.events
        // What stays live at the end is what Linux never unmapped.
        let liveInTrace = (counts["dma_map_page"] ?? 0) - (counts["dma_unmap_page"] ?? 0)
        #expect(report.liveAtEnd.streaming == liveInTrace)
        #expect(report.liveAtEnd.coherent == (counts["dma_alloc"] ?? 0) - (counts["dma_free"] ?? 0))
        let comparison = try #require(report.comparison)
        #expect(comparison.compared == (counts["dma_map_page"] ?? 0) + (counts["dma_map_sg"] ?? 0))
        #expect(comparison.linuxMapCalls == counts["map"] ?? 0)
        // Linux 6.12's placement rules (LinuxIOVAAllocator) reproduce every bus address Linux returned.
        #expect(comparison.linuxModel.identical == comparison.linuxModel.compared, "\(comparison.linuxModel.firstDifferences)")
        #expect(comparison.linuxModel.modelFailures == 0)
        if run != "intel-passthrough" {
            #expect(comparison.linuxModel.coherentIdentical == counts["dma_alloc"])
        }
        if run == "intel-passthrough" {
            // Identity domains: bus address = physical address, as in Linux.
            #expect(comparison.identical == comparison.compared)
            #expect(report.policy == "passthrough" && comparison.ourMapCalls == 0)
        }
    }

    @Test func reservedRegionsFromTheGroupsReachTheDevices() throws {
        let trace = try #require(Oracle.traces["amd"])
        let groups = try IOMMUGroupsDump.read(Oracle.path("amd", "groups.txt"))
        let replayer = try TraceReplayer(trace: trace, configuration: ReplayConfiguration(groups: groups, eventLimit: 10))
        let nvme = try #require(replayer.platform.subsystem.device(at: PCIAddress(parsing: "0000:00:03.0")))
        #expect(nvme.reservedRegions.contains { $0.kind == .reserved && $0.range.lowerBound == 0xFD_0000_0000 })
        let intel = try TraceReplayer(trace: try #require(Oracle.traces["intel-strict"]), configuration: ReplayConfiguration(
            groups: try IOMMUGroupsDump.read(Oracle.path("intel-strict", "groups.txt")), eventLimit: 10))
        let isa = try #require(intel.platform.subsystem.device(at: PCIAddress(parsing: "0000:00:1f.2")))
        let isaRegion = try #require(isa.reservedRegions.first { $0.kind == .directRelaxable })
        #expect(isaRegion.range == 0...0xFF_FFFF)
        // The ISA bridge's 16 MiB window is mapped 1:1, as Linux's boot-time map: event shows.
        #expect(isa.group.defaultDomain?.lookup(0x80_0000) != nil)
    }

    @Test func eachCPUsCallsCanRunOnAThreadOfTheirOwn() throws {
        let trace = try #require(Oracle.traces["amd"])
        var configuration = ReplayConfiguration(policy: .lazy, eventLimit: 4000)
        configuration.threadPerCPU = true
        let threaded = try TraceReplayer(trace: trace, configuration: configuration).run()
        configuration.threadPerCPU = false
        let single = try TraceReplayer(trace: trace, configuration: configuration).run()
        #expect(threaded.replayErrors == 0 && threaded.threading.contains("per trace CPU"))
        #expect(threaded.replayedCalls == single.replayedCalls && threaded.liveAtEnd.streaming == single.liveAtEnd.streaming)
    }

    @Test func jsonKeysAreStable() throws {
        let trace = try #require(Oracle.traces["intel-strict"])
        let report = try TraceReplayer(trace: trace, configuration: ReplayConfiguration(compare: true, eventLimit: 300)).run()
        let json = try JSONText.encode(report)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        for key in ["events", "malformedLines", "replayErrors", "peakLiveMappings", "peakLiveIovaBytes", "comparison", "units"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        let comparison = try #require(object["comparison"] as? [String: Any])
        for key in ["compared", "identical", "linuxMapCalls", "ourMapCalls"] { #expect(comparison[key] != nil, "missing \(key)") }
    }
}

@Suite struct LinuxPlacementModelTests {
    static let trace = """
        dd-1 [000] ..... 1.000000: dma_map_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=1000 attrs=
        dd-1 [000] ..... 1.000100: dma_unmap_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 attrs=
        dd-1 [000] ..... 1.000200: dma_map_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=ffffe000 size=4096 phys_addr=2000 attrs=
        dd-1 [000] ..... 1.020000: dma_map_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=fffff000 size=4096 phys_addr=3000 attrs=
        """

    func model(_ policy: ReplayConfiguration.Policy) throws -> LinuxModelComparison {
        let parsed = try TraceParser(strict: true).parse(Self.trace)
        let report = try TraceReplayer(trace: parsed, configuration: ReplayConfiguration(policy: policy, compare: true)).run()
        #expect(report.replayErrors == 0)
        return try #require(report.comparison).linuxModel
    }

    @Test func aLazyDomainReusesAnIOVAOnlyAfterTheFlushTimer() throws {
        // Lazy: the freed IOVA waits in the flush queue, so the next map gets a new one; 10 ms later
        // the timer has freed it into the CPU's cache and it comes back.
        #expect(try model(.lazy).identical == 3)
        // Strict: it is reused at once, which is not what this (lazy) trace shows.
        #expect(try model(.strict).identical == 1)
    }
}
