extension IVHDDeviceEntry {
    /// Size of a device entry of `type`, or nil when it cannot be known
    /// without a length field. Types below 0x80 encode their size in bits
    /// 7:6 (4 or 8 bytes); 0xF0 carries a UID length.
    static func fixedLength(type: UInt8) -> Int? {
        if type < 0x40 { return 4 }
        if type < 0x80 { return 8 }
        return nil
    }

    static func kind(of type: UInt8) -> IVHDEntryKind {
        switch type {
        case 0x00: return .pad
        case 0x01: return .selectAll
        case 0x02: return .select
        case 0x03: return .rangeStart
        case 0x04: return .rangeEnd
        case 0x42: return .aliasSelect
        case 0x43: return .aliasRangeStart
        case 0x46: return .extendedSelect
        case 0x47: return .extendedRangeStart
        case 0x48: return .special
        case 0xF0: return .acpiHID
        default: return .unknown
        }
    }

    /// Decodes the device entries filling `[start, end)` of an IVHD.
    static func parseList(_ reader: ByteReader, from start: Int, to end: Int,
                          owner: String) throws(FirmwareTableError) -> [IVHDDeviceEntry] {
        var entries: [IVHDDeviceEntry] = []
        var offset = start
        var openRange: Int?  // offset of an unmatched range start
        let name = owner + " device entry"
        while offset < end {
            if end - offset < 4 {
                throw .trailingBytes(structure: name, offset: offset, count: end - offset)
            }
            let type = reader.u8(offset)
            let kind = kind(of: type)
            let length: Int
            if let fixed = fixedLength(type: type) {
                length = fixed
            } else if type == 0xF0 {
                if end - offset < 22 {
                    throw .structureOverrun(structure: name + " (ACPI HID)", offset: offset,
                                            length: 22, containerEnd: end)
                }
                length = 22 + Int(reader.u8(offset + 21))
            } else {
                throw .unknownEntryLength(structure: name, offset: offset, type: type)
            }
            try reader.require(name, offset: offset, length: length, minimum: 4, end: end)
            let entry = decode(reader, at: offset, type: type, kind: kind, length: length)
            if let acpi = entry.acpiDevice, acpi.uidFormat == .integer, acpi.uidLength > 8 {
                throw .inconsistent(structure: name + " (ACPI HID)", offset: offset,
                                    reason: "integer UID of \(acpi.uidLength) bytes does not fit 64 bits")
            }
            switch kind {
            case .rangeStart, .aliasRangeStart, .extendedRangeStart:
                if let open = openRange {
                    throw .inconsistent(structure: name, offset: offset,
                                        reason: "range start while the range started at offset 0x\(hex(open)) is still open")
                }
                openRange = offset
            case .rangeEnd:
                guard let open = openRange, let first = entries.last(where: { $0.offset == open }) else {
                    throw .inconsistent(structure: name, offset: offset, reason: "range end without a range start")
                }
                if entry.deviceID < first.deviceID {
                    throw .inconsistent(structure: name, offset: offset,
                                        reason: "range end 0x\(hex(entry.deviceID, digits: 4)) is below its start 0x\(hex(first.deviceID, digits: 4))")
                }
                openRange = nil
            default:
                break
            }
            entries.append(entry)
            offset += length
        }
        if let open = openRange {
            throw .inconsistent(structure: name, offset: open, reason: "range start without a range end")
        }
        return entries
    }

    static func decode(_ reader: ByteReader, at offset: Int, type: UInt8, kind: IVHDEntryKind,
                       length: Int) -> IVHDDeviceEntry {
        var alias: UInt16?
        var extended: UInt32?
        var special: IVHDSpecialDevice?
        var acpi: IVHDACPIDevice?
        switch kind {
        case .aliasSelect, .aliasRangeStart:
            alias = reader.u16(offset + 5)
        case .extendedSelect, .extendedRangeStart:
            extended = reader.u32(offset + 4)
        case .special:
            let code = reader.u8(offset + 7)
            special = IVHDSpecialDevice(
                handle: reader.u8(offset + 4), sourceDeviceID: reader.u16(offset + 5), varietyCode: code,
                variety: code == 1 ? .ioapic : (code == 2 ? .hpet : .unknown))
        case .acpiHID:
            acpi = decodeACPIDevice(reader, at: offset)
        default:
            break
        }
        return IVHDDeviceEntry(
            offset: offset, type: type, kind: kind, length: length, deviceID: reader.u16(offset + 1),
            dataSetting: reader.u8(offset + 3), aliasSourceID: alias, extendedData: extended,
            special: special, acpiDevice: acpi)
    }

    static func decodeACPIDevice(_ reader: ByteReader, at offset: Int) -> IVHDACPIDevice {
        let formatCode = reader.u8(offset + 20)
        let uidLength = reader.u8(offset + 21)
        let uidBytes = reader.slice(offset + 22, Int(uidLength))
        let format: IVHDUIDFormat
        switch formatCode {
        case 0: format = .none
        case 1: format = .integer
        case 2: format = .string
        default: format = .unknown
        }
        var uidString: ACPIString?
        var uidInteger: UInt64?
        if format == .string { uidString = ACPIString(uidBytes) }
        if format == .integer && uidLength <= 8 { uidInteger = reader.uint(offset + 22, width: Int(uidLength)) }
        return IVHDACPIDevice(
            hid: ACPIString(reader.slice(offset + 4, 8)), cid: reader.u64(offset + 12),
            uidFormatCode: formatCode, uidFormat: format, uidLength: uidLength,
            uidInteger: uidInteger, uidString: uidString, uidBytes: uidBytes)
    }
}
