import Emulation
import IOMMUCore

/// How far a run has got, for a progress line.
public struct ScenarioProgress: Sendable, Hashable {
    /// "nvme vtd/strict".
    public var label: String
    public var elapsedSeconds: Double
    public var done: UInt64
    /// The operation count to reach; nil for a run bounded by time.
    public var total: UInt64?
    /// The run's time limit, if bounded by time.
    public var duration: Double?
    public var unit: String
}

/// Runs built-in scenarios on freshly built platforms.
public enum ScenarioRunner {
    /// One run of `kind` on a platform with one `family` unit and `policy` default domains.
    /// - Throws: ``ScenarioError`` when the family is not emulated, the platform cannot be built or the
    ///   scenario cannot be set up. Failed data checks are not errors: they are counted in the result.
    public static func run(_ kind: ScenarioKind, parameters: ScenarioParameters, family: IOMMUFamily,
                           policy: ScenarioPolicy,
                           progress: ((ScenarioProgress) -> Void)? = nil) throws(ScenarioError) -> RunSeries {
        try parameters.validate()
        guard family.isEmulated else { throw .familyNotEmulated(family.rawValue) }
        let platform = try makePlatform(kind, parameters: parameters, family: family, policy: policy)
        let context = ScenarioContext(platform: platform, parameters: parameters)
        let label = "\(family.rawValue)/\(policy.rawValue)"
        var scenario = kind.makeScenario()
        let before = PlatformCounters(platform)
        let total = parameters.duration == nil ? UInt64(parameters.operations) * UInt64(parameters.devices) : nil
        var timeline = TimelineRecorder(expectedOperations: total ?? 100_000, baseline: before)
        let start = ScenarioClock.nanoseconds()
        func elapsed() -> Double { Double(ScenarioClock.nanoseconds() &- start) / 1e9 }
        func sample(_ done: UInt64) {
            let now = PlatformCounters(platform)
            timeline.add(elapsed: elapsed(), operations: done, iovaBytes: context.iovaBytesInUse,
                         iotlbHits: now.iotlbHits, iotlbMisses: now.iotlbMisses, faults: now.faults &- before.faults)
        }

        try scenario.prepare(context)
        var done: UInt64 = 0
        sample(done)
        while true {
            if let total, done >= total { break }
            if let duration = parameters.duration, elapsed() >= duration { break }
            scenario.step(context)
            done += 1
            if timeline.isDue(operations: done) { sample(done) }
            progress?(ScenarioProgress(label: "\(kind.rawValue) \(label)", elapsedSeconds: elapsed(), done: done,
                                       total: total, duration: parameters.duration, unit: kind.operationName))
        }
        sample(done)
        scenario.finish(context)
        let seconds = elapsed()
        sample(done)
        let after = PlatformCounters(platform)
        return RunSeries(
            label: label, driver: family.rawValue, policy: policy.rawValue, elapsedSeconds: seconds, operations: done,
            bytesMoved: after.bytesMoved &- before.bytesMoved &+ context.retiredBytesMoved,
            mapLatency: context.latencies.mapSummary, unmapLatency: context.latencies.unmapSummary,
            mapLatencyHistogram: context.latencies.mapBuckets, unmapLatencyHistogram: context.latencies.unmapBuckets,
            iotlbHits: after.iotlbHits &- before.iotlbHits, iotlbMisses: after.iotlbMisses &- before.iotlbMisses,
            invalidations: after.invalidations &- before.invalidations, faults: after.faults &- before.faults,
            timeline: timeline.samples, checksPassed: context.checksPassed, checksFailed: context.checksFailed,
            findings: context.findings, notes: context.notes)
    }

    /// Runs `kind` once per driver and policy, in that order, into one report.
    /// - Throws: the first run's ``ScenarioError``; every family is checked before anything runs.
    public static func report(_ kind: ScenarioKind, parameters: ScenarioParameters, families: [IOMMUFamily],
                              policies: [ScenarioPolicy],
                              progress: ((ScenarioProgress) -> Void)? = nil) throws(ScenarioError) -> RunReport {
        for family in families where !family.isEmulated { throw .familyNotEmulated(family.rawValue) }
        var runs: [RunSeries] = []
        for family in families {
            for policy in policies {
                runs.append(try run(kind, parameters: parameters, family: family, policy: policy, progress: progress))
            }
        }
        return RunReport(title: "\(kind.rawValue): \(kind.summary)", source: "scenario \(kind.rawValue)",
                         parameters: describe(parameters, kind: kind), runs: runs)
    }

    static func describe(_ parameters: ScenarioParameters, kind: ScenarioKind) -> [ReportParameter] {
        [ReportParameter(name: "devices", value: "\(parameters.devices)"),
         ReportParameter(name: "queue-depth", value: "\(parameters.queueDepth)"),
         ReportParameter(name: "sizes", value: "\(byteName(parameters.minSize))-\(byteName(parameters.maxSize))"),
         parameters.duration.map { ReportParameter(name: "duration", value: "\($0) s") }
            ?? ReportParameter(name: "operations", value: "\(parameters.operations) \(kind.operationName) per device"),
         ReportParameter(name: "seed", value: "\(parameters.seed)")]
    }

    static func makePlatform(_ kind: ScenarioKind, parameters: ScenarioParameters, family: IOMMUFamily,
                             policy: ScenarioPolicy) throws(ScenarioError) -> EmulatedPlatform {
        var specification: PlatformSpecification
        do {
            specification = try PlatformSpecification.defaultPlatform(family: family, policy: policy.domainPolicy)
            specification.devices = try kind.devices(parameters)
        } catch { throw .platform("\(error)") }
        specification.name = "scenario-\(kind.rawValue)-\(family.rawValue)"
        do { return try EmulatedPlatform(specification) } catch { throw .platform("\(error)") }
    }
}

/// Platform-wide counters at one moment; runs report differences.
struct PlatformCounters {
    var iotlbHits: UInt64 = 0
    var iotlbMisses: UInt64 = 0
    var invalidations: UInt64 = 0
    var faults: UInt64 = 0
    var bytesMoved: UInt64 = 0

    init(_ platform: EmulatedPlatform) {
        for unit in platform.units.map(\.unitReport) {
            iotlbHits += unit.iotlbHits
            iotlbMisses += unit.iotlbMisses
            invalidations += unit.pageInvalidations + unit.domainInvalidations + unit.globalInvalidations
            faults += unit.faultsRecorded + unit.faultsOverflowed
        }
        for device in platform.devices {
            let engine = device.engine.statistics
            bytesMoved += engine.bytesRead + engine.bytesWritten
        }
    }
}

func byteName(_ size: Int) -> String {
    if size >= 1 << 20, size % (1 << 20) == 0 { return "\(size >> 20) MiB" }
    if size >= 1 << 10, size % (1 << 10) == 0 { return "\(size >> 10) KiB" }
    return "\(size) B"
}
