import Emulation
import IOMMUCore

/// An emulated IOMMU unit that can describe itself in reports.
public protocol ReportingUnit: TranslationUnit {
    var unitReport: UnitReport { get }
}

/// What a family builder gets: the units of its family to create, the
/// devices each covers, and the platform's memory.
public struct FamilyContext: Sendable {
    public var memory: PhysicalMemory
    public var pages: PhysicalPageAllocator
    public var units: [UnitSpecification]
    /// Devices per unit name.
    public var devices: [String: [DeviceSpecification]]
    /// Firmware direct regions per device (RMRR, IVMD unity ranges).
    public var directRegions: [PCIAddress: [ReservedRegion]]
}

/// What a family builder returns: its driver and its units by name.
public struct BuiltFamily: Sendable {
    public var driver: any IOMMUDriver
    public var units: [String: any ReportingUnit]

    public init(driver: any IOMMUDriver, units: [String: any ReportingUnit]) {
        self.driver = driver
        self.units = units
    }
}

/// Creates one family's hardware units and driver for a platform.
public protocol FamilyBuilder {
    /// - Throws: ``PlatformError`` when a unit or the driver cannot be set up.
    static func build(_ context: FamilyContext) throws(PlatformError) -> BuiltFamily
}

extension IOMMUFamily {
    /// Whether the emulator can build units of this family.
    public var isEmulated: Bool { builder != nil }

    /// Families whose page-table entries carry read/write permission bits;
    /// GART's GATT entries have only a valid bit.
    public var enforcesPermissions: Bool { self != .amdGART }

    /// The builder for the family, nil while the family has no emulation yet.
    var builder: (any FamilyBuilder.Type)? {
        switch self {
        case .intelVTd: IntelVTdFamily.self
        case .amdVi: AMDViFamily.self
        case .armSMMU: ARMSMMUFamily.self
        case .amdGART: AMDGARTFamily.self
        case .ibmCalgary: IBMCalgaryFamily.self
        }
    }
}
