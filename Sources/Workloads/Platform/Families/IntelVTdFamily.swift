import Emulation
import IOMMUCore
import IOMMUDrivers

/// Builds VT-d units (DRHDs) and the VT-d driver.
enum IntelVTdFamily: FamilyBuilder {
    static func build(_ context: FamilyContext) throws(PlatformError) -> BuiltFamily {
        var scopes: [VTdUnitScope] = []
        var units: [String: any ReportingUnit] = [:]
        var prefersFiveLevel = false
        for specification in context.units {
            let unit = VTdUnit(name: specification.name, memory: context.memory, configuration: specification.vtd)
            let covered = Set((context.devices[specification.name] ?? []).map(\.address))
            scopes.append(VTdUnitScope(unit: unit, includesAll: false, devices: covered, segment: specification.segment))
            units[specification.name] = unit
            prefersFiveLevel = prefersFiveLevel || specification.prefersWidestAddressSpace
        }
        do {
            let driver = try VTdDriver(units: scopes, pages: context.pages, directRegions: context.directRegions,
                                       preferredWidth: prefersFiveLevel ? .bits57 : .bits48)
            return BuiltFamily(driver: driver, units: units)
        } catch { throw .iommu(error) }
    }
}

extension VTdUnit: ReportingUnit {
    public var unitReport: UnitReport {
        let stats = statistics
        return UnitReport(name: name, family: IOMMUFamily.intelVTd.rawValue,
                          iotlbCapacity: configuration.iotlbSets * configuration.iotlbWays,
                          iotlbHits: stats.iotlbHits, iotlbMisses: stats.iotlbMisses, pageWalks: stats.pageWalks,
                          pageInvalidations: stats.pageInvalidations, domainInvalidations: stats.domainInvalidations,
                          globalInvalidations: stats.globalInvalidations, faultsRecorded: stats.faultsRecorded,
                          faultsOverflowed: stats.faultsOverflowed)
    }
}
