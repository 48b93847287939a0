import ArgumentParser
import Workloads

/// `iommu-sim fuzz`: the protection fuzzer over every family and strategy.
///
/// `--json` prints `{ "passed", "runs": [ { "family", "strategy", "seed", "operations", "dmaCalls",
/// "iommuCalls", "deviceAccesses", "faults", "bytesReached": { "mapped", "direct", "pass-through", "stale", "shadow" },
/// "staleHits", "staleFaults", "refusalsChecked", "memorySweeps", "faultsDelivered", "seconds",
/// "mismatch": { "operation", "detail", "replay" } | absent } ] }`.
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Drive random DMA-API and IOMMU-API calls and device accesses, checking each against the reference model.",
        discussion: "Exits with status 2 on the first disagreement and prints the command that replays it.")

    @Option(name: .long, help: "Operations per family and strategy.")
    var ops: Int = 100_000

    @Option(name: .long, help: "Seed of the run; the same seed replays the same operations.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Comma-separated families (default: every emulated one).")
    var driver: String?

    @Option(name: .long, help: "Comma-separated strategies: strict, lazy, shadow, passthrough (default: all four).")
    var policy: String?

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    struct Output: Codable {
        var passed: Bool
        var runs: [ProtectionFuzzer.Report]
    }

    func run() throws {
        guard ops >= 0, ops <= 1_000_000_000 else { throw ValidationError("--ops must be 0...1000000000") }
        let families = try ProtectionSelection.families(driver)
        let strategies = try ProtectionSelection.strategies(policy, default: ProtectionStrategy.fuzzed)
        var reports: [ProtectionFuzzer.Report] = []
        for family in families {
            for strategy in strategies {
                let report = try ProtectionFuzzer.run(.init(family: family, strategy: strategy, operations: ops, seed: seed))
                reports.append(report)
                if !json { print(report.summaryLine) }
                if let mismatch = report.mismatch, !json { print("MISMATCH at \(mismatch)") }
            }
        }
        let passed = reports.allSatisfy(\.passed)
        if json { try printJSON(Output(passed: passed, runs: reports)) } else {
            let total = reports.reduce(0) { $0 + $1.operations }
            print(passed ? "\(total) operations, no disagreement with the model" : "FAILED: the stack disagreed with the model")
        }
        if !passed { throw ExitCode(2) }
    }
}

/// Parsing of the family and strategy lists shared by `fuzz` and `attack`.
enum ProtectionSelection {
    static func families(_ text: String?) throws -> [IOMMUFamily] {
        let emulated = IOMMUFamily.allCases.filter(\.isEmulated)
        guard let text else { return emulated }
        return try text.split(separator: ",").map { name in
            guard let family = IOMMUFamily(rawValue: String(name)), family.isEmulated else {
                throw ValidationError("unknown or unemulated --driver '\(name)': expected \(emulated.map(\.rawValue).joined(separator: ", "))")
            }
            return family
        }
    }

    static func strategies(_ text: String?, default defaults: [ProtectionStrategy]) throws -> [ProtectionStrategy] {
        guard let text else { return defaults }
        return try text.split(separator: ",").map { name in
            guard let strategy = ProtectionStrategy.named(String(name)) else {
                throw ValidationError("unknown --policy '\(name)': expected \(ProtectionStrategy.fuzzed.map(\.name).joined(separator: ", "))")
            }
            return strategy
        }
    }
}
