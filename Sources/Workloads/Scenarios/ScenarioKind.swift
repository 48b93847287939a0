import Emulation
import IOMMUCore

/// One built-in device scenario: set up, repeated work, teardown. The runner
/// calls ``step(_:)`` until the operation count or the duration is reached,
/// then ``finish(_:)``, which must leave no mapping, coherent buffer or page
/// behind.
protocol DeviceScenario {
    /// - Throws: ``ScenarioError/setup(_:)`` when rings, queues or buffers cannot be made.
    mutating func prepare(_ context: ScenarioContext) throws(ScenarioError)
    /// Does one unit of work on one device (round robin) and returns it done.
    mutating func step(_ context: ScenarioContext)
    mutating func finish(_ context: ScenarioContext)
}

/// The built-in scenarios, as `iommu-sim run --list` shows them.
public enum ScenarioKind: String, CaseIterable, Sendable, Codable {
    case network
    case nvme
    case legacy32 = "legacy-32bit"
    case gpu
    case hotRemoval = "hot-removal"
    case maliciousScan = "malicious-scan"

    /// - Throws: ``ScenarioError/unknownScenario(_:)``.
    public init(named name: String) throws(ScenarioError) {
        guard let kind = ScenarioKind(rawValue: name) else { throw .unknownScenario(name) }
        self = kind
    }

    public var summary: String {
        switch self {
        case .network: "NIC RX ring refill (coherent descriptor rings, one mapping per packet) and TX scatter-gather frames"
        case .nvme: "NVMe-style submission/completion queues with 4 KiB-1 MiB scatter-gather reads and writes"
        case .legacy32: "a 32-bit-only device whose buffers sit above 4 GiB: only the IOMMU makes them reachable"
        case .gpu: "a GPU-like device blitting between large coherent buffers"
        case .hotRemoval: "devices hot-removed with live mappings: every mapping torn down and reported, nothing leaks"
        case .maliciousScan: "an untrusted device scans memory for other devices' data: attempts, blocks, leaks"
        }
    }

    /// What an operation is, for reports.
    public var operationName: String {
        switch self {
        case .network: "packet pairs"
        case .nvme: "commands"
        case .legacy32: "transfers"
        case .gpu: "blits"
        case .hotRemoval: "removal cycles"
        case .maliciousScan: "probes"
        }
    }

    public var defaults: ScenarioParameters {
        switch self {
        case .network: ScenarioParameters(devices: 1, queueDepth: 64, minSize: 64, maxSize: 1514, operations: 2000)
        case .nvme: ScenarioParameters(devices: 1, queueDepth: 32, minSize: 4 << 10, maxSize: 1 << 20, operations: 300)
        case .legacy32: ScenarioParameters(devices: 1, queueDepth: 16, minSize: 64, maxSize: 64 << 10, operations: 500)
        case .gpu: ScenarioParameters(devices: 1, queueDepth: 4, minSize: 1 << 20, maxSize: 8 << 20, operations: 40)
        case .hotRemoval: ScenarioParameters(devices: 2, queueDepth: 32, minSize: 512, maxSize: 64 << 10, operations: 20)
        case .maliciousScan: ScenarioParameters(devices: 1, queueDepth: 32, minSize: 4 << 10, maxSize: 64 << 10,
                                                operations: 4096)
        }
    }

    /// The devices this scenario puts on the platform.
    func devices(_ parameters: ScenarioParameters) throws(PCIAddressError) -> [DeviceSpecification] {
        var devices: [DeviceSpecification] = []
        for index in 0..<parameters.devices {
            let slot = UInt8(index)
            switch self {
            case .network:
                devices.append(DeviceSpecification(address: try PCIAddress(bus: 0x01 + slot, device: 0, function: 0),
                                                   name: "nic\(index)", deviceClass: .network))
            case .nvme:
                devices.append(DeviceSpecification(address: try PCIAddress(bus: 0x10 + slot, device: 0, function: 0),
                                                   name: "nvme\(index)", deviceClass: .storage))
            case .legacy32:
                devices.append(DeviceSpecification(address: try PCIAddress(bus: 0x20 + slot, device: 0, function: 0),
                                                   name: "legacy\(index)", deviceClass: .legacy, addressBits: 32))
            case .gpu:
                devices.append(DeviceSpecification(address: try PCIAddress(bus: 0x30 + slot, device: 0, function: 0),
                                                   name: "gpu\(index)", deviceClass: .graphics))
            case .hotRemoval:
                devices.append(DeviceSpecification(address: try PCIAddress(bus: 0x40 + slot, device: 0, function: 0),
                                                   name: "hotplug\(index)", deviceClass: .network))
            case .maliciousScan:
                devices.append(DeviceSpecification(address: try PCIAddress(bus: 0x01 + slot, device: 0, function: 0),
                                                   name: "victim\(index)", deviceClass: .network))
            }
        }
        if self == .maliciousScan {
            // Behind an external port (Thunderbolt-like): untrusted, so always in a strict DMA domain.
            devices.append(DeviceSpecification(address: try PCIAddress(bus: 0x50, device: 0, function: 0),
                                               name: "scanner", deviceClass: .other, isUntrusted: true))
        }
        return devices
    }

    func makeScenario() -> any DeviceScenario {
        switch self {
        case .network: NetworkScenario()
        case .nvme: NVMeScenario()
        case .legacy32: LegacyHighMemoryScenario()
        case .gpu: GPUScenario()
        case .hotRemoval: HotRemovalScenario()
        case .maliciousScan: MaliciousScanScenario()
        }
    }
}

/// The invalidation policy of the run's default domains.
public enum ScenarioPolicy: String, CaseIterable, Sendable, Codable {
    case strict, lazy, passthrough

    /// - Throws: ``ScenarioError/invalidValue(key:value:expected:)`` naming `policy`.
    public init(named name: String) throws(ScenarioError) {
        let normalized = name == "pass-through" ? "passthrough" : name
        guard let policy = ScenarioPolicy(rawValue: normalized) else {
            throw .invalidValue(key: "policy", value: name, expected: "strict, lazy or passthrough")
        }
        self = policy
    }

    public var domainPolicy: DefaultDomainPolicy {
        switch self {
        case .strict: DefaultDomainPolicy(invalidation: .strict)
        case .lazy: DefaultDomainPolicy(invalidation: .lazy)
        case .passthrough: DefaultDomainPolicy(passThrough: true)
        }
    }
}

extension IOMMUFamily {
    /// A family by its command-line name, which must be emulated to run.
    /// - Throws: ``ScenarioError/invalidValue(key:value:expected:)`` for an unknown name,
    ///   ``ScenarioError/familyNotEmulated(_:)`` for a family without emulation yet.
    public static func emulated(named name: String) throws(ScenarioError) -> IOMMUFamily {
        guard let family = IOMMUFamily(rawValue: name) else {
            throw .invalidValue(key: "driver", value: name,
                                expected: IOMMUFamily.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard family.isEmulated else { throw .familyNotEmulated(name) }
        return family
    }
}
