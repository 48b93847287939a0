import Emulation
import Firmware
import IOMMUCore

extension PlatformSpecification {
    /// The machine a parsed DMAR or IVRS table describes. When the table names
    /// no translated device itself (IVRS tables often cover devices only by
    /// ranges), the device-0 functions of buses 0–4 are probed against its
    /// ranges and the first six it covers are put on the platform.
    /// - Throws: as ``fromFirmware(_:name:policy:)``.
    public static func fromFirmware(table: FirmwareTable, name: String,
                                    policy: DefaultDomainPolicy = .init()) throws(PlatformError) -> PlatformSpecification {
        var firmware = FirmwarePlatform(table: table)
        if !firmware.devices.contains(where: { $0.unit != nil }) {
            let candidates = (0...4).flatMap { bus in
                (0..<32).map { FirmwarePCIDevice(FirmwarePCIAddress(bus: UInt8(bus), device: UInt8($0), function: 0)) }
            }
            let probed = FirmwarePlatform(table: table, devices: candidates)
            firmware = FirmwarePlatform(units: probed.units, devices: Array(probed.devices.filter { $0.unit != nil }.prefix(6)),
                                        unresolvedScopes: probed.unresolvedScopes, ivhdTypeUsed: probed.ivhdTypeUsed)
        }
        return try fromFirmware(firmware, name: name, policy: policy)
    }

    /// The machine an ACPI DMAR or IVRS table describes: its IOMMU units, the
    /// devices the table names (each behind the unit the firmware assigns),
    /// their firmware regions (RMRRs, IVMD unity and exclusion ranges) kept
    /// out of the RAM the page allocator hands out, and the default memory
    /// map around them. A table whose include-all unit names no device gets
    /// one synthetic NIC on a free bus so that the workload has a device.
    /// - Throws: ``PlatformError/invalidSpecification(_:)`` for a table that describes no IOMMU,
    ///   or regions beyond the emulator's 64 TiB of physical address space.
    public static func fromFirmware(_ firmware: FirmwarePlatform, name: String,
                                    policy: DefaultDomainPolicy = .init()) throws(PlatformError) -> PlatformSpecification {
        guard !firmware.units.isEmpty else { throw .invalidSpecification("\(name) describes no IOMMU unit") }
        let units = firmware.units.map { unit in
            let family: IOMMUFamily = unit.kind == .intelVTd ? .intelVTd : .amdVi
            return UnitSpecification(name: "\(family.unitPrefix)\(unit.index)", family: family, segment: unit.segment)
        }
        var devices: [DeviceSpecification] = []
        var highest: UInt64 = 0
        var firmwareRanges: [ClosedRange<UInt64>] = []
        for description in firmware.devices {
            let address = PCIAddress(segment: description.address.segment, requesterID: description.requesterID)
            let alias = description.aliasRequesterID.flatMap { $0 == description.requesterID ? nil
                : PCIAddress(segment: description.address.segment, requesterID: $0) }
            var regions: [ReservedRegion] = []
            for region in description.reservedRegions where region.kind != .msi && region.first <= region.last {
                let permissions: AccessPermissions = [region.readable ? .read : [], region.writable ? .write : []]
                let kind: ReservedRegion.Kind = region.kind == .directRelaxable ? .directRelaxable : .direct
                regions.append(ReservedRegion(range: region.first...region.last, kind: kind,
                                              permissions: permissions.isEmpty ? .readWrite : permissions,
                                              source: region.source + (region.kind == .exclusion ? " (exclusion)" : "")))
                highest = max(highest, region.last)
                firmwareRanges.append(region.first...region.last)
            }
            let unit = description.unit.map { units[$0].name }
            devices.append(DeviceSpecification(address: address, name: "pci-\(address)", deviceClass: .other,
                                               requesterAlias: alias, directRegions: regions,
                                               behindIOMMU: unit != nil, unit: unit))
        }
        if !devices.contains(where: \.behindIOMMU),
           let catchAll = firmware.units.first(where: \.includesAllDevices) {
            let used = Set(devices.map(\.address.bus))
            let bus = (1...UInt8.max).first { !used.contains($0) } ?? 0xFF
            let address = PCIAddress(segment: catchAll.segment, requesterID: UInt16(bus) << 8)
            devices.append(DeviceSpecification(address: address, name: "synthetic-nic", deviceClass: .network,
                                               unit: units[catchAll.index].name))
        }
        guard highest < 1 << 46 else {
            throw .invalidSpecification("a firmware region ends at \(hex(highest)), beyond the emulated 64 TiB")
        }
        let gib: UInt64 = 1 << 30
        let memoryBytes = max(64 * gib, (highest / gib + 1) * gib)
        let ram: [ClosedRange<UInt64>] = [0x10_0000...0xBFFF_FFFF, 0x1_0000_0000...(memoryBytes - 1)]
        let usable = Self.subtract(firmwareRanges, from: ram).map { PhysicalAddress($0.lowerBound)...PhysicalAddress($0.upperBound) }
        return PlatformSpecification(name: name, memoryBytes: memoryBytes, usableMemory: usable, units: units,
                                     devices: devices, policy: policy)
    }

    /// `ranges` minus every hole, each hole widened to whole 4 KiB pages.
    static func subtract(_ holes: [ClosedRange<UInt64>], from ranges: [ClosedRange<UInt64>]) -> [ClosedRange<UInt64>] {
        var result = ranges
        for hole in holes {
            let first = hole.lowerBound & ~0xFFF
            let last = hole.upperBound | 0xFFF
            result = result.flatMap { range -> [ClosedRange<UInt64>] in
                guard range.overlaps(first...last) else { return [range] }
                var pieces: [ClosedRange<UInt64>] = []
                if range.lowerBound < first { pieces.append(range.lowerBound...(first - 1)) }
                if last < range.upperBound { pieces.append((last + 1)...range.upperBound) }
                return pieces
            }
        }
        return result
    }
}
