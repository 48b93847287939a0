import ArgumentParser
import Workloads

/// `iommu-sim attack [SCENARIO]`: the attack scenarios against every family and strategy.
///
/// `--json` prints `{ "outcomes": [ { "scenario", "family", "strategy", "attempted", "attempts", "blocked", "contained", "faults",
/// "bytesAttempted", "bytesLeakedInWindows": { window: bytes }, "bytesLeakedUndocumented", "notes": [...],
/// "unsupported" | absent } ] }`; every outcome's verdict is derived from those numbers as in the text output.
struct AttackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attack",
        abstract: "Run attack scenarios: what a malicious device attempted, what was blocked, what leaked.",
        discussion: "Exits with status 2 when any scenario leaked through a window no policy documents.")

    @Argument(help: "A scenario name (default: all of them; --list names them).")
    var scenario: String?

    @Flag(name: .long, help: "List the scenarios and exit.")
    var list = false

    @Option(name: .long, help: "Comma-separated families (default: every emulated one).")
    var driver: String?

    @Option(name: .long, help: "Comma-separated strategies: strict, lazy, shadow (default: all three).")
    var policy: String?

    @Option(name: .long, help: "Faults the fault-storm scenario provokes per family and strategy.")
    var faults: Int = 100_000

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    struct Output: Codable { var outcomes: [AttackOutcome] }

    func run() throws {
        if list {
            for entry in AttackScenario.all { print("\(entry.name.padding(toLength: 18, withPad: " ", startingAt: 0))  \(entry.summary)") }
            return
        }
        guard faults >= 0, faults <= 1_000_000_000 else { throw ValidationError("--faults must be 0...1000000000") }
        var chosen = AttackScenario.all
        if let scenario {
            guard let found = AttackScenario.named(scenario) else {
                throw ValidationError("unknown scenario '\(scenario)': expected \(AttackScenario.all.map(\.name).joined(separator: ", "))")
            }
            chosen = [found]
        }
        let families = try ProtectionSelection.families(driver)
        let strategies = try ProtectionSelection.strategies(policy, default: ProtectionStrategy.all)
        if let unprotected = strategies.first(where: { !ProtectionStrategy.all.contains($0) }) {
            throw ValidationError("--policy \(unprotected) protects nothing to attack: expected \(ProtectionStrategy.all.map(\.name).joined(separator: ", "))")
        }
        var outcomes: [AttackOutcome] = []
        for entry in chosen {
            for family in families {
                for strategy in strategies {
                    outcomes.append(try entry.run(AttackContext(family: family, strategy: strategy, stormFaults: faults)))
                }
            }
        }
        if json { try printJSON(Output(outcomes: outcomes)) } else { print(AttackOutcome.renderText(outcomes), terminator: "") }
        if outcomes.contains(where: { $0.bytesLeakedUndocumented > 0 }) { throw ExitCode(2) }
    }
}
