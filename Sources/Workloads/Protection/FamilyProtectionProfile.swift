import Emulation
import IOMMUCore

/// What one IOMMU family can and cannot express, as the reference model
/// needs to know it: the facts of the hardware, stated once, so that the
/// model predicts each access exactly instead of asking the implementation.
public struct FamilyProtectionProfile: Sendable, Hashable {
    public var family: IOMMUFamily

    public init(_ family: IOMMUFamily) { self.family = family }

    /// What a page mapped with `mapped` lets a device do. GART entries carry
    /// only a valid bit; Arm LPAE cannot say write-only, so a writable page
    /// is readable; VT-d, AMD-Vi and Calgary keep read and write apart.
    public func effectivePermissions(_ mapped: AccessPermissions) -> AccessPermissions {
        switch family {
        case .amdGART: mapped.isEmpty ? [] : .readWrite
        case .armSMMU: mapped.contains(.write) ? .readWrite : mapped
        default: mapped
        }
    }

    /// Whether the driver can make a domain that blocks every access (a
    /// GART cannot stop the addresses it passes through).
    public var supportsBlockedDomains: Bool { family != .amdGART }

    /// The key that decides which devices the family can tell apart: devices
    /// with equal keys must share a group.
    public func isolationKey(of device: PCIDevice) -> String {
        switch family {
        case .amdGART: "gart"
        case .ibmCalgary: "bus \(device.busRequester.segment):\(device.busRequester.bus)"
        default: "\(device.busRequester)"
        }
    }
}
