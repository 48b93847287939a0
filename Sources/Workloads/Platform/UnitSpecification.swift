import Emulation

/// The IOMMU families the emulator knows.
public enum IOMMUFamily: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case intelVTd = "vtd"
    case amdVi = "amd"
    case armSMMU = "smmu"
    case amdGART = "gart"
    case ibmCalgary = "calgary"

    /// How units of the family are named in reports, as Linux names them.
    public var unitPrefix: String {
        switch self {
        case .intelVTd: "dmar"
        case .amdVi: "amd-vi"
        case .armSMMU: "smmu"
        case .amdGART: "gart"
        case .ibmCalgary: "calgary"
        }
    }

    public var description: String { rawValue }
}

/// One IOMMU hardware unit to build, and the family-specific knobs it takes.
public struct UnitSpecification: Sendable, Hashable {
    public var name: String
    public var family: IOMMUFamily
    /// The catch-all unit of its segment: covers every device that names no unit.
    public var includesAll: Bool
    public var segment: UInt16
    /// VT-d: build-time capabilities.
    public var vtd: VTdUnitConfiguration
    /// Translated families: prefer the deepest table the unit supports (VT-d 5-level, AMD-Vi 6-level).
    public var prefersWidestAddressSpace: Bool
    /// Aperture families (GART, Calgary): the remappable window, first address and size in bytes.
    public var apertureBase: UInt64?
    public var apertureSize: UInt64?
    /// Arm SMMU: the translation granule of the unit's domains in bytes (4096, 16384 or 65536).
    public var smmuGranule: UInt64 = 4096
    /// AMD-Vi: build-time capabilities.
    public var amdVi: AMDViUnitConfiguration = .init()
    /// AMD-Vi: IVMD exclusion ranges of the unit (every device it covers); the first is programmed into the
    /// unit's exclusion registers, further ones are unity-mapped.
    public var amdViExclusionRanges: [ClosedRange<UInt64>] = []
    /// AMD-Vi: whether the driver keeps a leaf-page array in DMA domains (a driver option carried with its unit).
    public var amdViLeafArray: Bool = true

    public init(name: String, family: IOMMUFamily, includesAll: Bool = false, segment: UInt16 = 0,
                vtd: VTdUnitConfiguration = .init(), prefersWidestAddressSpace: Bool = false,
                apertureBase: UInt64? = nil, apertureSize: UInt64? = nil) {
        self.name = name
        self.family = family
        self.includesAll = includesAll
        self.segment = segment
        self.vtd = vtd
        self.prefersWidestAddressSpace = prefersWidestAddressSpace
        self.apertureBase = apertureBase
        self.apertureSize = apertureSize
    }
}
