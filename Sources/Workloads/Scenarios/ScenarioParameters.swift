/// Why a scenario could not be set up or configured. Every case names the
/// setting (the command-line option or YAML key) that was wrong.
public enum ScenarioError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownScenario(String)
    case unknownKey(String, file: String)
    /// A setting has a value of the wrong kind or out of range: key, the value as given, what was expected.
    case invalidValue(key: String, value: String, expected: String)
    case unreadableConfig(file: String, reason: String)
    case familyNotEmulated(String)
    case platform(String)
    case setup(String)

    public var description: String {
        switch self {
        case let .unknownScenario(name):
            "unknown scenario '\(name)': expected one of \(ScenarioKind.allCases.map(\.rawValue).joined(separator: ", "))"
        case let .unknownKey(key, file):
            "\(file): unknown key '\(key)': expected one of \(ScenarioSettings.keys.joined(separator: ", "))"
        case let .invalidValue(key, value, expected): "invalid value '\(value)' for '\(key)': expected \(expected)"
        case let .unreadableConfig(file, reason): "\(file): \(reason)"
        case let .familyNotEmulated(name):
            "the '\(name)' IOMMU family has no emulation yet: use one of \(IOMMUFamily.allCases.filter(\.isEmulated).map(\.rawValue).joined(separator: ", "))"
        case let .platform(why): "cannot build the scenario's platform: \(why)"
        case let .setup(why): "cannot set the scenario up: \(why)"
        }
    }
}

/// How big and how long a scenario run is. Each scenario has its own
/// defaults (``ScenarioKind/defaults``); a config file and the command line
/// override them field by field.
public struct ScenarioParameters: Sendable, Hashable, Codable {
    /// Devices of the scenario's kind (NICs, NVMe controllers, GPUs, victims of the scanner, ...).
    public var devices: Int
    /// Ring or queue entries per device.
    public var queueDepth: Int
    /// Smallest and largest transfer in bytes.
    public var minSize: Int
    public var maxSize: Int
    /// Work units (ring batches, commands, frames, probes) per device; ignored when `duration` is set.
    public var operations: Int
    /// Run for this many seconds instead of a fixed operation count.
    public var duration: Double?
    public var seed: UInt64

    public init(devices: Int, queueDepth: Int, minSize: Int, maxSize: Int, operations: Int, duration: Double? = nil,
                seed: UInt64 = 1) {
        self.devices = devices
        self.queueDepth = queueDepth
        self.minSize = minSize
        self.maxSize = maxSize
        self.operations = operations
        self.duration = duration
        self.seed = seed
    }

    public static let deviceLimit = 1...16
    public static let queueDepthLimit = 1...4096
    /// Transfers up to 256 MiB: memory is sparse, but every byte is checked.
    public static let sizeLimit = 1...(256 << 20)
    public static let operationLimit = 1...100_000_000
    public static let durationLimit = 0.001...86_400.0

    /// - Throws: ``ScenarioError/invalidValue(key:value:expected:)`` naming the first field out of range.
    public func validate() throws(ScenarioError) {
        try Self.check("devices", devices, Self.deviceLimit)
        try Self.check("queue-depth", queueDepth, Self.queueDepthLimit)
        try Self.check("min-size", minSize, Self.sizeLimit)
        try Self.check("max-size", maxSize, Self.sizeLimit)
        try Self.check("operations", operations, Self.operationLimit)
        if maxSize < minSize {
            throw .invalidValue(key: "max-size", value: "\(maxSize)", expected: "at least min-size (\(minSize))")
        }
        if let duration, !Self.durationLimit.contains(duration) {
            throw .invalidValue(key: "duration", value: "\(duration)", expected: "seconds in 0.001...86400")
        }
    }

    static func check(_ key: String, _ value: Int, _ range: ClosedRange<Int>) throws(ScenarioError) {
        guard range.contains(value) else {
            throw .invalidValue(key: key, value: "\(value)", expected: "\(range.lowerBound)...\(range.upperBound)")
        }
    }
}

/// Sizes as people write them: `4096`, `4K`, `4KiB`, `1M`, `1MiB`, `2G`.
public enum ByteSize {
    /// - Throws: ``ScenarioError/invalidValue(key:value:expected:)`` naming `key`.
    public static func parse(_ text: String, key: String) throws(ScenarioError) -> Int {
        let trimmed = text.trimmingSpaces.lowercased()
        var digits = Substring(trimmed)
        var multiplier = 1
        for (suffix, scale) in [("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("kb", 1 << 10), ("mb", 1 << 20),
                                ("gb", 1 << 30), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1)]
            where trimmed.hasSuffix(suffix) {
            digits = trimmed.dropLast(suffix.count)
            multiplier = scale
            break
        }
        guard let value = Int(digits.trimmingSpaces), value >= 0, value <= Int.max / multiplier else {
            throw .invalidValue(key: key, value: text, expected: "a size such as 4096, 4K, 64KiB or 1M")
        }
        return value * multiplier
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
