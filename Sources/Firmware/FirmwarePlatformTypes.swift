/// A PCI function: segment, bus, device (0-31), function (0-7).
public struct FirmwarePCIAddress: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let segment: UInt16
    public let bus: UInt8
    /// Device number, 0-31.
    public let device: UInt8
    /// Function number, 0-7.
    public let function: UInt8

    /// Out-of-range device and function numbers are masked to 5 and 3 bits.
    public init(segment: UInt16 = 0, bus: UInt8, device: UInt8, function: UInt8) {
        self.segment = segment
        self.bus = bus
        self.device = device & 0x1F
        self.function = function & 0x07
    }

    /// From a 16-bit requester ID (bus << 8 | device << 3 | function).
    public init(segment: UInt16 = 0, requesterID: UInt16) {
        self.init(segment: segment, bus: UInt8(requesterID >> 8),
                  device: UInt8((requesterID >> 3) & 0x1F), function: UInt8(requesterID & 7))
    }

    /// Parses `[ssss:]bb:dd.f` (hexadecimal), e.g. `00:1f.3` or `0001:80:04.0`.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return nil }
        let devFn = parts[parts.count - 1].split(separator: ".", omittingEmptySubsequences: false)
        guard devFn.count == 2,
              let bus = UInt8(parts[parts.count - 2], radix: 16),
              let device = UInt8(devFn[0], radix: 16), device < 32,
              let function = UInt8(devFn[1], radix: 16), function < 8 else { return nil }
        var segment: UInt16 = 0
        if parts.count == 3 {
            guard let value = UInt16(parts[0], radix: 16) else { return nil }
            segment = value
        }
        self.init(segment: segment, bus: bus, device: device, function: function)
    }

    /// The 16-bit requester ID the function's DMA carries on its segment.
    public var requesterID: UInt16 {
        UInt16(bus) << 8 | UInt16(device) << 3 | UInt16(function)
    }

    /// `ssss:bb:dd.f` in hexadecimal.
    public var description: String {
        hex(segment, digits: 4) + ":" + hex(bus, digits: 2) + ":" + hex(device, digits: 2) + "." + hex(function)
    }

    enum CodingKeys: String, CodingKey { case segment, bus, device, function, requesterID }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(segment: try container.decode(UInt16.self, forKey: .segment),
                  bus: try container.decode(UInt8.self, forKey: .bus),
                  device: try container.decode(UInt8.self, forKey: .device),
                  function: try container.decode(UInt8.self, forKey: .function))
    }

    /// Encodes segment, bus, device, function and the derived requesterID.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(segment, forKey: .segment)
        try container.encode(bus, forKey: .bus)
        try container.encode(device, forKey: .device)
        try container.encode(function, forKey: .function)
        try container.encode(requesterID, forKey: .requesterID)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.segment, lhs.requesterID) < (rhs.segment, rhs.requesterID)
    }
}

/// A device present on the platform, with the topology needed to resolve
/// multi-hop DMAR paths and bridge scopes.
public struct FirmwarePCIDevice: Sendable, Hashable, Codable {
    public let address: FirmwarePCIAddress
    /// For a PCI-to-PCI bridge: the bus directly below it.
    public let secondaryBus: UInt8?
    /// For a bridge: the highest bus number below it (defaults to `secondaryBus`).
    public let subordinateBus: UInt8?
    /// PCI class code (base << 16 | sub << 8 | interface), if known. USB and
    /// display controllers get relaxable RMRR regions, as in Linux.
    public let classCode: UInt32?

    public init(_ address: FirmwarePCIAddress, secondaryBus: UInt8? = nil, subordinateBus: UInt8? = nil,
                classCode: UInt32? = nil) {
        self.address = address
        self.secondaryBus = secondaryBus
        self.subordinateBus = subordinateBus ?? secondaryBus
        self.classCode = classCode
    }

    /// Whether `other` sits on a bus below this bridge.
    func isUpstream(of other: FirmwarePCIAddress) -> Bool {
        guard let secondary = secondaryBus, let subordinate = subordinateBus,
              other.segment == address.segment else { return false }
        return other.bus >= secondary && other.bus <= subordinate
    }
}

/// The IOMMU family a unit belongs to.
public enum FirmwareIOMMUKind: String, Sendable, Hashable, Codable {
    case intelVTd, amdVi
}

/// One IOMMU hardware unit described by the firmware.
public struct FirmwareIOMMUUnit: Sendable, Hashable, Codable {
    /// Position in `FirmwarePlatform.units`.
    public let index: Int
    public let kind: FirmwareIOMMUKind
    public let segment: UInt16
    /// Physical address of the unit's registers.
    public let registerBase: UInt64
    /// DRHD INCLUDE_PCI_ALL, or an IVHD select-all entry.
    public let includesAllDevices: Bool
    /// AMD: requester ID of the IOMMU itself (IVHD Device ID).
    public let ivhdDeviceID: UInt16?
    /// Offset of the DRHD or IVHD in its table.
    public let tableOffset: Int
}

/// What a reserved region means for the DMA layer.
///
/// - `direct`: must be identity-mapped (IOVA == physical) with the given
///   permissions before the device is attached; never allocated (RMRR, IVMD
///   unity range).
/// - `directRelaxable`: as `direct`, but the mapping may be dropped when the
///   device is assigned elsewhere (RMRRs of USB and graphics devices, as in
///   Linux).
/// - `exclusion`: an IVMD exclusion range. The hardware lets the device's
///   accesses there bypass translation, so the effect is an identity mapping
///   with read and write; the DMA layer maps it 1:1 and never allocates an IOVA
///   inside it (Linux also turns exclusion ranges into unity maps).
/// - `msi`: the x86 interrupt window 0xFEE00000-0xFEEFFFFF; writes there are
///   interrupts, so it is never used for DMA mappings.
public enum FirmwareReservedRegionKind: String, Sendable, Hashable, Codable {
    case direct, directRelaxable, exclusion, msi
}

/// A range of a device's I/O virtual address space the firmware reserves.
public struct FirmwareReservedRegion: Sendable, Hashable, Codable {
    /// First address (inclusive).
    public let first: UInt64
    /// Last address (inclusive).
    public let last: UInt64
    public let kind: FirmwareReservedRegionKind
    public let readable: Bool
    public let writable: Bool
    /// Where it comes from: "RMRR@0x50", "IVMD@0xc8", "MSI".
    public let source: String

    /// Number of bytes, or nil for the full 2^64 range (or an empty, inverted range).
    public var size: UInt64? {
        guard last >= first, last - first < UInt64.max else { return nil }
        return last - first + 1
    }
}

/// How a device was matched to its IOMMU unit.
public enum FirmwareCoverage: String, Sendable, Hashable, Codable {
    /// A DRHD endpoint scope or an IVHD select / alias select / extended select / ACPI HID entry.
    case explicit
    /// A DRHD bridge scope above the device.
    case bridgeScope
    /// An IVHD range (plain, alias or extended).
    case range
    /// DRHD INCLUDE_PCI_ALL or IVHD select-all.
    case includeAll
}

/// A present device: its IOMMU unit and reserved regions.
public struct FirmwareDeviceDescription: Sendable, Hashable, Codable {
    public let address: FirmwarePCIAddress
    public let requesterID: UInt16
    /// Index into `FirmwarePlatform.units`, nil when no unit translates it.
    public let unit: Int?
    public let coverage: FirmwareCoverage?
    /// AMD alias entries: the requester ID the IOMMU sees for this device.
    public let aliasRequesterID: UInt16?
    /// Reserved regions, sorted by address. Empty when `unit` is nil.
    public let reservedRegions: [FirmwareReservedRegion]

    public init(address: FirmwarePCIAddress, unit: Int?, coverage: FirmwareCoverage?, aliasRequesterID: UInt16?,
                reservedRegions: [FirmwareReservedRegion]) {
        self.address = address
        self.requesterID = address.requesterID
        self.unit = unit
        self.coverage = coverage
        self.aliasRequesterID = aliasRequesterID
        self.reservedRegions = reservedRegions
    }
}

/// A DMAR device scope with a multi-hop path that could not be resolved
/// against the present devices' bridges.
public struct FirmwareUnresolvedScope: Sendable, Hashable, Codable {
    /// "DRHD", "RMRR", ...
    public let structure: String
    /// Offset of the device scope in the table.
    public let offset: Int
    /// `bb:dd.f/dd.f...`
    public let path: String
    public let reason: String
}

/// The x86 MSI window every translated device has reserved.
public let firmwareMSIWindow: ClosedRange<UInt64> = 0xFEE0_0000...0xFEEF_FFFF
