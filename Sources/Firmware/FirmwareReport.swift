/// What `iommu-sim acpi` prints: each decoded table and the platform
/// description derived from it. `Codable` for `--json`; `renderText()` for
/// people.
public struct FirmwareReport: Sendable, Hashable, Codable {
    public var tables: [FirmwareTableReport]

    public init(tables: [FirmwareTableReport]) { self.tables = tables }

    /// Human-readable rendering, addresses in hexadecimal.
    public func renderText() -> String {
        tables.map { $0.renderText() }.joined(separator: "\n")
    }
}

/// One decoded table and its platform description.
public struct FirmwareTableReport: Sendable, Hashable, Codable {
    /// Where the table came from (a path).
    public let source: String
    /// "DMAR" or "IVRS".
    public let signature: String
    public let checksumValid: Bool
    /// Present when `signature` is "DMAR".
    public let dmar: DMARTable?
    /// Present when `signature` is "IVRS".
    public let ivrs: IVRSTable?
    public let platform: FirmwarePlatform

    /// Builds the report; `devices` as for `FirmwarePlatform` (nil: the
    /// devices the table names).
    public init(source: String, table: FirmwareTable, devices: [FirmwarePCIDevice]? = nil) {
        self.source = source
        self.signature = table.header.signature
        self.checksumValid = table.checksumValid
        switch table {
        case .dmar(let dmar):
            self.dmar = dmar
            self.ivrs = nil
        case .ivrs(let ivrs):
            self.dmar = nil
            self.ivrs = ivrs
        }
        self.platform = FirmwarePlatform(table: table, devices: devices)
    }

    public func renderText() -> String {
        var lines = ["\(source): \(signature)"]
        if let dmar { lines += TextRender.dmar(dmar) }
        if let ivrs { lines += TextRender.ivrs(ivrs) }
        lines += TextRender.platform(platform)
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Text rendering helpers shared by the table and platform renderers.
enum TextRender {
    static func header(_ header: ACPITableHeader, checksumValid: Bool) -> [String] {
        [
            "  Header: revision \(header.revision), length 0x\(hex(header.length)), checksum 0x\(hex(header.checksum, digits: 2))"
                + (checksumValid ? " (valid)" : " (INVALID: bytes do not sum to 0)"),
            "  OEM \(header.oemID.quoted) table \(header.oemTableID.quoted) revision 0x\(hex(header.oemRevision)),"
                + " creator \(header.creatorID.quoted) revision 0x\(hex(header.creatorRevision))",
        ]
    }

    static func platform(_ platform: FirmwarePlatform) -> [String] {
        var lines = ["  Platform:"]
        if let type = platform.ivhdTypeUsed { lines.append("    IVHD type used: 0x\(hex(type, digits: 2))") }
        for unit in platform.units {
            var text = "    unit #\(unit.index): \(unit.kind == .intelVTd ? "Intel VT-d" : "AMD-Vi") segment \(unit.segment)"
                + " registers 0x\(hex(unit.registerBase))"
            if let id = unit.ivhdDeviceID { text += " device \(FirmwarePCIAddress(segment: unit.segment, requesterID: id))" }
            if unit.includesAllDevices { text += " (includes all devices)" }
            lines.append(text)
        }
        lines.append("  Devices and reserved regions:")
        if platform.devices.isEmpty { lines.append("    (none)") }
        for device in platform.devices {
            var text = "    \(device.address)"
            if let unit = device.unit, let coverage = device.coverage {
                text += " -> unit #\(unit) (\(coverage.rawValue))"
            } else {
                text += " -> not translated"
            }
            if let alias = device.aliasRequesterID {
                text += " alias \(FirmwarePCIAddress(segment: device.address.segment, requesterID: alias))"
            }
            lines.append(text)
            for region in device.reservedRegions {
                let access = (region.readable ? "r" : "-") + (region.writable ? "w" : "-")
                lines.append("      0x\(hex(region.first))-0x\(hex(region.last)) \(region.kind.rawValue) \(access) [\(region.source)]")
            }
        }
        for scope in platform.unresolvedScopes {
            lines.append("  unresolved \(scope.structure) scope at 0x\(hex(scope.offset)) path \(scope.path): \(scope.reason)")
        }
        return lines
    }
}
