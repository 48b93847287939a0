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

struct BenchDMACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dma",
        abstract: "Map+unmap of one 4 KiB page through the DMA API and through the IOMMU-API alone, and a device read through the IOTLB.")

    @Option(name: .long, help: "Operations per case.")
    var iterations: Int = 200_000

    @Option(name: .long, help: "Comma-separated invalidation policies: strict,lazy.")
    var policy: String = "strict,lazy"

    @Option(name: .long, help: "IOMMU family of the default platform: \(IOMMUFamily.allCases.map(\.rawValue).joined(separator: ", ")).")
    var driver: String = "vtd"

    @Flag(name: .customLong("no-leaf-array"), help: "AMD-Vi: turn off the driver's leaf-page array in DMA domains.")
    var noLeafArray = false

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        guard iterations > 0 else { throw ValidationError("--iterations must be positive") }
        var policies: [DefaultDomainPolicy.Invalidation] = []
        for name in policy.split(separator: ",") {
            guard let chosen = DefaultDomainPolicy.Invalidation(rawValue: String(name)) else {
                throw ValidationError("unknown policy '\(name)': expected strict or lazy")
            }
            policies.append(chosen)
        }
        guard let family = IOMMUFamily(rawValue: driver) else {
            throw ValidationError("unknown --driver '\(driver)': expected \(IOMMUFamily.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard family.isEmulated else { throw ValidationError("the \(family) family has no emulation yet") }
        guard !noLeafArray || family == .amdVi else { throw ValidationError("--no-leaf-array applies to --driver amd only") }
        let report = try DMABenchmark.run(.init(iterations: iterations, policies: policies, family: family,
                                                amdLeafArray: family == .amdVi ? !noLeafArray : nil))
        if json { try printJSON(report) } else { print(report.renderText()) }
    }
}
