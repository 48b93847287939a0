import Emulation

/// A range of a device's bus address space that the IOVA allocator must
/// not hand out, and sometimes must map 1:1 (Linux's iommu_resv_region).
public struct ReservedRegion: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, Codable, CustomStringConvertible {
        /// Firmware needs it mapped 1:1 at all times (RMRR, IVMD unity range).
        case direct
        /// Mapped 1:1 by default, but the mapping may go when the device is assigned elsewhere.
        case directRelaxable = "direct-relaxable"
        /// Never used for IOVA, never mapped (holes, exclusion ranges).
        case reserved
        /// The hardware interrupt window: writes there are interrupts, never memory.
        case msi
        /// An MSI doorbell that software must map on demand (ARM SMMU).
        case softwareMSI = "software-msi"

        public var isDirect: Bool { self == .direct || self == .directRelaxable }
        public var description: String { rawValue }
    }

    /// First and last bus address of the region.
    public var range: ClosedRange<UInt64>
    public var kind: Kind
    /// For direct regions: what the 1:1 mapping allows.
    public var permissions: AccessPermissions
    /// Where the region comes from, for reports ("RMRR", "IVMD", "x86 MSI window").
    public var source: String

    public init(range: ClosedRange<UInt64>, kind: Kind, permissions: AccessPermissions = .readWrite, source: String) {
        self.range = range
        self.kind = kind
        self.permissions = permissions
        self.source = source
    }

    /// The x86 interrupt address window every x86 IOMMU reports.
    public static let x86MSIWindow = ReservedRegion(range: 0xFEE0_0000...0xFEEF_FFFF, kind: .msi, permissions: .write,
                                                    source: "x86 MSI window")

    public var description: String {
        "\(hex(range.lowerBound))-\(hex(range.upperBound)) \(kind) \(permissions) (\(source))"
    }
}
