@testable import Firmware

/// Turns a parsed table back into the (offset, name, value) fields iasl
/// prints, so a test can compare every decoded field with the .dsl.
///
/// Each field also says which raw bytes it came from (`raw`), so fields
/// iasl cannot show are still checked against the table bytes.
struct EmittedField {
    enum Raw { case integer(UInt64), bytes([UInt8]) }
    let offset: Int
    let width: Int
    let name: String
    let value: String
    let raw: Raw
    /// iasl leaves this field out (a zero UID format/length of an entry without UID).
    var iaslMayOmit = false
    /// iasl cannot render it faithfully (binary bytes in a text field).
    var rawOnly = false
}

struct IASLFieldEmitter {
    private(set) var fields: [EmittedField] = []

    static func hexText(_ value: UInt64, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width * 2 - digits.count)) + digits
    }

    mutating func int(_ offset: Int, _ width: Int, _ name: String, _ value: some BinaryInteger, mayOmit: Bool = false) {
        var field = EmittedField(offset: offset, width: width, name: name,
                                 value: Self.hexText(UInt64(value), width: width), raw: .integer(UInt64(value)))
        field.iaslMayOmit = mayOmit
        fields.append(field)
    }

    mutating func text(_ offset: Int, _ width: Int, _ name: String, _ string: ACPIString) {
        let printable = string.bytes.prefix { $0 != 0 }
        var field = EmittedField(offset: offset, width: width, name: name,
                                 value: String(decoding: printable, as: UTF8.self), raw: .bytes(string.bytes))
        field.rawOnly = !string.isPrintableASCII
        fields.append(field)
    }

    mutating func header(_ header: ACPITableHeader) {
        text(0, 4, "Signature", ACPIString(Array(header.signature.utf8)))
        int(4, 4, "Table Length", header.length)
        int(8, 1, "Revision", header.revision)
        int(9, 1, "Checksum", header.checksum)
        text(10, 6, "Oem ID", header.oemID)
        text(16, 8, "Oem Table ID", header.oemTableID)
        int(24, 4, "Oem Revision", header.oemRevision)
        text(28, 4, "Asl Compiler ID", header.creatorID)
        int(32, 4, "Asl Compiler Revision", header.creatorRevision)
    }

    // MARK: DMAR

    static func fields(for table: DMARTable) -> [EmittedField] {
        var out = IASLFieldEmitter()
        out.header(table.header)
        out.int(36, 1, "Host Address Width", table.hostAddressWidthField)
        out.int(37, 1, "Flags", table.flags.rawValue)
        for unit in table.hardwareUnits {
            out.structure(unit.offset, 0, unit.length)
            out.int(unit.offset + 4, 1, "Flags", unit.flags)
            out.int(unit.offset + 5, 1, "Size (decoded below)", unit.size)
            out.int(unit.offset + 6, 2, "PCI Segment Number", unit.segment)
            out.int(unit.offset + 8, 8, "Register Base Address", unit.registerBase)
            out.scopes(unit.scopes)
        }
        for rmrr in table.reservedMemoryRegions {
            out.structure(rmrr.offset, 1, rmrr.length)
            out.int(rmrr.offset + 6, 2, "PCI Segment Number", rmrr.segment)
            out.int(rmrr.offset + 8, 8, "Base Address", rmrr.baseAddress)
            out.int(rmrr.offset + 16, 8, "End Address (limit)", rmrr.limitAddress)
            out.scopes(rmrr.scopes)
        }
        for atsr in table.rootPortATS {
            out.structure(atsr.offset, 2, atsr.length)
            out.int(atsr.offset + 4, 1, "Flags", atsr.flags)
            out.int(atsr.offset + 6, 2, "PCI Segment Number", atsr.segment)
            out.scopes(atsr.scopes)
        }
        for rhsa in table.hardwareAffinities {
            out.structure(rhsa.offset, 3, rhsa.length)
            out.int(rhsa.offset + 8, 8, "Base Address", rhsa.registerBase)
            out.int(rhsa.offset + 16, 4, "Proximity Domain", rhsa.proximityDomain)
        }
        for andd in table.namespaceDevices {
            out.structure(andd.offset, 4, andd.length)
            out.int(andd.offset + 7, 1, "Device Number", andd.deviceNumber)
            out.text(andd.offset + 8, andd.objectName.bytes.count + 1, "Device Name", andd.objectName)
        }
        for satc in table.socIntegratedATC {
            out.structure(satc.offset, 5, satc.length)
            out.int(satc.offset + 4, 1, "Flags", satc.flags)
            out.int(satc.offset + 6, 2, "PCI Segment Number", satc.segment)
            out.scopes(satc.scopes)
        }
        for sidp in table.socIntegratedDeviceProperties {
            out.structure(sidp.offset, 6, sidp.length)
            out.int(sidp.offset + 6, 2, "PCI Segment Number", sidp.segment)
            out.scopes(sidp.scopes)
        }
        for other in table.unknownStructures {
            out.structure(other.offset, other.type, other.length)
        }
        return out.fields
    }

    mutating func structure(_ offset: Int, _ type: UInt16, _ length: Int) {
        int(offset, 2, "Subtable Type", type)
        int(offset + 2, 2, "Length", length)
    }

    mutating func scopes(_ scopes: [DMARDeviceScope]) {
        for scope in scopes {
            int(scope.offset, 1, "Device Scope Type", scope.type)
            int(scope.offset + 1, 1, "Entry Length", scope.length)
            int(scope.offset + 2, 1, "Flags", scope.flags)
            int(scope.offset + 4, 1, "Enumeration ID", scope.enumerationID)
            int(scope.offset + 5, 1, "PCI Bus Number", scope.startBus)
            for (index, hop) in scope.path.enumerated() {
                fields.append(EmittedField(
                    offset: scope.offset + 6 + 2 * index, width: 2, name: "PCI Path",
                    value: Self.hexText(UInt64(hop.device), width: 1) + "," + Self.hexText(UInt64(hop.function), width: 1),
                    raw: .bytes([hop.device, hop.function])))
            }
        }
    }

    // MARK: IVRS

    static func fields(for table: IVRSTable) -> [EmittedField] {
        var out = IASLFieldEmitter()
        out.header(table.header)
        out.int(36, 4, "Virtualization Info", table.info.rawValue)
        for block in table.hardwareDefinitions {
            let o = block.offset
            out.int(o, 1, "Subtable Type", block.type)
            out.int(o + 1, 1, "Flags (decoded below)", block.flags)
            out.int(o + 2, 2, "Length", block.length)
            out.int(o + 4, 2, "DeviceId", block.deviceID)
            out.int(o + 6, 2, "Capability Offset", block.capabilityOffset)
            out.int(o + 8, 8, "Base Address", block.baseAddress)
            out.int(o + 16, 2, "PCI Segment Group", block.segment)
            out.int(o + 18, 2, "Virtualization Info", block.iommuInfo)
            if let value = block.featureReporting { out.int(o + 20, 4, "Feature Reporting", value) }
            if let value = block.attributes { out.int(o + 20, 4, "Attributes", value) }
            if let value = block.efrImage { out.int(o + 24, 8, "EFR Image", value) }
            if let value = block.efr2Image { out.int(o + 32, 8, "Reserved", value) }
            for entry in block.entries { out.entry(entry) }
        }
        for ivmd in table.memoryDefinitions {
            let o = ivmd.offset
            out.int(o, 1, "Subtable Type", ivmd.type)
            out.int(o + 1, 1, "Flags (decoded below)", ivmd.flags)
            out.int(o + 2, 2, "Length", ivmd.length)
            out.int(o + 4, 2, "DeviceId", ivmd.deviceID)
            out.int(o + 6, 2, "Auxiliary Data", ivmd.auxiliaryData)
            out.int(o + 8, 8, "Reserved", ivmd.segment)
            out.int(o + 16, 8, "Start Address", ivmd.startAddress)
            out.int(o + 24, 8, "Memory Length", ivmd.memoryLength)
        }
        for other in table.unknownSubtables {
            out.int(other.offset, 1, "Subtable Type", other.type)
            out.int(other.offset + 2, 2, "Length", other.length)
        }
        return out.fields
    }

    mutating func entry(_ entry: IVHDDeviceEntry) {
        let o = entry.offset
        int(o, 1, "Subtable Type", entry.type)
        int(o + 1, 2, "Device ID", entry.deviceID)
        int(o + 3, 1, "Data Setting (decoded below)", entry.dataSetting)
        if let alias = entry.aliasSourceID { int(o + 5, 2, "Source Used Device ID", alias) }
        if let data = entry.extendedData { int(o + 4, 4, "Extended Data", data) }
        if let special = entry.special {
            int(o + 4, 1, "Handle", special.handle)
            int(o + 5, 2, "Source Used Device ID", special.sourceDeviceID)
            int(o + 7, 1, "Variety", special.varietyCode)
        }
        if let acpi = entry.acpiDevice {
            text(o + 4, 8, "ACPI HID", acpi.hid)
            int(o + 12, 8, "ACPI CID", acpi.cid)
            let absent = acpi.uidFormat == .none && acpi.uidLength == 0
            int(o + 20, 1, "UID Format", acpi.uidFormatCode, mayOmit: absent)
            int(o + 21, 1, "UID Length", acpi.uidLength, mayOmit: absent)
            if let uid = acpi.uidString { text(o + 22, Int(acpi.uidLength), "UID", uid) }
            if let uid = acpi.uidInteger { int(o + 22, Int(acpi.uidLength), "UID", uid) }
        }
    }
}
