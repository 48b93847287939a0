import Yams

/// What a user asked for, from a YAML file (`--config`) or the command line:
/// every field optional, so that the command line can override the file and
/// the file the scenario's defaults, one field at a time.
///
/// The YAML file is one mapping with these keys (all optional):
///
///     scenario: nvme            # the scenario to run when none is named on the command line
///     driver: [vtd, amd]        # or "vtd,amd"; one family unless comparing
///     policy: strict            # strict, lazy, passthrough; a list when comparing
///     devices: 2
///     queue-depth: 64
///     min-size: 4K              # 4096, 4K, 4KiB, 1M, ...
///     max-size: 1MiB
///     operations: 500           # work units per device
///     duration: 2.5             # seconds; overrides operations
///     seed: 7
public struct ScenarioSettings: Sendable, Hashable {
    public var scenario: String?
    public var drivers: [String]?
    public var policies: [String]?
    public var devices: Int?
    public var queueDepth: Int?
    public var minSize: Int?
    public var maxSize: Int?
    public var operations: Int?
    public var duration: Double?
    public var seed: UInt64?

    public init() {}

    /// Every key a config file may use.
    public static let keys = ["scenario", "driver", "policy", "devices", "queue-depth", "min-size", "max-size",
                              "operations", "duration", "seed"]

    /// `self`'s fields where set, else `base`'s.
    public func overriding(_ base: ScenarioSettings) -> ScenarioSettings {
        var merged = base
        merged.scenario = scenario ?? base.scenario
        merged.drivers = drivers ?? base.drivers
        merged.policies = policies ?? base.policies
        merged.devices = devices ?? base.devices
        merged.queueDepth = queueDepth ?? base.queueDepth
        merged.minSize = minSize ?? base.minSize
        merged.maxSize = maxSize ?? base.maxSize
        merged.operations = operations ?? base.operations
        merged.duration = duration ?? base.duration
        merged.seed = seed ?? base.seed
        return merged
    }

    /// The scenario's defaults with these settings applied, validated.
    /// - Throws: ``ScenarioError/invalidValue(key:value:expected:)`` naming the setting out of range.
    public func parameters(for kind: ScenarioKind) throws(ScenarioError) -> ScenarioParameters {
        var parameters = kind.defaults
        if let devices { parameters.devices = devices }
        if let queueDepth { parameters.queueDepth = queueDepth }
        if let minSize { parameters.minSize = minSize }
        if let maxSize { parameters.maxSize = maxSize }
        if let operations { parameters.operations = operations }
        if let duration { parameters.duration = duration }
        if let seed { parameters.seed = seed }
        // A size range given only at one end keeps the other end sensible.
        if minSize == nil, let maxSize, ScenarioParameters.sizeLimit.contains(maxSize), maxSize < parameters.minSize {
            parameters.minSize = maxSize
        }
        if maxSize == nil, let minSize, ScenarioParameters.sizeLimit.contains(minSize), minSize > parameters.maxSize {
            parameters.maxSize = minSize
        }
        try parameters.validate()
        return parameters
    }

    /// Reads settings from YAML text; `file` names it in errors.
    /// - Throws: ``ScenarioError/unreadableConfig(file:reason:)`` for YAML that does not parse or is not a
    ///   mapping, ``ScenarioError/unknownKey(_:file:)``, ``ScenarioError/invalidValue(key:value:expected:)``.
    public static func load(yaml text: String, file: String) throws(ScenarioError) -> ScenarioSettings {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw .unreadableConfig(file: file, reason: "not valid YAML: \(error)")
        }
        guard let root else { return ScenarioSettings() }
        guard let mapping = root.mapping else {
            throw .unreadableConfig(file: file, reason: "expected a mapping of settings (key: value) at the top level")
        }
        var settings = ScenarioSettings()
        var seen = Set<String>()
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                throw .unreadableConfig(file: file, reason: "a key is not a plain name")
            }
            guard keys.contains(key) else { throw .unknownKey(key, file: file) }
            guard seen.insert(key).inserted else {
                throw .invalidValue(key: key, value: "(given twice)", expected: "one value")
            }
            try settings.apply(key: key, node: value)
        }
        return settings
    }

    mutating func apply(key: String, node: Node) throws(ScenarioError) {
        switch key {
        case "scenario": scenario = try Self.text(node, key: key)
        case "driver": drivers = try Self.list(node, key: key)
        case "policy": policies = try Self.list(node, key: key)
        case "devices": devices = try Self.integer(node, key: key)
        case "queue-depth": queueDepth = try Self.integer(node, key: key)
        case "min-size": minSize = try ByteSize.parse(Self.text(node, key: key), key: key)
        case "max-size": maxSize = try ByteSize.parse(Self.text(node, key: key), key: key)
        case "operations": operations = try Self.integer(node, key: key)
        case "duration": duration = try Self.seconds(Self.text(node, key: key), key: key)
        case "seed":
            let text = try Self.text(node, key: key)
            guard let value = UInt64(text) else {
                throw .invalidValue(key: key, value: text, expected: "an unsigned 64-bit integer")
            }
            seed = value
        default: throw .unknownKey(key, file: "settings")
        }
    }

    static func text(_ node: Node, key: String) throws(ScenarioError) -> String {
        guard let scalar = node.scalar else {
            throw .invalidValue(key: key, value: node.sequence != nil ? "a list" : "a mapping", expected: "a single value")
        }
        return scalar.string
    }

    static func integer(_ node: Node, key: String) throws(ScenarioError) -> Int {
        let text = try text(node, key: key)
        guard let value = Int(text.trimmingSpaces) else { throw .invalidValue(key: key, value: text, expected: "an integer") }
        return value
    }

    /// A list as a YAML sequence or a comma-separated string.
    static func list(_ node: Node, key: String) throws(ScenarioError) -> [String] {
        var items: [String] = []
        if let sequence = node.sequence {
            for item in sequence {
                guard let scalar = item.scalar else {
                    throw .invalidValue(key: key, value: "a nested list", expected: "names")
                }
                items.append(scalar.string)
            }
        } else {
            items = try text(node, key: key).split(separator: ",").map { $0.trimmingSpaces }
        }
        let names = items.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw .invalidValue(key: key, value: "", expected: "at least one name") }
        return names
    }

    /// - Throws: ``ScenarioError/invalidValue(key:value:expected:)`` for anything but a positive number of seconds.
    public static func seconds(_ text: String, key: String) throws(ScenarioError) -> Double {
        var number = Substring(text.trimmingSpaces)
        if number.hasSuffix("s") { number = number.dropLast() }
        guard let value = Double(number), value.isFinite, value > 0 else {
            throw .invalidValue(key: key, value: text, expected: "a positive number of seconds, e.g. 2.5")
        }
        return value
    }
}
