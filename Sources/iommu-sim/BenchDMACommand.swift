import ArgumentParser
import DMA
import IOMMUCore
import Workloads

/// Options of `iommu-sim bench dma`, kept in one group so that a family can add its own flags.
struct BenchDMAOptions: ParsableArguments {
    @Option(name: .long, help: "Threads mapping and unmapping at once.")
    var threads: Int = 1

    @Option(name: .long, help: "Seconds each thread runs (ignored with --iterations).")
    var seconds: Double = 1

    @Option(name: .long, help: "A fixed number of map+unmap pairs per thread instead of a duration.")
    var iterations: Int?

    @Option(name: .long, help: "Seconds every thread maps and unmaps untimed before all start timing together (duration runs only).")
    var warmup: Double = 0.25

    @Option(name: .long, help: "4 KiB pages per mapping.")
    var pages: Int = 1

    @Option(name: .long, help: "to-device, from-device or bidirectional.")
    var direction: String = "bidirectional"

    @Option(name: .long, help: "Comma-separated protection policies: strict, lazy (invalidation), shadow (shadow buffers in a strict domain).")
    var policy: String = "strict,lazy,shadow"

    @Option(name: .long, help: "IOMMU family (an emulated one): \(IOMMUFamily.allCases.filter(\.isEmulated).map(\.rawValue).joined(separator: ", ")).")
    var driver: String = IOMMUFamily.intelVTd.rawValue

    @Option(name: .long, help: "GiB of emulated memory (at least 8; lower it to run under valgrind).")
    var memoryGib: UInt64 = 64

    @Flag(name: .customLong("no-leaf-array"), help: "AMD-Vi: turn off the driver's leaf-page array in DMA domains.")
    var noLeafArray = false

    func benchmarkOptions() throws -> DMABenchmark.Options {
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1...64") }
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
        if let iterations, !(1...1_000_000_000).contains(iterations) { throw ValidationError("--iterations must be 1...1000000000") }
        guard (1...512).contains(pages) else { throw ValidationError("--pages must be 1...512") }
        guard let chosenDirection = DMADirection(rawValue: direction) else {
            throw ValidationError("unknown --direction '\(direction)': expected to-device, from-device or bidirectional")
        }
        guard let family = IOMMUFamily(rawValue: driver), family.isEmulated else {
            throw ValidationError("unknown or unemulated --driver '\(driver)': expected \(IOMMUFamily.allCases.filter(\.isEmulated).map(\.rawValue).joined(separator: ", "))")
        }
        var policies: [DMABenchmark.Policy] = []
        for name in policy.split(separator: ",") {
            guard let chosen = DMABenchmark.Policy(rawValue: String(name)) else {
                throw ValidationError("unknown policy '\(name)': expected strict, lazy or shadow")
            }
            policies.append(chosen)
        }
        guard !policies.isEmpty else { throw ValidationError("--policy needs one or more of strict, lazy, shadow") }
        var options = DMABenchmark.Options()
        options.threads = threads
        options.seconds = seconds
        options.iterations = iterations
        guard warmup >= 0, warmup <= 60 else { throw ValidationError("--warmup must be in [0, 60]") }
        options.warmupSeconds = warmup
        options.pages = pages
        options.direction = chosenDirection
        options.policies = policies
        options.family = family
        guard (8...1024).contains(memoryGib) else { throw ValidationError("--memory-gib must be 8...1024") }
        options.memoryGiB = memoryGib
        guard !noLeafArray || family == .amdVi else { throw ValidationError("--no-leaf-array applies to --driver amd only") }
        if family == .amdVi { options.amdLeafArray = !noLeafArray }
        return options
    }
}

struct BenchDMACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dma",
        abstract: "Map+unmap latency through the DMA API (dma_map_benchmark), and a device read through the IOTLB.")

    @OptionGroup var options: BenchDMAOptions

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let report = try DMABenchmark.run(try options.benchmarkOptions())
        if json { try printJSON(report) } else { print(report.renderText()) }
    }
}
