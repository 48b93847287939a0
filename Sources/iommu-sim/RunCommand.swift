import ArgumentParser
import Foundation
import IOMMUCore
import Workloads

/// `iommu-sim run [SCENARIO]`: the default mixed workload, or one built-in
/// device scenario (see `--list`), optionally across several drivers and
/// policies (`--compare`), reported as text, JSON or an HTML page.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the default workload, or a built-in device scenario, and report (the default verb).",
        discussion: """
        Without SCENARIO: the default mixed workload on the default platform.
        With SCENARIO (see --list): that scenario's devices on a platform with one IOMMU unit; parameters come
        from the scenario's defaults, then --config FILE (YAML), then the command line.
        """)

    @Argument(help: "A built-in scenario (see --list). None: the default mixed workload.")
    var scenario: String?

    @OptionGroup var platformOptions: PlatformOptions

    @Flag(name: .long, help: "List the built-in scenarios, one line each, and exit.")
    var list = false

    @Option(name: .long, help: "A YAML file of scenario settings (keys: \(ScenarioSettings.keys.joined(separator: ", "))).")
    var config: String?

    @Flag(name: .long, help: "Run the scenario once per --driver and --policy (comma lists) and print one table.")
    var compare = false

    @Option(name: .long, help: "Default workload: transfers per device (default 64).")
    var iterations: Int?

    @Option(name: .long, help: "Seed for random sizes, offsets and data (default 1).")
    var seed: UInt64?

    @Option(name: .long, help: "Scenario: devices of the scenario's kind.")
    var devices: Int?

    @Option(name: .customLong("queue-depth"), help: "Scenario: ring or queue entries per device.")
    var queueDepth: Int?

    @Option(name: .customLong("min-size"), help: "Scenario: smallest transfer (4096, 4K, 64KiB, 1M).")
    var minSize: String?

    @Option(name: .customLong("max-size"), help: "Scenario: largest transfer.")
    var maxSize: String?

    @Option(name: .long, help: "Scenario: work units per device (ring batches, commands, probes, ...).")
    var operations: Int?

    @Option(name: .long, help: "Scenario: run for this many seconds instead of an operation count.")
    var duration: String?

    @Option(name: .long, help: "Scenario: also write a self-contained HTML report with charts to this file.")
    var html: String?

    @Flag(name: .long, help: "No progress line on standard error.")
    var quiet = false

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if let iterations, !(1...10_000_000).contains(iterations) { throw ValidationError("--iterations must be 1...10000000") }
    }

    func run() throws {
        if list {
            let width = ScenarioKind.allCases.map(\.rawValue.count).max() ?? 0
            let attackWidth = AttackScenario.all.map(\.name.count).max() ?? 0
            let column = max(width, attackWidth) + 2
            print("Device scenarios:")
            for kind in ScenarioKind.allCases {
                print("  " + kind.rawValue.padding(toLength: column, withPad: " ", startingAt: 0) + kind.summary)
            }
            print("Attack scenarios (also iommu-sim attack NAME):")
            for attack in AttackScenario.all {
                print("  " + attack.name.padding(toLength: column, withPad: " ", startingAt: 0) + attack.summary)
            }
            return
        }
        if let name = scenario, AttackScenario.all.contains(where: { $0.name == name }) {
            // An attack scenario runs as `iommu-sim attack NAME` would, on the same --driver and --policy lists.
            var arguments = [name]
            if let driver = platformOptions.driver { arguments += ["--driver", driver] }
            if let policy = platformOptions.policy { arguments += ["--policy", policy] }
            if json { arguments.append("--json") }
            let attack = try AttackCommand.parse(arguments)
            try attack.run()
            return
        }
        let fileSettings = try config.map(loadSettings) ?? ScenarioSettings()
        if let name = scenario ?? fileSettings.scenario {
            try runScenario(named: name, settings: try commandLineSettings().overriding(fileSettings))
        } else {
            if config != nil { throw ScenarioError.invalidValue(key: "scenario", value: "", expected: "a scenario to run, in the file or as SCENARIO") }
            try runDefaultWorkload()
        }
    }

    func runDefaultWorkload() throws {
        for (name, given) in [("--compare", compare), ("--html", html != nil), ("--devices", devices != nil),
                              ("--queue-depth", queueDepth != nil), ("--min-size", minSize != nil),
                              ("--max-size", maxSize != nil), ("--operations", operations != nil),
                              ("--duration", duration != nil)] where given {
            throw ValidationError("\(name) applies to scenarios: iommu-sim run SCENARIO \(name) ... (see --list)")
        }
        let platform = try EmulatedPlatform(platformOptions.specification())
        let progress = ProgressLine(isTerminal: ProgressLine.standardErrorIsTerminal, quiet: quiet)
        let report = DefaultWorkload(iterations: iterations ?? 64, seed: seed ?? 1).run(on: platform, progress: progress.update)
        progress.finish()
        if json { try printJSON(report) } else { print(report.renderText(), terminator: "") }
        if report.checksFailed > 0 { throw ExitCode(2) }
    }

    func commandLineSettings() throws -> ScenarioSettings {
        var settings = ScenarioSettings()
        settings.drivers = platformOptions.driverNames
        settings.policies = platformOptions.policyNames
        settings.devices = devices
        settings.queueDepth = queueDepth
        settings.minSize = try minSize.map { text throws(ScenarioError) in try ByteSize.parse(text, key: "--min-size") }
        settings.maxSize = try maxSize.map { text throws(ScenarioError) in try ByteSize.parse(text, key: "--max-size") }
        settings.operations = operations
        settings.duration = try duration.map { text throws(ScenarioError) in try ScenarioSettings.seconds(text, key: "--duration") }
        settings.seed = seed
        return settings
    }

    func loadSettings(_ path: String) throws -> ScenarioSettings {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ScenarioError.unreadableConfig(file: path, reason: "cannot read the file")
        }
        return try ScenarioSettings.load(yaml: String(decoding: data, as: UTF8.self), file: path)
    }

    func runScenario(named name: String, settings: ScenarioSettings) throws {
        if platformOptions.acpi != nil || platformOptions.widest || iterations != nil {
            throw ValidationError("--acpi, --widest and --iterations apply to the default workload; a scenario builds its own platform and counts --operations")
        }
        let kind = try ScenarioKind(named: name)
        let parameters = try settings.parameters(for: kind)
        let driverNames = settings.drivers ?? ["vtd"], policyNames = settings.policies ?? ["strict"]
        if !compare, driverNames.count > 1 || policyNames.count > 1 {
            throw ValidationError("several drivers or policies (\(driverNames.joined(separator: ","))/\(policyNames.joined(separator: ","))) need --compare")
        }
        let families = try driverNames.map { name throws(ScenarioError) in try IOMMUFamily.emulated(named: name) }
        let policies = try policyNames.map { name throws(ScenarioError) in try ScenarioPolicy(named: name) }
        let progress = ProgressLine(isTerminal: ProgressLine.standardErrorIsTerminal, quiet: quiet)
        let report: RunReport
        do {
            report = try ScenarioRunner.report(kind, parameters: parameters, families: families, policies: policies,
                                               progress: progress.update)
            progress.finish()
        } catch {
            progress.finish()
            throw error
        }
        if let html {
            do { try HTMLReportPage(report).render().write(toFile: html, atomically: true, encoding: .utf8) } catch {
                throw ScenarioError.unreadableConfig(file: html, reason: "cannot write the HTML report: \(error.localizedDescription)")
            }
        }
        if json { try printJSON(report) } else { print(report.renderText(), terminator: "") }
        if report.checksFailed > 0 { throw ExitCode(2) }
    }
}

struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Print the platform: devices, groups, default domains, apertures, page sizes, reserved regions.")

    @OptionGroup var platformOptions: PlatformOptions

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let platform = try EmulatedPlatform(platformOptions.specification())
        let report = platform.report()
        if json { try printJSON(report) } else { print(report.renderText(), terminator: "") }
    }
}
