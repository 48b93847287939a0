import ArgumentParser
import Workloads

/// `iommu-sim record`: captures this machine's dma:* and iommu:* ftrace events for `replay`.
struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record this Linux machine's DMA and IOMMU trace events (root; mounts tracefs if needed).",
        discussion: "Clears the ftrace ring buffer, enables events/dma and events/iommu, waits, saves the trace "
            + "and restores tracing_on and the two event switches as it found them.")

    @Option(name: .long, help: "How long to record.")
    var seconds: Double = 10

    @Option(name: .long, help: "Where to write the trace text.")
    var output: String

    @Option(name: .long, help: "The tracefs directory (default /sys/kernel/tracing).")
    var tracefs: String?

    func run() throws {
        do { try TraceRecorder(root: tracefs).record(seconds: seconds, output: output) } catch {
            throw ValidationError("\(error)")
        }
        print("recorded \(seconds) s of dma/iommu events to \(output); replay with: iommu-sim replay \(output)")
    }
}
