import Emulation
import Synchronization

/// Devices that the IOMMU cannot tell apart or isolate, and so share one
/// domain. Every device behind an IOMMU is in exactly one group.
public final class IOMMUGroup: Sendable, CustomStringConvertible {
    public let identifier: Int
    public let key: String
    public let driver: any IOMMUDriver
    struct State {
        var devices: [PCIAddress] = []
        var defaultDomain: IOMMUDomain?
        var domain: IOMMUDomain?
        var owner: String?
        /// The devices' gates, closed while a user owns the group (removal takes a device's out).
        var gates: [DMALayerGate] = []
    }
    let state = HostLock(State())
    let generation = Atomic<UInt64>(0)
    @usableFromInline let claimed = Atomic<Bool>(false)

    init(identifier: Int, key: String, driver: any IOMMUDriver) {
        self.identifier = identifier
        self.key = key
        self.driver = driver
    }

    public var devices: [PCIAddress] { state.withLock { $0.devices } }
    /// The domain the IOMMU driver chose when the group was created.
    public var defaultDomain: IOMMUDomain? { state.withLock { $0.defaultDomain } }
    /// The domain the group is attached to now (the default one unless a user claimed the group).
    public var domain: IOMMUDomain? { state.withLock { $0.domain } }
    /// Who owns the group when it is not on its default domain (a VFIO-like user).
    public var owner: String? { state.withLock { $0.owner } }

    /// Changes whenever the group moves to another domain, so a caller that
    /// cached the domain can notice with one atomic load instead of a lock.
    public var attachmentGeneration: UInt64 { generation.load(ordering: .acquiring) }
    /// Whether a user other than the DMA layer owns the group now; one atomic load.
    @inlinable public var isClaimed: Bool { claimed.load(ordering: .acquiring) }

    public var description: String { "group \(identifier) (\(key))" }
}

/// A device the IOMMU-API manages: the bus device, its group and the regions
/// the DMA layer must respect.
public final class IOMMUDevice: Sendable, CustomStringConvertible {
    public let device: PCIDevice
    public let group: IOMMUGroup
    public let unitName: String
    public let reservedRegions: [ReservedRegion]
    /// Whether the DMA layer may use the device's default domain now.
    public let dmaLayerGate = DMALayerGate()

    init(device: PCIDevice, group: IOMMUGroup, unitName: String, reservedRegions: [ReservedRegion]) {
        self.device = device
        self.group = group
        self.unitName = unitName
        self.reservedRegions = reservedRegions
    }

    public var address: PCIAddress { device.address }
    /// Whether the device was removed from the IOMMU-API (``IOMMUSubsystem/removeDevice(_:)``):
    /// its default domain may be destroyed, and nothing may map through it any more.
    public var isRemoved: Bool { dmaLayerGate.isRemoved }
    /// The domain the device's DMA goes through right now.
    public var domain: IOMMUDomain? { group.domain }

    public var description: String { "\(device) in \(group)" }
}
