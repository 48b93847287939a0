/// What one or more runs measured, in a form every report renderer (text,
/// JSON, HTML) reads. It knows nothing of scenarios: a replayed trace or any
/// other workload can fill it in and get the same page.
///
/// JSON keys (camelCase, stable): `title`, `source`, `parameters`, `runs[]`,
/// `checksPassed`, `checksFailed`.
public struct RunReport: Codable, Sendable, Hashable {
    /// What ran, for headings ("nvme: NVMe-style queues ...").
    public var title: String
    /// Where the numbers come from ("scenario nvme", "replay of trace.json").
    public var source: String
    /// The settings the runs used, in the order to show them.
    public var parameters: [ReportParameter]
    /// One run per driver and policy; several when comparing.
    public var runs: [RunSeries]

    public init(title: String, source: String, parameters: [ReportParameter], runs: [RunSeries]) {
        self.title = title
        self.source = source
        self.parameters = parameters
        self.runs = runs
    }

    public var checksPassed: Int { runs.reduce(0) { $0 + $1.checksPassed } }
    public var checksFailed: Int { runs.reduce(0) { $0 + $1.checksFailed } }

    enum CodingKeys: String, CodingKey { case title, source, parameters, runs, checksPassed, checksFailed }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        title = try container.decode(String.self, forKey: .title)
        source = try container.decode(String.self, forKey: .source)
        parameters = try container.decode([ReportParameter].self, forKey: .parameters)
        runs = try container.decode([RunSeries].self, forKey: .runs)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(title, forKey: .title)
        try container.encode(source, forKey: .source)
        try container.encode(parameters, forKey: .parameters)
        try container.encode(runs, forKey: .runs)
        try container.encode(checksPassed, forKey: .checksPassed)
        try container.encode(checksFailed, forKey: .checksFailed)
    }
}

public struct ReportParameter: Codable, Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// One run on one driver with one invalidation policy.
public struct RunSeries: Codable, Sendable, Hashable {
    /// "vtd/strict".
    public var label: String
    public var driver: String
    public var policy: String
    public var elapsedSeconds: Double
    /// Work units completed (ring batches, commands, frames, probes).
    public var operations: UInt64
    /// Bytes devices moved through their IOMMU.
    public var bytesMoved: UInt64
    public var mapLatency: LatencySummary
    public var unmapLatency: LatencySummary
    public var mapLatencyHistogram: [HistogramBucket]
    public var unmapLatencyHistogram: [HistogramBucket]
    /// Device-side translations served by an IOTLB, and those that needed a walk.
    public var iotlbHits: UInt64
    public var iotlbMisses: UInt64
    /// Page, domain and global IOTLB invalidations the drivers issued.
    public var invalidations: UInt64
    /// Faults the IOMMU units recorded.
    public var faults: UInt64
    public var timeline: [TimelineSample]
    public var checksPassed: Int
    public var checksFailed: Int
    /// What the run found beyond the common counters ("mappingsTornDown", "bytesLeaked", ...).
    public var findings: [String: UInt64]
    public var notes: [String]

    public init(label: String, driver: String, policy: String, elapsedSeconds: Double, operations: UInt64,
                bytesMoved: UInt64, mapLatency: LatencySummary, unmapLatency: LatencySummary,
                mapLatencyHistogram: [HistogramBucket], unmapLatencyHistogram: [HistogramBucket], iotlbHits: UInt64,
                iotlbMisses: UInt64, invalidations: UInt64, faults: UInt64, timeline: [TimelineSample],
                checksPassed: Int, checksFailed: Int, findings: [String: UInt64], notes: [String]) {
        self.label = label
        self.driver = driver
        self.policy = policy
        self.elapsedSeconds = elapsedSeconds
        self.operations = operations
        self.bytesMoved = bytesMoved
        self.mapLatency = mapLatency
        self.unmapLatency = unmapLatency
        self.mapLatencyHistogram = mapLatencyHistogram
        self.unmapLatencyHistogram = unmapLatencyHistogram
        self.iotlbHits = iotlbHits
        self.iotlbMisses = iotlbMisses
        self.invalidations = invalidations
        self.faults = faults
        self.timeline = timeline
        self.checksPassed = checksPassed
        self.checksFailed = checksFailed
        self.findings = findings
        self.notes = notes
    }

    public var iotlbHitRate: Double {
        iotlbHits + iotlbMisses == 0 ? 0 : Double(iotlbHits) / Double(iotlbHits + iotlbMisses)
    }

    public var operationsPerSecond: Double { elapsedSeconds > 0 ? Double(operations) / elapsedSeconds : 0 }
    public var bytesPerSecond: Double { elapsedSeconds > 0 ? Double(bytesMoved) / elapsedSeconds : 0 }
}

/// Latency percentiles in nanoseconds.
public struct LatencySummary: Codable, Sendable, Hashable {
    public var count: UInt64
    public var mean: Double
    public var p50: UInt64
    public var p90: UInt64
    public var p99: UInt64
    public var p999: UInt64
    public var max: UInt64

    public init(count: UInt64, mean: Double, p50: UInt64, p90: UInt64, p99: UInt64, p999: UInt64, max: UInt64) {
        self.count = count
        self.mean = mean
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
    }

    public static let empty = LatencySummary(count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
}

/// Operations whose latency fell in (previous bucket's `upToNanoseconds`, `upToNanoseconds`].
public struct HistogramBucket: Codable, Sendable, Hashable {
    public var upToNanoseconds: UInt64
    public var count: UInt64

    public init(upToNanoseconds: UInt64, count: UInt64) {
        self.upToNanoseconds = upToNanoseconds
        self.count = count
    }
}

/// The state of a run at one moment.
public struct TimelineSample: Codable, Sendable, Hashable {
    public var elapsedSeconds: Double
    public var operations: UInt64
    /// I/O virtual address space held by live mappings, in bytes.
    public var iovaBytesInUse: UInt64
    /// IOTLB hit rate (0...1) of the device translations since the previous sample.
    public var iotlbHitRate: Double
    /// Faults recorded so far.
    public var faults: UInt64

    public init(elapsedSeconds: Double, operations: UInt64, iovaBytesInUse: UInt64, iotlbHitRate: Double, faults: UInt64) {
        self.elapsedSeconds = elapsedSeconds
        self.operations = operations
        self.iovaBytesInUse = iovaBytesInUse
        self.iotlbHitRate = iotlbHitRate
        self.faults = faults
    }
}
