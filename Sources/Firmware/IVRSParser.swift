extension IVRSTable {
    /// Decodes an IVRS table from its raw bytes (exactly `Length` bytes).
    ///
    /// Every subtable's length is checked against the table end and its
    /// type's fixed size; every IVHD device entry against its IVHD. Range
    /// entries must pair up (a start followed by an end, end >= start).
    /// Unknown subtable types are skipped by length and listed.
    public static func parse(_ bytes: [UInt8], options: FirmwareParseOptions = .lenient) throws(FirmwareTableError) -> IVRSTable {
        let reader = ByteReader(bytes)
        let (header, checksumValid) = try ACPITableHeader.parse(
            reader, signature: "IVRS", minimumLength: fixedSize, options: options)
        let end = reader.count
        var ivhds: [IVHDBlock] = []
        var ivmds: [IVMDBlock] = []
        var unknown: [FirmwareUnknownStructure] = []
        var offset = fixedSize
        while offset < end {
            if end - offset < 4 {
                throw .trailingBytes(structure: "IVRS subtable", offset: offset, count: end - offset)
            }
            let type = reader.u8(offset)
            let length = Int(reader.u16(offset + 2))
            switch type {
            case 0x10, 0x11, 0x40:
                let name = "IVHD type 0x\(hex(type, digits: 2))"
                try reader.require(name, offset: offset, length: length,
                                   minimum: IVHDBlock.headerSize(type: type), end: end)
                ivhds.append(try parseIVHD(reader, at: offset, type: type, length: length, name: name))
            case 0x20, 0x21, 0x22:
                let name = "IVMD type 0x\(hex(type))"
                try reader.require(name, offset: offset, length: length, minimum: 32, end: end)
                ivmds.append(try parseIVMD(reader, at: offset, type: type, length: length, name: name))
            default:
                let name = "IVRS subtable type 0x\(hex(type, digits: 2))"
                try reader.require(name, offset: offset, length: length, minimum: 4, end: end)
                unknown.append(FirmwareUnknownStructure(
                    offset: offset, type: UInt16(type), length: length, bytes: reader.slice(offset, length)))
            }
            offset += length
        }
        return IVRSTable(
            header: header, checksumValid: checksumValid, info: IVRSInfo(rawValue: reader.u32(36)),
            hardwareDefinitions: ivhds, memoryDefinitions: ivmds, unknownSubtables: unknown)
    }

    static func parseIVHD(_ reader: ByteReader, at offset: Int, type: UInt8, length: Int,
                          name: String) throws(FirmwareTableError) -> IVHDBlock {
        let wide = type != 0x10
        let headerSize = IVHDBlock.headerSize(type: type)
        let entries = try IVHDDeviceEntry.parseList(
            reader, from: offset + headerSize, to: offset + length, owner: name)
        return IVHDBlock(
            offset: offset, type: type, flags: reader.u8(offset + 1), length: length,
            deviceID: reader.u16(offset + 4), capabilityOffset: reader.u16(offset + 6),
            baseAddress: reader.u64(offset + 8), segment: reader.u16(offset + 16),
            iommuInfo: reader.u16(offset + 18),
            featureReporting: wide ? nil : reader.u32(offset + 20),
            attributes: wide ? reader.u32(offset + 20) : nil,
            efrImage: wide ? reader.u64(offset + 24) : nil,
            efr2Image: wide ? reader.u64(offset + 32) : nil,
            entries: entries)
    }

    static func parseIVMD(_ reader: ByteReader, at offset: Int, type: UInt8, length: Int,
                          name: String) throws(FirmwareTableError) -> IVMDBlock {
        let deviceID = reader.u16(offset + 4)
        let aux = reader.u16(offset + 6)
        let start = reader.u64(offset + 16)
        let size = reader.u64(offset + 24)
        if size > 0 && size - 1 > UInt64.max - start {
            throw .inconsistent(structure: name, offset: offset,
                                reason: "range 0x\(hex(start)) + 0x\(hex(size)) wraps past the top of the address space")
        }
        let scope: IVMDScope
        var first = deviceID
        var last = deviceID
        switch type {
        case 0x20:
            scope = .allDevices
            first = 0
            last = 0xFFFF
        case 0x21:
            scope = .device
        default:
            scope = .deviceRange
            last = aux
            if last < first {
                throw .inconsistent(structure: name, offset: offset,
                                    reason: "device range end 0x\(hex(last, digits: 4)) is below its start 0x\(hex(first, digits: 4))")
            }
        }
        return IVMDBlock(
            offset: offset, type: type, flags: reader.u8(offset + 1), length: length,
            deviceID: deviceID, auxiliaryData: aux, segment: reader.u16(offset + 8), scope: scope,
            firstDeviceID: first, lastDeviceID: last, startAddress: start, memoryLength: size)
    }
}
