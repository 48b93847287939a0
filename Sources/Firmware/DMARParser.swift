extension DMARTable {
    /// Decodes a DMAR table from its raw bytes (exactly `Length` bytes).
    ///
    /// Every length is checked: the header Length against the buffer, each
    /// remapping structure against the table end and its type's fixed size,
    /// each device scope against its structure. Unknown structure types are
    /// skipped by their length and listed in `unknownStructures`.
    public static func parse(_ bytes: [UInt8], options: FirmwareParseOptions = .lenient) throws(FirmwareTableError) -> DMARTable {
        let reader = ByteReader(bytes)
        let (header, checksumValid) = try ACPITableHeader.parse(
            reader, signature: "DMAR", minimumLength: fixedSize, options: options)
        let end = reader.count
        var units: [DMARHardwareUnit] = []
        var rmrrs: [DMARReservedMemoryRegion] = []
        var atsrs: [DMARRootPortATS] = []
        var rhsas: [DMARHardwareAffinity] = []
        var andds: [DMARNamespaceDevice] = []
        var satcs: [DMARSoCIntegratedATC] = []
        var sidps: [DMARSoCDeviceProperty] = []
        var unknown: [FirmwareUnknownStructure] = []

        var offset = fixedSize
        while offset < end {
            if end - offset < 4 {
                throw .trailingBytes(structure: "DMAR remapping structure", offset: offset, count: end - offset)
            }
            let type = reader.u16(offset)
            let length = Int(reader.u16(offset + 2))
            let name = structureName(type)
            try reader.require(name, offset: offset, length: length, minimum: minimumLength(type), end: end)
            let scopesAt = offset + scopeStart(type)
            let structEnd = offset + length
            switch type {
            case 0:
                let flags = reader.u8(offset + 4)
                units.append(DMARHardwareUnit(
                    offset: offset, length: length, flags: flags, includePCIAll: flags & 1 != 0,
                    size: reader.u8(offset + 5), segment: reader.u16(offset + 6),
                    registerBase: reader.u64(offset + 8),
                    scopes: try parseScopes(reader, from: scopesAt, to: structEnd, owner: name)))
            case 1:
                let base = reader.u64(offset + 8)
                let limit = reader.u64(offset + 16)
                if limit < base {
                    throw .inconsistent(structure: name, offset: offset,
                                        reason: "end address 0x\(hex(limit)) is below base address 0x\(hex(base))")
                }
                rmrrs.append(DMARReservedMemoryRegion(
                    offset: offset, length: length, segment: reader.u16(offset + 6),
                    baseAddress: base, limitAddress: limit,
                    scopes: try parseScopes(reader, from: scopesAt, to: structEnd, owner: name)))
            case 2:
                let flags = reader.u8(offset + 4)
                atsrs.append(DMARRootPortATS(
                    offset: offset, length: length, flags: flags, allPorts: flags & 1 != 0,
                    segment: reader.u16(offset + 6),
                    scopes: try parseScopes(reader, from: scopesAt, to: structEnd, owner: name)))
            case 3:
                rhsas.append(DMARHardwareAffinity(
                    offset: offset, length: length, registerBase: reader.u64(offset + 8),
                    proximityDomain: reader.u32(offset + 16)))
            case 4:
                var nameBytes = reader.slice(offset + 8, length - 8)
                if let nul = nameBytes.firstIndex(of: 0) { nameBytes.removeSubrange(nul...) }
                andds.append(DMARNamespaceDevice(
                    offset: offset, length: length, deviceNumber: reader.u8(offset + 7),
                    objectName: ACPIString(nameBytes)))
            case 5:
                let flags = reader.u8(offset + 4)
                satcs.append(DMARSoCIntegratedATC(
                    offset: offset, length: length, flags: flags, atcRequired: flags & 1 != 0,
                    segment: reader.u16(offset + 6),
                    scopes: try parseScopes(reader, from: scopesAt, to: structEnd, owner: name)))
            case 6:
                sidps.append(DMARSoCDeviceProperty(
                    offset: offset, length: length, segment: reader.u16(offset + 6),
                    scopes: try parseScopes(reader, from: scopesAt, to: structEnd, owner: name)))
            default:
                unknown.append(FirmwareUnknownStructure(
                    offset: offset, type: type, length: length, bytes: reader.slice(offset, length)))
            }
            offset = structEnd
        }
        let haw = reader.u8(36)
        return DMARTable(
            header: header, checksumValid: checksumValid, hostAddressWidthField: haw,
            hostAddressWidth: Int(haw) + 1, flags: DMARFlags(rawValue: reader.u8(37)),
            hardwareUnits: units, reservedMemoryRegions: rmrrs, rootPortATS: atsrs,
            hardwareAffinities: rhsas, namespaceDevices: andds, socIntegratedATC: satcs,
            socIntegratedDeviceProperties: sidps, unknownStructures: unknown)
    }

    /// Structure name used in errors and reports.
    static func structureName(_ type: UInt16) -> String {
        switch type {
        case 0: return "DRHD"
        case 1: return "RMRR"
        case 2: return "ATSR"
        case 3: return "RHSA"
        case 4: return "ANDD"
        case 5: return "SATC"
        case 6: return "SIDP"
        default: return "DMAR structure type \(type)"
        }
    }

    /// Fixed size of each structure type (before its device scopes or name).
    static func minimumLength(_ type: UInt16) -> Int {
        switch type {
        case 0: return 16
        case 1: return 24
        case 2, 5, 6: return 8
        case 3: return 20
        case 4: return 8
        default: return 4
        }
    }

    /// Where the device scope list starts inside a structure.
    static func scopeStart(_ type: UInt16) -> Int {
        type == 1 ? 24 : (type == 0 ? 16 : 8)
    }

    /// Decodes the device scopes filling `[start, end)`, which must be exact.
    static func parseScopes(_ reader: ByteReader, from start: Int, to end: Int,
                            owner: String) throws(FirmwareTableError) -> [DMARDeviceScope] {
        var scopes: [DMARDeviceScope] = []
        var offset = start
        let name = owner + " device scope"
        while offset < end {
            if end - offset < 2 {
                throw .trailingBytes(structure: name, offset: offset, count: end - offset)
            }
            let length = Int(reader.u8(offset + 1))
            try reader.require(name, offset: offset, length: length, minimum: 8, end: end)
            if (length - 6) % 2 != 0 {
                throw .inconsistent(structure: name, offset: offset,
                                    reason: "length \(length) leaves half a (device, function) path entry")
            }
            var path: [DMARPathElement] = []
            var hop = offset + 6
            while hop + 1 < offset + length {
                let device = reader.u8(hop)
                let function = reader.u8(hop + 1)
                if device > 31 || function > 7 {
                    throw .inconsistent(structure: name, offset: hop,
                                        reason: "PCI path entry \(device),\(function) is not a valid device (0-31) and function (0-7)")
                }
                path.append(DMARPathElement(device: device, function: function))
                hop += 2
            }
            let type = reader.u8(offset)
            scopes.append(DMARDeviceScope(
                offset: offset, length: length, type: type, kind: DMARDeviceScopeKind(code: type),
                flags: reader.u8(offset + 2), enumerationID: reader.u8(offset + 4),
                startBus: reader.u8(offset + 5), path: path))
            offset += length
        }
        return scopes
    }
}
