import ArgumentParser
import Workloads

/// `iommu-sim bench iova`: the IOVA allocator's allocate+free cost (see ``IOVABenchmark``).
struct BenchIOVACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iova",
        abstract: "Measure IOVA allocate+free pairs (single page, mixed 1-32 pages, bursts of 256).")

    @Option(help: "Allocate+free pairs per thread (default: run for --duration).")
    var iterations: Int?

    @Option(help: "Seconds per case and thread count when --iterations is not given.")
    var duration: Double = 1.0

    @Option(help: "Run with this many threads only (default: 1 and 2).")
    var threads: Int?

    @Option(name: .customLong("case"), help: "Run only this case: single, mixed or burst (default: all).")
    var benchCase: String?

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        if let n = iterations, n <= 0 { throw ValidationError("--iterations must be positive, got \(n)") }
        if !(duration > 0 && duration <= 3600) { throw ValidationError("--duration must be in (0, 3600] seconds, got \(duration)") }
        if let t = threads, !(1...256).contains(t) { throw ValidationError("--threads must be between 1 and 256, got \(t)") }
        if let c = benchCase, IOVABenchmarkOptions.Case(rawValue: c) == nil {
            throw ValidationError("--case must be single, mixed or burst, got \(c)")
        }
    }

    func run() throws {
        let options = IOVABenchmarkOptions(iterations: iterations, duration: duration,
                                           threads: threads.map { [$0] } ?? [1, 2],
                                           cases: benchCase.flatMap { IOVABenchmarkOptions.Case(rawValue: $0) }.map { [$0] }
                                               ?? IOVABenchmarkOptions.Case.allCases)
        let report = IOVABenchmark.run(options)
        print(json ? report.renderJSON() : report.renderText())
    }
}
