import Foundation
import IOMMUCore
import Testing
import Workloads

/// The oracle traces in ../shared/oracle (real Linux 6.12 ftrace output from QEMU).
enum Oracle {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/oracle")
    static let runs = ["intel-strict", "intel-passthrough", "amd"]

    static func path(_ run: String, _ file: String) -> String { root.appendingPathComponent(run).appendingPathComponent(file).path }

    /// Parsed once per test process: parsing in debug builds costs a few hundred milliseconds.
    static let traces: [String: ParsedTrace] = {
        var parsed: [String: ParsedTrace] = [:]
        for run in runs { parsed[run] = try? TraceParser().parse(contentsOf: path(run, "trace.txt")) }
        return parsed
    }()
}

@Suite struct ReplayParserTests {
    /// Counted independently with awk over the field after the timestamp.
    static let expectedCounts: [String: [String: Int]] = [
        "intel-strict": ["add_device_to_group": 7, "attach_device_to_domain": 7, "dma_alloc": 10, "dma_map_page": 6651,
                         "dma_map_sg": 229, "dma_unmap_page": 6396, "dma_unmap_sg": 229, "map": 12739,
                         "tracing_mark_write": 23, "unmap": 6625],
        "amd": ["add_device_to_group": 7, "attach_device_to_domain": 7, "dma_alloc": 10, "dma_map_page": 6658,
                "dma_map_sg": 224, "dma_unmap_page": 6403, "dma_unmap_sg": 224, "map": 13302,
                "tracing_mark_write": 23, "unmap": 6627],
        "intel-passthrough": ["add_device_to_group": 7, "attach_device_to_domain": 7, "dma_alloc": 11,
                              "dma_map_page": 6631, "dma_map_sg": 249, "dma_unmap_page": 6376, "dma_unmap_sg": 249,
                              "tracing_mark_write": 23],
    ]

    @Test(arguments: Oracle.runs)
    func everyOracleTraceHasTheEventCountsLinuxPrinted(run: String) throws {
        let trace = try #require(Oracle.traces[run])
        #expect(trace.eventCounts == Self.expectedCounts[run])
        #expect(trace.malformed.isEmpty)
    }

    @Test func aMapPageLineIsReadFieldByField() throws {
        let text = "    kworker/u8:1-31      [001] .....     2.214684: dma_map_page: 0000:00:02.0 dir=FROM_DEVICE "
            + "dma_addr=ffffd000 size=4096 phys_addr=a03c000 attrs=\n"
        let trace = try TraceParser(strict: true).parse(text)
        let event = try #require(trace.events.first)
        #expect(event.kind == .dmaMapPage && event.cpu == 1 && event.pid == 31 && event.timestampMicros == 2_214_684)
        #expect(event.address == 0xFFFF_D000 && event.size == 4096 && event.physical == 0xA03C000 && event.direction == .fromDevice)
        #expect(trace.devices == ["0000:00:02.0"])
    }

    @Test func scatterListsKeepTheirListsAndTheTruncationMark() throws {
        let text = "dd-154 [001] ..... 2.4: dma_map_sg: 0000:00:02.0 dir=TO_DEVICE nents=200/128 ents=2/2 [TRUNCATED] "
            + "dma_addrs={0xfff80000,0xfff00000} sizes={0x20000,0x1000} phys_addrs={0x1000,0x2000} attrs=\n"
            + "<idle>-0 [000] d.H1. 2.5: dma_unmap_sg: 0000:00:02.0 dir=TO_DEVICE phys_addrs={0x1000,0x2000} attrs=\n"
            + "init-1 [000] ..... 1.4: map: IOMMU: iova=0x0000000000000000 - 0x0000000001000000 paddr=0x0000000000000000 size=16777216\n"
        let trace = try TraceParser(strict: true).parse(text)
        #expect(trace.events.count == 3)
        #expect(trace.events[0].truncated && trace.events[0].busSegments == [0xFFF8_0000, 0xFFF0_0000])
        #expect(trace.events[0].size == 0x21000 && trace.events[0].physicalSegments == [0x1000, 0x2000])
        #expect(trace.events[1].kind == .dmaUnmapSG && trace.events[1].cpu == 0)
        #expect(trace.events[2].kind == .iommuMap && trace.events[2].size == 16 << 20)
    }

    @Test func garbledLinesAreReportedWithTheirNumbersAndSkipped() throws {
        let text = """
            # tracer: nop
            dd-154 [001] ..... 2.4: dma_map_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=1000 size=4096 phys_addr=1000 attrs=
            this line is not ftrace output
            dd-154 [001] ..... 2.5: dma_map_page: 0000:00:02.0 dir=SIDEWAYS dma_addr=1000 size=4096 phys_addr=1000 attrs=
            dd-154 [001] ..... 2.6: dma_unmap_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=zz size=4096 attrs=
            dd-154 [001] ..... 2.7: dma_map_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=2000 size=4096
            dd-154 [001] ..... 2.8: dma_map_page: 0000:00:02.0 dir=TO_DEVICE dma_addr=3000 size=4096 phys_addr=
            """
        let trace = try TraceParser().parse(text)
        #expect(trace.malformed.map(\.line) == [3, 4, 5, 6, 7])
        #expect(trace.malformed[0].reason == "no [CPU] column")
        #expect(trace.malformed[1].reason == "dma_map_page: bad value for dir=")
        #expect(trace.malformed[3].reason == "dma_map_page: missing phys_addr=")
        #expect(trace.events.count == 1 && trace.eventCounts["dma_map_page"] == 1)
        #expect(throws: TraceParseError.malformed(MalformedTraceLine(line: 3, reason: "no [CPU] column"))) {
            try TraceParser(strict: true).parse(text)
        }
    }

    @Test func aTruncatedFileStopsCleanlyMidLine() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Oracle.path("intel-strict", "trace.txt"))))
        var cut = 200_000
        while bytes[cut] != 0x0A { cut += 1 }
        let partial = Array(bytes[..<(cut + 60)])
        let trace = try TraceParser().parse(partial)
        #expect(trace.malformed.count == 1 && trace.malformed[0].line == trace.lineCount)
        #expect(!trace.events.isEmpty)
    }

    @Test func aMissingTraceIsAClearError() {
        #expect(throws: TraceParseError.unreadable(path: "/nonexistent/trace.txt", reason: "no such file")) {
            try TraceParser().parse(contentsOf: "/nonexistent/trace.txt")
        }
    }

    @Test func groupsDumpsGiveTypesRegionsAndDevices() throws {
        let intel = try IOMMUGroupsDump.read(Oracle.path("intel-strict", "groups.txt"))
        #expect(intel.count == 5 && intel.allSatisfy { $0.domainKind == .dma })
        let isa = try #require(intel.first { $0.number == 4 })
        #expect(isa.devices == ["0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3"])
        #expect(isa.reservedRegions.map(\.kind) == [.directRelaxable, .msi])
        #expect(isa.reservedRegions[0].range == 0...0xFF_FFFF)
        let amd = try IOMMUGroupsDump.read(Oracle.path("amd", "groups.txt"))
        #expect(amd[0].reservedRegions.contains { $0.kind == .reserved && $0.range == 0xFD_0000_0000...0xFF_FFFF_FFFF })
        #expect(throws: IOMMUGroupsError.malformed(line: 4, reason: "unknown reserved region kind 'weird'")) {
            try IOMMUGroupsDump.parse("/sys/kernel/iommu_groups/0\ntype: DMA\nreserved_regions:\n0x0 0x1 weird\n")
        }
    }

    @Test func groupsAreReadFromADirectoryTreeLikeSysfs() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("groups-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let group = root.appendingPathComponent("7")
        try FileManager.default.createDirectory(at: group.appendingPathComponent("devices/0000:00:03.0"),
                                                withIntermediateDirectories: true)
        try "DMA-FQ\n".write(to: group.appendingPathComponent("type"), atomically: true, encoding: .utf8)
        try "0x00000000fee00000 0x00000000feefffff msi\n".write(to: group.appendingPathComponent("reserved_regions"),
                                                                atomically: true, encoding: .utf8)
        let groups = try IOMMUGroupsDump.read(root.path)
        #expect(groups.count == 1 && groups[0].number == 7 && groups[0].domainKind == .dmaLazy)
        #expect(groups[0].devices == ["0000:00:03.0"] && groups[0].reservedRegions[0].kind == .msi)
    }

    @Test func recordingWithoutTracefsIsAClearError() {
        #expect(throws: TraceRecordError.tracefsUnavailable("/nonexistent-tracefs/trace does not exist")) {
            try TraceRecorder(root: "/nonexistent-tracefs").record(seconds: 0, output: "/tmp/never-written")
        }
    }
}
