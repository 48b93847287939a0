extension TextRender {
    static func dmar(_ table: DMARTable) -> [String] {
        var lines = header(table.header, checksumValid: table.checksumValid)
        let flagNames = table.flags.names.isEmpty ? "none" : table.flags.names.joined(separator: "|")
        lines.append("  Host address width: \(table.hostAddressWidth) bits, flags 0x\(hex(table.flags.rawValue)) (\(flagNames))")
        var items: [(Int, [String])] = []
        for unit in table.hardwareUnits {
            items.append((unit.offset, ["  DRHD @0x\(hex(unit.offset)): segment \(unit.segment) registers 0x\(hex(unit.registerBase))"
                + " size \(unit.size) flags 0x\(hex(unit.flags))" + (unit.includePCIAll ? " INCLUDE_PCI_ALL" : "")]
                + scopes(unit.scopes)))
        }
        for rmrr in table.reservedMemoryRegions {
            items.append((rmrr.offset, ["  RMRR @0x\(hex(rmrr.offset)): segment \(rmrr.segment)"
                + " 0x\(hex(rmrr.baseAddress))-0x\(hex(rmrr.limitAddress))"] + scopes(rmrr.scopes)))
        }
        for atsr in table.rootPortATS {
            items.append((atsr.offset, ["  ATSR @0x\(hex(atsr.offset)): segment \(atsr.segment) flags 0x\(hex(atsr.flags))"
                + (atsr.allPorts ? " ALL_PORTS" : "")] + scopes(atsr.scopes)))
        }
        for rhsa in table.hardwareAffinities {
            items.append((rhsa.offset, ["  RHSA @0x\(hex(rhsa.offset)): registers 0x\(hex(rhsa.registerBase))"
                + " proximity domain \(rhsa.proximityDomain)"]))
        }
        for andd in table.namespaceDevices {
            items.append((andd.offset, ["  ANDD @0x\(hex(andd.offset)): device \(andd.deviceNumber) \(andd.objectName.quoted)"]))
        }
        for satc in table.socIntegratedATC {
            items.append((satc.offset, ["  SATC @0x\(hex(satc.offset)): segment \(satc.segment) flags 0x\(hex(satc.flags))"
                + (satc.atcRequired ? " ATC_REQUIRED" : "")] + scopes(satc.scopes)))
        }
        for sidp in table.socIntegratedDeviceProperties {
            items.append((sidp.offset, ["  SIDP @0x\(hex(sidp.offset)): segment \(sidp.segment)"] + scopes(sidp.scopes)))
        }
        for other in table.unknownStructures {
            items.append((other.offset, ["  unknown structure type \(other.type) @0x\(hex(other.offset)), \(other.length) bytes (skipped)"]))
        }
        for item in items.sorted(by: { $0.0 < $1.0 }) { lines += item.1 }
        return lines
    }

    static func scopes(_ scopes: [DMARDeviceScope]) -> [String] {
        scopes.map { "    " + $0.description + ($0.flags != 0 ? " flags=0x\(hex($0.flags))" : "") }
    }

    static func ivrs(_ table: IVRSTable) -> [String] {
        var lines = header(table.header, checksumValid: table.checksumValid)
        let info = table.info
        lines.append("  IVinfo 0x\(hex(info.rawValue, digits: 8)): EFR \(info.efrSupported ? "supported" : "not supported"),"
            + " VA \(info.virtualAddressBits) bits, PA \(info.physicalAddressBits) bits,"
            + " GVA \(info.guestVirtualAddressBits.map { "\($0) bits" } ?? "code \(info.guestVirtualAddressSizeCode)")"
            + (info.dmaGuardOptIn ? ", DMA guard opt-in" : "") + (info.htATSReserved ? ", HT ATS reserved" : ""))
        var items: [(Int, [String])] = []
        for block in table.hardwareDefinitions {
            var head = "  IVHD type 0x\(hex(block.type, digits: 2)) @0x\(hex(block.offset)): device"
                + " \(FirmwarePCIAddress(segment: block.segment, requesterID: block.deviceID))"
                + " registers 0x\(hex(block.baseAddress)) flags 0x\(hex(block.flags, digits: 2))"
                + " capability 0x\(hex(block.capabilityOffset)) info 0x\(hex(block.iommuInfo))"
            if let feature = block.featureReporting { head += " features 0x\(hex(feature, digits: 8))" }
            if let attributes = block.attributes { head += " attributes 0x\(hex(attributes, digits: 8))" }
            if let efr = block.efrImage { head += " EFR 0x\(hex(efr, digits: 16))" }
            if let efr2 = block.efr2Image { head += " EFR2 0x\(hex(efr2, digits: 16))" }
            items.append((block.offset, [head] + block.entries.map { "    " + entry($0) }))
        }
        for ivmd in table.memoryDefinitions {
            var flags: [String] = []
            if ivmd.unity { flags.append("unity") }
            if ivmd.readable { flags.append("read") }
            if ivmd.writable { flags.append("write") }
            if ivmd.exclusionRange { flags.append("exclusion") }
            let who: String
            switch ivmd.scope {
            case .allDevices: who = "all devices"
            case .device: who = "device \(FirmwarePCIAddress(segment: ivmd.segment, requesterID: ivmd.deviceID))"
            case .deviceRange: who = "devices \(hex(ivmd.firstDeviceID, digits: 4))..\(hex(ivmd.lastDeviceID, digits: 4))"
            }
            items.append((ivmd.offset, ["  IVMD type 0x\(hex(ivmd.type)) @0x\(hex(ivmd.offset)): \(who)"
                + " start 0x\(hex(ivmd.startAddress)) length 0x\(hex(ivmd.memoryLength))"
                + " flags 0x\(hex(ivmd.flags)) (\(flags.isEmpty ? "none" : flags.joined(separator: "|")))"]))
        }
        for other in table.unknownSubtables {
            items.append((other.offset, ["  unknown subtable type 0x\(hex(other.type, digits: 2)) @0x\(hex(other.offset)),"
                + " \(other.length) bytes (skipped)"]))
        }
        for item in items.sorted(by: { $0.0 < $1.0 }) { lines += item.1 }
        return lines
    }

    static func entry(_ entry: IVHDDeviceEntry) -> String {
        var text = "\(entry.kind.rawValue) (0x\(hex(entry.type, digits: 2)))"
        switch entry.kind {
        case .pad, .selectAll: break
        case .special: break
        default: text += " \(hex(entry.deviceID, digits: 4))"
        }
        if let alias = entry.aliasSourceID { text += " alias \(hex(alias, digits: 4))" }
        if let data = entry.extendedData { text += " extended 0x\(hex(data, digits: 8))" }
        if let special = entry.special {
            text += " \(special.variety.rawValue) #\(special.handle) source \(hex(special.sourceDeviceID, digits: 4))"
        }
        if let acpi = entry.acpiDevice {
            text += " \(acpi.summary) CID 0x\(hex(acpi.cid, digits: 16))"
        }
        if entry.dataSetting != 0 { text += " DTE 0x\(hex(entry.dataSetting, digits: 2))" }
        return text
    }
}
