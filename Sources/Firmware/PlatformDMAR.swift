extension FirmwarePlatform {
    /// Builds the platform from a DMAR table.
    ///
    /// A device belongs to the first DRHD (in table order) with an endpoint
    /// scope naming it or a bridge scope above it; otherwise to the
    /// INCLUDE_PCI_ALL DRHD of its segment. Covered devices get every RMRR
    /// whose scopes name them (or a bridge above them) as a `direct` region
    /// (`directRelaxable` for USB and display class codes), read/write, plus
    /// the MSI window. Multi-hop paths are followed through the secondary
    /// bus numbers of the present bridges; where a bridge is missing the
    /// scope is listed in `unresolvedScopes`.
    public init(dmar: DMARTable, devices given: [FirmwarePCIDevice]? = nil) {
        let present = Self.normalise(given ?? Self.impliedDevices(dmar: dmar))
        var byAddress: [FirmwarePCIAddress: FirmwarePCIDevice] = [:]
        for device in present { byAddress[device.address] = device }
        var unresolved: [Int: FirmwareUnresolvedScope] = [:]

        func targets(_ scopes: [DMARDeviceScope], segment: UInt16, owner: String) -> [(DMARDeviceScope, FirmwarePCIAddress)] {
            var out: [(DMARDeviceScope, FirmwarePCIAddress)] = []
            for scope in scopes where scope.kind == .endpoint || scope.kind == .bridge {
                switch Self.resolve(scope, segment: segment, devices: byAddress) {
                case .success(let address): out.append((scope, address))
                case .failure(let reason):
                    unresolved[scope.offset] = FirmwareUnresolvedScope(
                        structure: owner, offset: scope.offset, path: scope.pathDescription, reason: reason.text)
                }
            }
            return out
        }
        func matches(_ scope: DMARDeviceScope, _ target: FirmwarePCIAddress, _ device: FirmwarePCIAddress) -> Bool {
            if target == device { return true }
            return scope.kind == .bridge && (byAddress[target]?.isUpstream(of: device) ?? false)
        }

        var units: [FirmwareIOMMUUnit] = []
        var unitTargets: [[(DMARDeviceScope, FirmwarePCIAddress)]] = []
        for drhd in dmar.hardwareUnits {
            units.append(FirmwareIOMMUUnit(
                index: units.count, kind: .intelVTd, segment: drhd.segment, registerBase: drhd.registerBase,
                includesAllDevices: drhd.includePCIAll, ivhdDeviceID: nil, tableOffset: drhd.offset))
            unitTargets.append(targets(drhd.scopes, segment: drhd.segment, owner: "DRHD"))
        }
        let rmrrTargets = dmar.reservedMemoryRegions.map { targets($0.scopes, segment: $0.segment, owner: "RMRR") }
        for atsr in dmar.rootPortATS { _ = targets(atsr.scopes, segment: atsr.segment, owner: "ATSR") }
        for satc in dmar.socIntegratedATC { _ = targets(satc.scopes, segment: satc.segment, owner: "SATC") }
        for sidp in dmar.socIntegratedDeviceProperties { _ = targets(sidp.scopes, segment: sidp.segment, owner: "SIDP") }

        var described: [FirmwareDeviceDescription] = []
        for device in present {
            let address = device.address
            var unit: Int?
            var coverage: FirmwareCoverage?
            for (index, drhd) in dmar.hardwareUnits.enumerated() where !drhd.includePCIAll && drhd.segment == address.segment {
                if let hit = unitTargets[index].first(where: { matches($0.0, $0.1, address) }) {
                    unit = index
                    coverage = hit.1 == address ? .explicit : .bridgeScope
                    break
                }
            }
            if unit == nil, let index = dmar.hardwareUnits.firstIndex(where: { $0.includePCIAll && $0.segment == address.segment }) {
                unit = index
                coverage = .includeAll
            }
            var regions: [FirmwareReservedRegion] = []
            if unit != nil {
                let relaxable = device.classCode.map { $0 >> 8 == 0x0C03 || $0 >> 16 == 0x03 } ?? false
                for (index, rmrr) in dmar.reservedMemoryRegions.enumerated() where rmrr.segment == address.segment {
                    if rmrrTargets[index].contains(where: { matches($0.0, $0.1, address) }) {
                        regions.append(FirmwareReservedRegion(
                            first: rmrr.baseAddress, last: rmrr.limitAddress,
                            kind: relaxable ? .directRelaxable : .direct, readable: true, writable: true,
                            source: "RMRR@0x" + hex(rmrr.offset)))
                    }
                }
                regions.append(Self.msiRegion)
            }
            described.append(FirmwareDeviceDescription(
                address: address, unit: unit, coverage: coverage, aliasRequesterID: nil,
                reservedRegions: Self.sortRegions(regions)))
        }
        self.init(units: units, devices: described,
                  unresolvedScopes: unresolved.values.sorted { $0.offset < $1.offset }, ivhdTypeUsed: nil)
    }

    /// The PCI devices a DMAR table names: endpoint and bridge scopes with a
    /// one-hop path, and the first-hop bridge of each multi-hop path.
    public static func impliedDevices(dmar: DMARTable) -> [FirmwarePCIDevice] {
        var lists: [(UInt16, [DMARDeviceScope])] = []
        lists += dmar.hardwareUnits.map { ($0.segment, $0.scopes) }
        lists += dmar.reservedMemoryRegions.map { ($0.segment, $0.scopes) }
        lists += dmar.rootPortATS.map { ($0.segment, $0.scopes) }
        lists += dmar.socIntegratedATC.map { ($0.segment, $0.scopes) }
        lists += dmar.socIntegratedDeviceProperties.map { ($0.segment, $0.scopes) }
        var out: [FirmwarePCIDevice] = []
        for (segment, scopes) in lists {
            for scope in scopes where scope.kind == .endpoint || scope.kind == .bridge {
                guard let hop = scope.path.first else { continue }
                out.append(FirmwarePCIDevice(FirmwarePCIAddress(
                    segment: segment, bus: scope.startBus, device: hop.device, function: hop.function)))
            }
        }
        return normalise(out)
    }

    struct Unresolved: Error { let text: String }

    /// Follows a scope's path from its start bus through present bridges.
    static func resolve(_ scope: DMARDeviceScope, segment: UInt16,
                        devices: [FirmwarePCIAddress: FirmwarePCIDevice]) -> Result<FirmwarePCIAddress, Unresolved> {
        guard var hop = scope.path.first else { return .failure(Unresolved(text: "empty PCI path")) }
        var address = FirmwarePCIAddress(segment: segment, bus: scope.startBus, device: hop.device, function: hop.function)
        var index = 1
        while index < scope.path.count {
            guard let bridge = devices[address] else {
                return .failure(Unresolved(text: "bridge \(address) is not among the present devices"))
            }
            guard let secondary = bridge.secondaryBus else {
                return .failure(Unresolved(text: "bridge \(address) has no secondary bus number"))
            }
            hop = scope.path[index]
            address = FirmwarePCIAddress(segment: segment, bus: secondary, device: hop.device, function: hop.function)
            index += 1
        }
        return .success(address)
    }

    static func sortRegions(_ regions: [FirmwareReservedRegion]) -> [FirmwareReservedRegion] {
        regions.sorted { ($0.first, $0.last, $0.source) < ($1.first, $1.last, $1.source) }
    }
}
