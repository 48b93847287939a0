import ArgumentParser
import IOMMUCore
import Workloads

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the default workload on the emulated platform and report per device (the default verb).")

    @OptionGroup var platformOptions: PlatformOptions

    @Option(name: .long, help: "Transfers per device.")
    var iterations: Int = 64

    @Option(name: .long, help: "Seed for the workload's random sizes, offsets and data.")
    var seed: UInt64 = 1

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard iterations > 0, iterations <= 10_000_000 else { throw ValidationError("--iterations must be 1...10000000") }
    }

    func run() throws {
        let platform = try EmulatedPlatform(platformOptions.specification())
        let report = DefaultWorkload(iterations: iterations, seed: seed).run(on: platform)
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
