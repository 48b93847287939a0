extension PlatformReport {
    /// The platform as a table: what each device's default domain can do.
    public func renderText() -> String {
        var out = "Platform \(platform): \(sizeName(memoryBytes)) of physical address space, policy \(policy)\n"
        for unit in units {
            out += "IOMMU \(unit.name) (\(unit.family)): IOTLB \(unit.iotlbCapacity) entries\n"
        }
        var table = TextTable(["device", "name", "unit", "group", "domain", "aperture", "outside", "pages"])
        for device in devices {
            table.add([device.address, device.name, device.unit ?? "-", device.group.map(String.init) ?? "-",
                       device.domainKind,
                       device.aperture.map { "\(hexString($0.first))-\(hexString($0.last))" } ?? "-",
                       device.outsideAperture ?? "-", device.pageSizes.map(sizeName).joined(separator: ",")])
        }
        out += "\n" + table.render() + "\n"
        var regions = TextTable(["device", "reserved region", "kind", "perm", "source"])
        for device in devices {
            for region in device.reservedRegions {
                regions.add([device.address, "\(hexString(region.first))-\(hexString(region.last))", region.kind,
                             region.permissions, region.source])
            }
        }
        if !regions.rows.isEmpty { out += "\n" + regions.render() + "\n" }
        return out
    }
}

extension DefaultWorkload.Report {
    /// The workload's outcome per device, then per unit, then the faults.
    public func renderText() -> String {
        var out = platform.renderText()
        var table = TextTable(["device", "name", "domain", "maps", "unmaps", "bytes moved", "IOTLB hit", "IOTLB miss",
                               "faults", "checks"])
        for device in platform.devices {
            guard let work = device.workload else { continue }
            table.add([device.address, device.name, device.domainKind, "\(work.mappings)", "\(work.unmappings)",
                       "\(work.bytesMoved)", "\(work.iotlbHits)", "\(work.iotlbMisses)", "\(work.faults)",
                       work.checksFailed == 0 ? "\(work.checksPassed) ok" : "\(work.checksFailed) FAILED"])
        }
        out += "\nWorkload: \(iterations) transfers per device, seed \(seed)\n" + table.render() + "\n"
        var units = TextTable(["unit", "IOTLB hits", "misses", "walks", "page inval", "domain inval", "faults logged",
                               "overflowed"])
        for unit in platform.units {
            units.add([unit.name, "\(unit.iotlbHits)", "\(unit.iotlbMisses)", "\(unit.pageWalks)",
                       "\(unit.pageInvalidations)", "\(unit.domainInvalidations)", "\(unit.faultsRecorded)",
                       "\(unit.faultsOverflowed)"])
        }
        out += "\n" + units.render() + "\n"
        for device in platform.devices {
            for note in device.workload?.notes ?? [] { out += "note \(device.name): \(note)\n" }
        }
        if !faults.isEmpty {
            out += "\nFaults delivered by the IOMMU-API:\n"
            for fault in faults.suffix(10) { out += "  \(fault)\n" }
        }
        out += "\n\(checksPassed) checks passed, \(checksFailed) failed\n"
        return out
    }
}
