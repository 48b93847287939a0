import ArgumentParser

@main
struct IOMMUSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iommu-sim",
        abstract: "An emulated IOMMU subsystem: platforms, drivers, the DMA API and their workloads.",
        subcommands: [RunCommand.self, TopologyCommand.self, ReplayCommand.self, RecordCommand.self, FuzzCommand.self,
                      AttackCommand.self, BenchCommand.self, ACPICommand.self],
        defaultSubcommand: RunCommand.self)
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the hot paths (use a release build: swift run -c release iommu-sim bench ...).",
        subcommands: [BenchDMACommand.self, BenchIOVACommand.self])
}
