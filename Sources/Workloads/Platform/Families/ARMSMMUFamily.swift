import Emulation
import IOMMUCore
import IOMMUDrivers

/// Builds Arm SMMUv3 units and the SMMUv3 driver.
enum ARMSMMUFamily: FamilyBuilder {
    static func build(_ context: FamilyContext) throws(PlatformError) -> BuiltFamily {
        var scopes: [ARMSMMUUnitScope] = []
        var units: [String: any ReportingUnit] = [:]
        for specification in context.units {
            guard let granule = ARMTranslationGranule(rawValue: specification.smmuGranule) else {
                throw .invalidSpecification("unit \(specification.name): smmuGranule \(specification.smmuGranule) "
                    + "is not 4096, 16384 or 65536")
            }
            let unit = ARMSMMUUnit(name: specification.name, memory: context.memory)
            let covered = Set((context.devices[specification.name] ?? []).map(\.address))
            scopes.append(ARMSMMUUnitScope(unit: unit, includesAll: false, devices: covered, segment: specification.segment,
                                           granule: granule))
            units[specification.name] = unit
        }
        do {
            let driver = try ARMSMMUDriver(units: scopes, pages: context.pages, directRegions: context.directRegions)
            return BuiltFamily(driver: driver, units: units)
        } catch { throw .iommu(error) }
    }
}

extension ARMSMMUUnit: ReportingUnit {
    public var unitReport: UnitReport {
        let stats = statistics
        return UnitReport(name: name, family: IOMMUFamily.armSMMU.rawValue,
                          iotlbCapacity: configuration.tlbSets * configuration.tlbWays,
                          iotlbHits: stats.tlbHits, iotlbMisses: stats.tlbMisses, pageWalks: stats.pageWalks,
                          pageInvalidations: stats.addressInvalidations, domainInvalidations: stats.asidInvalidations,
                          globalInvalidations: stats.globalInvalidations, faultsRecorded: stats.eventsRecorded,
                          faultsOverflowed: stats.eventsLost)
    }
}
