import Emulation
import IOMMUCore
import IOMMUDrivers

/// Builds AMD-Vi units (IVHDs) and the AMD-Vi driver. Firmware direct
/// regions become the driver's IVMD unity ranges; each unit's exclusion
/// ranges apply to every device it covers.
enum AMDViFamily: FamilyBuilder {
    static func build(_ context: FamilyContext) throws(PlatformError) -> BuiltFamily {
        var scopes: [AMDViUnitScope] = []
        var units: [String: any ReportingUnit] = [:]
        var options = AMDViDriverOptions(leafArray: true, widestAddressSpace: false)
        for specification in context.units {
            let unit = AMDViUnit(name: specification.name, memory: context.memory, configuration: specification.amdVi)
            let covered = Set((context.devices[specification.name] ?? []).map(\.address))
            let exclusions = specification.amdViExclusionRanges.map { AMDViExclusionRange(range: $0, devices: nil) }
            scopes.append(AMDViUnitScope(unit: unit, includesAll: false, devices: covered, segment: specification.segment,
                                         exclusionRanges: exclusions))
            units[specification.name] = unit
            options.widestAddressSpace = options.widestAddressSpace || specification.prefersWidestAddressSpace
            options.leafArray = options.leafArray && specification.amdViLeafArray
        }
        do {
            let driver = try AMDViDriver(units: scopes, pages: context.pages, unityRanges: context.directRegions,
                                        options: options)
            return BuiltFamily(driver: driver, units: units)
        } catch { throw .iommu(error) }
    }
}

extension AMDViUnit: ReportingUnit {
    public var unitReport: UnitReport {
        let stats = statistics
        return UnitReport(name: name, family: IOMMUFamily.amdVi.rawValue,
                          iotlbCapacity: configuration.iotlbSets * configuration.iotlbWays,
                          iotlbHits: stats.iotlbHits, iotlbMisses: stats.iotlbMisses, pageWalks: stats.pageWalks,
                          pageInvalidations: stats.pageInvalidations, domainInvalidations: stats.domainInvalidations,
                          globalInvalidations: stats.globalInvalidations, faultsRecorded: stats.eventsLogged,
                          faultsOverflowed: stats.eventsOverflowed)
    }
}
