import Emulation
import IOMMUCore

/// A seeded randomised driver of the whole stack: long sequences of DMA-API
/// and IOMMU-API calls (streaming and coherent mappings, unmaps, lazy
/// flushes, domain changes, device removal and re-adding) interleaved with
/// device reads and writes at addresses chosen to probe every boundary, each
/// outcome compared with ``ReachabilityModel``. The same seed replays the
/// same run, so a failing seed is a reproducer.
public enum ProtectionFuzzer {
    public struct Configuration: Sendable, Hashable {
        public var family: IOMMUFamily
        public var strategy: ProtectionStrategy
        public var operations: Int
        public var seed: UInt64
        /// Every this many operations all tracked memory is compared with the model's shadow.
        public var sweepInterval: Int

        public init(family: IOMMUFamily, strategy: ProtectionStrategy, operations: Int, seed: UInt64, sweepInterval: Int = 64) {
            self.family = family
            self.strategy = strategy
            self.operations = max(0, operations)
            self.seed = seed
            self.sweepInterval = max(1, sweepInterval)
        }

        /// The command line that replays this run.
        public var replayCommand: String {
            "iommu-sim fuzz --driver \(family.rawValue) --policy \(strategy.name) --seed \(seed) --ops \(operations)"
        }
    }

    /// The first point where the stack and the model disagreed.
    public struct Mismatch: Sendable, Hashable, Codable, CustomStringConvertible {
        /// The 0-based operation at which it was seen.
        public var operation: Int
        public var detail: String
        public var replay: String

        public var description: String { "operation \(operation): \(detail)\n  replay: \(replay)" }
    }

    /// What a run did and found.
    public struct Report: Sendable, Hashable, Codable {
        public var family: String
        public var strategy: String
        public var seed: UInt64
        public var operations: Int
        public var dmaCalls: Int = 0
        public var iommuCalls: Int = 0
        public var deviceAccesses: Int = 0
        public var faults: Int = 0
        /// Bytes devices moved, by why the model let them through.
        public var bytesReached: [String: UInt64] = [:]
        /// Accesses through an unmapped page of a lazy domain that still succeeded, and that faulted.
        public var staleHits: Int = 0
        public var staleFaults: Int = 0
        public var refusalsChecked: Int = 0
        public var memorySweeps: Int = 0
        /// Faults the IOMMU-API delivered to domains during the run.
        public var faultsDelivered: UInt64 = 0
        public var mismatch: Mismatch?
        public var seconds: Double = 0

        public var passed: Bool { mismatch == nil }
    }

    /// Runs one family under one strategy.
    /// - Throws: ``PlatformError`` when the platform cannot be built; every disagreement is in the report.
    public static func run(_ configuration: Configuration) throws(PlatformError) -> Report {
        let clock = ContinuousClock()
        let start = clock.now
        let session = try FuzzSession(configuration)
        session.run()
        var report = session.report
        report.faultsDelivered = session.platform.subsystem.faultCount
        let elapsed = clock.now - start
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }
}
