import Emulation

/// How the core picks each group's default domain kind: the counterpart of
/// Linux's iommu.passthrough=, iommu.strict= and per-group sysfs overrides.
public struct DefaultDomainPolicy: Sendable, Hashable {
    public enum Invalidation: String, Sendable, Hashable, Codable, CaseIterable {
        case strict, lazy
    }

    /// Put every trusted device in an identity domain (iommu.passthrough=1).
    public var passThrough: Bool
    /// Strict or lazy invalidation for translated default domains.
    public var invalidation: Invalidation
    /// Per-device kinds that win over everything but an untrusted device's safety.
    public var overrides: [PCIAddress: DomainKind]

    public init(passThrough: Bool = false, invalidation: Invalidation = .strict, overrides: [PCIAddress: DomainKind] = [:]) {
        self.passThrough = passThrough
        self.invalidation = invalidation
        self.overrides = overrides
    }

    /// The kind for a new group holding `device`. Untrusted devices always
    /// get strict translation: neither pass-through nor a lazy window.
    public func kind(for device: PCIDevice, driverRequirement: DomainKind?) -> DomainKind {
        if device.isUntrusted { return .dma }
        if let required = driverRequirement { return required }
        if let chosen = overrides[device.address] ?? device.requesterAlias.flatMap({ overrides[$0] }) { return chosen }
        if passThrough { return .identity }
        return invalidation == .strict ? .dma : .dmaLazy
    }
}
