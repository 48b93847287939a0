import ArgumentParser
import Foundation
import IOMMUCore
import Workloads

/// `iommu-sim replay FILE`: replays a Linux ftrace of dma:* and iommu:* events
/// through this system's DMA API on any driver and policy.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a Linux DMA/IOMMU ftrace (cat /sys/kernel/tracing/trace) on any driver and policy.",
        discussion: """
        Every dma_map_page/dma_map_sg/dma_alloc/... call is replayed per device in timestamp order (on one thread)
        on a platform whose devices are the trace's devices, each behind one IOMMU unit. Physical addresses from the
        trace are used as they are. By default the DMA layer places IOVAs by Linux 6.12's rules (--placement linux),
        each call as the trace's CPU at the trace's time. With --compare, bus addresses and IOMMU map/unmap calls are
        compared with Linux's.
        """)

    @Argument(help: "The trace text file.")
    var file: String

    @Option(name: .long, help: "IOMMU family: \(IOMMUFamily.allCases.filter(\.isEmulated).map(\.rawValue).joined(separator: ", ")) (default vtd).")
    var driver: String = "vtd"

    @Option(name: .long, help: "strict, lazy or passthrough (default: the --groups types, else strict).")
    var policy: String?

    @Option(name: .long, help: "A dump of /sys/kernel/iommu_groups (or that directory): groups, domain types, reserved regions.")
    var groups: String?

    @Flag(name: .long, help: "Compare bus addresses and IOMMU-API map/unmap calls with the trace's.")
    var compare = false

    @Option(name: .customLong("pci-windows"), help: "A dmesg log: its 'root bus resource [mem …]' windows are kept out of every domain's IOVA space.")
    var pciWindows: String?

    @Option(name: .long, help: "IOVA placement in the DMA layer: linux (Linux 6.12's rules, each call on its trace CPU at its trace time; the default) or native (this system's allocator).")
    var placement: String = "linux"

    @Flag(name: .customLong("thread-per-cpu"), help: "Run each trace CPU's calls on a thread of its own (per-thread IOVA caches act per CPU).")
    var threadPerCPU = false

    @Flag(name: .customLong("strict-parse"), help: "Stop at the first malformed line instead of skipping it.")
    var strictParse = false

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Option(name: .long, help: "Also write a self-contained HTML report to this file.")
    var html: String?

    @Option(name: .long, help: "Replay only the first N events.")
    var limit: Int?

    /// CPU time this thread has used (parsing and replay run on it alone).
    static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    func run() throws {
        guard let family = IOMMUFamily(rawValue: driver), family.isEmulated else {
            throw ValidationError("unknown --driver '\(driver)': expected \(IOMMUFamily.allCases.filter(\.isEmulated).map(\.rawValue).joined(separator: ", "))")
        }
        var chosenPolicy: ReplayConfiguration.Policy?
        if let policy {
            guard let value = ReplayConfiguration.Policy(rawValue: policy == "pass-through" ? "passthrough" : policy) else {
                throw ValidationError("unknown --policy '\(policy)': expected strict, lazy or passthrough")
            }
            chosenPolicy = value
        }
        guard let chosenPlacement = ReplayConfiguration.Placement(rawValue: placement) else {
            throw ValidationError("unknown --placement '\(placement)': expected linux or native")
        }
        let linuxGroups: [LinuxIOMMUGroup]
        do { linuxGroups = try groups.map { path throws(IOMMUGroupsError) in try IOMMUGroupsDump.read(path) } ?? [] } catch {
            throw ValidationError("\(error)")
        }
        let clock = ContinuousClock()
        let cpuStart = Self.threadCPUSeconds()
        let start = clock.now
        let trace: ParsedTrace
        do { trace = try TraceParser(strict: strictParse).parse(contentsOf: file) } catch { throw ValidationError("\(error)") }
        let parsed = clock.now - start
        let parseSeconds = Double(parsed.components.seconds) + Double(parsed.components.attoseconds) / 1e18
        var configuration = ReplayConfiguration(family: family, policy: chosenPolicy, groups: linuxGroups,
                                                compare: compare, eventLimit: limit, recordsLatencies: html != nil)
        var windows: [ClosedRange<UInt64>] = []
        if let pciWindows {
            guard let data = FileManager.default.contents(atPath: pciWindows) else {
                throw ValidationError("cannot read --pci-windows '\(pciWindows)'")
            }
            windows = PCIHostWindows.parse(dmesg: String(decoding: data, as: UTF8.self))
        }
        configuration.pciWindows = windows
        configuration.threadPerCPU = threadPerCPU
        configuration.placement = chosenPlacement
        let replayer: TraceReplayer
        do { replayer = try TraceReplayer(trace: trace, configuration: configuration) } catch {
            throw ValidationError("cannot build the replay platform: \(error)")
        }
        var report = replayer.run(traceName: file, parseSeconds: parseSeconds)
        report.cpuSeconds = Self.threadCPUSeconds() - cpuStart
        if report.cpuSeconds > 0 { report.eventsPerCPUSecond = Double(min(trace.events.count, limit ?? .max)) / report.cpuSeconds }
        if let html {
            let page = HTMLReportPage(replayer.runReport(report)).render()
            do { try page.write(toFile: html, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("cannot write \(html): \(error.localizedDescription)")
            }
        }
        if json { print(try JSONText.encode(report)) } else { print(report.text, terminator: "") }
    }
}
