import Synchronization

/// Why the DMA layer may not use a device's default domain: its group is claimed by another
/// user, or the device was removed. One word per device, so the DMA layer's hot path checks
/// both with a single load; only the subsystem changes it. (Not part of ``IOMMUDevice``'s
/// storage so that a group can list its devices' gates without a reference cycle.)
public final class DMALayerGate: Sendable {
    @usableFromInline let reasons = Atomic<UInt8>(0)
    static let claimed: UInt8 = 1
    static let removed: UInt8 = 2

    /// Whether the DMA layer must keep off the default domain now. One atomic load.
    @inlinable public var isClosed: Bool { reasons.load(ordering: .acquiring) != 0 }
    /// Whether the device left the IOMMU-API.
    public var isRemoved: Bool { reasons.load(ordering: .acquiring) & Self.removed != 0 }

    func set(_ reason: UInt8, _ on: Bool) {
        if on { reasons.bitwiseOr(reason, ordering: .releasing) } else { reasons.bitwiseAnd(~reason, ordering: .releasing) }
    }
}
