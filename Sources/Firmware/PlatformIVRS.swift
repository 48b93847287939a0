extension FirmwarePlatform {
    /// Builds the platform from an IVRS table.
    ///
    /// Units come from the IVHD blocks of the highest type present (0x40,
    /// then 0x11, then 0x10), one unit per block. A device belongs to the
    /// first unit (table order, same segment) with a select, alias select,
    /// extended select or ACPI HID entry for its requester ID; else to the
    /// first whose range (plain, alias or extended) contains it; else to the
    /// first with a select-all entry. Covered devices get:
    /// - each IVMD that applies to them (type 0x20 all, 0x21 one device, 0x22
    ///   a range, on the IVMD's segment): unity ranges as `direct` with the
    ///   IVMD's read/write flags, exclusion ranges as `exclusion` (read and
    ///   write). IVMDs with neither flag reserve nothing. The stored start and
    ///   length are widened to whole 4 KiB pages (firmware has 1-byte lengths),
    ///   as Linux does.
    /// - the MSI window.
    public init(ivrs: IVRSTable, devices given: [FirmwarePCIDevice]? = nil) {
        let chosen = Self.chosenIVHDType(ivrs)
        let blocks = ivrs.hardwareDefinitions.filter { $0.type == chosen }
        let present = Self.normalise(given ?? Self.impliedDevices(ivrs: ivrs))
        let maps = blocks.map(Self.coverageMap)
        var units: [FirmwareIOMMUUnit] = []
        for (index, block) in blocks.enumerated() {
            units.append(FirmwareIOMMUUnit(
                index: index, kind: .amdVi, segment: block.segment, registerBase: block.baseAddress,
                includesAllDevices: maps[index].selectAll, ivhdDeviceID: block.deviceID, tableOffset: block.offset))
        }
        var described: [FirmwareDeviceDescription] = []
        for device in present {
            let address = device.address
            let id = address.requesterID
            var unit: Int?
            var coverage: FirmwareCoverage?
            var alias: UInt16?
            let candidates = blocks.indices.filter { blocks[$0].segment == address.segment }
            if let index = candidates.first(where: { maps[$0].explicit[id] != nil }) {
                unit = index
                coverage = .explicit
                alias = maps[index].explicit[id] ?? nil
            } else if let index = candidates.first(where: { maps[$0].range(containing: id) != nil }) {
                unit = index
                coverage = .range
                alias = maps[index].range(containing: id)?.alias
            } else if let index = candidates.first(where: { maps[$0].selectAll }) {
                unit = index
                coverage = .includeAll
            }
            var regions: [FirmwareReservedRegion] = []
            if unit != nil {
                for ivmd in ivrs.memoryDefinitions where ivmd.segment == address.segment
                    && id >= ivmd.firstDeviceID && id <= ivmd.lastDeviceID {
                    if let region = Self.region(for: ivmd) { regions.append(region) }
                }
                regions.append(Self.msiRegion)
            }
            described.append(FirmwareDeviceDescription(
                address: address, unit: unit, coverage: coverage, aliasRequesterID: alias,
                reservedRegions: Self.sortRegions(regions)))
        }
        self.init(units: units, devices: described, unresolvedScopes: [], ivhdTypeUsed: blocks.isEmpty ? nil : chosen)
    }

    /// The PCI devices an IVRS table names: select, alias select, extended
    /// select and ACPI HID entries of the IVHD blocks used, and the device
    /// of each type 0x21 IVMD.
    public static func impliedDevices(ivrs: IVRSTable) -> [FirmwarePCIDevice] {
        let chosen = chosenIVHDType(ivrs)
        var out: [FirmwarePCIDevice] = []
        for block in ivrs.hardwareDefinitions where block.type == chosen {
            for entry in block.entries {
                switch entry.kind {
                case .select, .aliasSelect, .extendedSelect, .acpiHID:
                    out.append(FirmwarePCIDevice(FirmwarePCIAddress(segment: block.segment, requesterID: entry.deviceID)))
                default: break
                }
            }
        }
        for ivmd in ivrs.memoryDefinitions where ivmd.scope == .device {
            out.append(FirmwarePCIDevice(FirmwarePCIAddress(segment: ivmd.segment, requesterID: ivmd.deviceID)))
        }
        return normalise(out)
    }

    /// Highest IVHD type present among 0x40, 0x11, 0x10.
    static func chosenIVHDType(_ ivrs: IVRSTable) -> UInt8 {
        let types = Set(ivrs.hardwareDefinitions.map(\.type))
        return [0x40, 0x11, 0x10].first { types.contains($0) } ?? 0x10
    }

    /// The reserved region an IVMD creates, widened to whole pages.
    static func region(for ivmd: IVMDBlock) -> FirmwareReservedRegion? {
        guard ivmd.memoryLength > 0, ivmd.unity || ivmd.exclusionRange else { return nil }
        let first = ivmd.startAddress & ~UInt64(0xFFF)
        let lastByte = ivmd.startAddress &+ (ivmd.memoryLength - 1)  // parser rejected wrap-around
        let source = "IVMD@0x" + hex(ivmd.offset)
        if ivmd.exclusionRange {
            return FirmwareReservedRegion(first: first, last: lastByte | 0xFFF, kind: .exclusion,
                                          readable: true, writable: true, source: source)
        }
        return FirmwareReservedRegion(first: first, last: lastByte | 0xFFF, kind: .direct,
                                      readable: ivmd.readable, writable: ivmd.writable, source: source)
    }

    /// Requester IDs an IVHD names, expanded from its entries.
    struct CoverageMap {
        struct Range { let first: UInt16; let last: UInt16; let alias: UInt16? }
        /// Requester ID -> alias (nil when not aliased).
        var explicit: [UInt16: UInt16?] = [:]
        var ranges: [Range] = []
        var selectAll = false

        func range(containing id: UInt16) -> Range? {
            ranges.first { id >= $0.first && id <= $0.last }
        }
    }

    static func coverageMap(_ block: IVHDBlock) -> CoverageMap {
        var map = CoverageMap()
        var start: IVHDDeviceEntry?
        for entry in block.entries {
            switch entry.kind {
            case .selectAll: map.selectAll = true
            case .select, .extendedSelect, .acpiHID:
                if map.explicit[entry.deviceID] == nil { map.explicit[entry.deviceID] = .some(nil) }
            case .aliasSelect:
                if map.explicit[entry.deviceID] == nil { map.explicit[entry.deviceID] = .some(entry.aliasSourceID) }
            case .rangeStart, .aliasRangeStart, .extendedRangeStart:
                start = entry
            case .rangeEnd:
                if let first = start, entry.deviceID >= first.deviceID {
                    map.ranges.append(CoverageMap.Range(first: first.deviceID, last: entry.deviceID,
                                                        alias: first.aliasSourceID))
                }
                start = nil
            default: break
            }
        }
        return map
    }
}
