/// The platform as the firmware describes it: IOMMU units, which unit
/// translates each present device, and each device's reserved regions.
///
/// Built from a parsed DMAR or IVRS table and a list of present devices. When
/// no list is given, the devices the table itself names are used (see
/// `impliedDevices(dmar:)` / `impliedDevices(ivrs:)`); ranges and
/// include-all units then only cover those.
public struct FirmwarePlatform: Sendable, Hashable, Codable {
    public let units: [FirmwareIOMMUUnit]
    /// One entry per present device, sorted by address.
    public let devices: [FirmwareDeviceDescription]
    /// Multi-hop DMAR paths that could not be followed through present bridges.
    public let unresolvedScopes: [FirmwareUnresolvedScope]
    /// IVRS only: the IVHD type whose blocks define the units (the highest of
    /// 0x40, 0x11, 0x10 present; the others describe the same IOMMUs for
    /// older software).
    public let ivhdTypeUsed: UInt8?

    public init(units: [FirmwareIOMMUUnit], devices: [FirmwareDeviceDescription],
                unresolvedScopes: [FirmwareUnresolvedScope], ivhdTypeUsed: UInt8?) {
        self.units = units
        self.devices = devices
        self.unresolvedScopes = unresolvedScopes
        self.ivhdTypeUsed = ivhdTypeUsed
    }

    /// Builds the description for either table kind.
    public init(table: FirmwareTable, devices: [FirmwarePCIDevice]? = nil) {
        switch table {
        case .dmar(let dmar): self.init(dmar: dmar, devices: devices)
        case .ivrs(let ivrs): self.init(ivrs: ivrs, devices: devices)
        }
    }

    /// The description of one device, if it is in `devices`.
    public func device(_ address: FirmwarePCIAddress) -> FirmwareDeviceDescription? {
        devices.first { $0.address == address }
    }

    /// The MSI window region every translated x86 device has.
    static let msiRegion = FirmwareReservedRegion(
        first: firmwareMSIWindow.lowerBound, last: firmwareMSIWindow.upperBound, kind: .msi,
        readable: false, writable: false, source: "MSI")

    /// Sorted, de-duplicated present devices.
    static func normalise(_ devices: [FirmwarePCIDevice]) -> [FirmwarePCIDevice] {
        var seen = Set<FirmwarePCIAddress>()
        var out: [FirmwarePCIDevice] = []
        for device in devices.sorted(by: { $0.address < $1.address }) where seen.insert(device.address).inserted {
            out.append(device)
        }
        return out
    }
}
