import DMA
import Emulation
import IOMMUCore

/// The built-in mixed workload: every device moves real data through the
/// DMA API and its IOMMU, in the pattern its class suggests, and every byte
/// that arrives is checked.
public struct DefaultWorkload: Sendable {
    /// Transfers per device.
    public var iterations: Int
    public var seed: UInt64

    public init(iterations: Int = 64, seed: UInt64 = 1) {
        self.iterations = max(1, iterations)
        self.seed = seed
    }

    /// The result of a run: the platform report with workload counters, and
    /// the faults the IOMMU-API delivered.
    public struct Report: Codable, Sendable {
        public var platform: PlatformReport
        public var iterations: Int
        public var seed: UInt64
        public var checksPassed: Int
        public var checksFailed: Int
        public var faults: [IOMMUFault]
    }

    /// Runs the workload; never throws: every failure is a failed check in the report.
    /// `progress` hears after every transfer how far the run has got.
    public func run(on platform: EmulatedPlatform, progress: ((ScenarioProgress) -> Void)? = nil) -> Report {
        var report = platform.report()
        var passed = 0, failed = 0
        let total = UInt64(iterations * platform.devices.count)
        let start = ScenarioClock.nanoseconds()
        var done: UInt64 = 0
        let tick = {
            done += 1
            progress?(ScenarioProgress(label: "default workload", elapsedSeconds: Double(ScenarioClock.nanoseconds() &- start) / 1e9,
                                       done: done, total: total, duration: nil, unit: "transfers"))
        }
        for (index, device) in platform.devices.enumerated() {
            guard let dma = platform.dma[device.address] else { continue }
            var generator = SplitMix64(seed: seed &+ UInt64(index) &* 0x1000_0001)
            var session = DeviceSession(platform: platform, dma: dma)
            session.exercise(iterations: iterations, generator: &generator, progress: tick)
            let engine = device.engine.statistics
            let stats = dma.statistics
            let entry = report.devices.firstIndex { $0.address == device.address.description }
            if let entry {
                report.devices[entry].workload = DeviceWorkloadReport(
                    mappings: stats.mappings, unmappings: stats.unmappings, bytesMapped: stats.bytesMapped,
                    bytesMoved: engine.bytesRead + engine.bytesWritten, iotlbHits: engine.translationsCached,
                    iotlbMisses: engine.translationsWalked, faults: engine.faults, checksPassed: session.passed,
                    checksFailed: session.failed, notes: session.notes)
            }
            passed += session.passed
            failed += session.failed
        }
        let units = platform.report().units
        report.units = units
        return Report(platform: report, iterations: iterations, seed: seed, checksPassed: passed, checksFailed: failed,
                      faults: platform.subsystem.recentFaults)
    }
}
