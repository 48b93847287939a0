import Emulation
import IOMMUCore
import IOMMUDrivers

/// Builds AMD GARTs (one per northbridge) and the GART driver. The builder
/// plays the BIOS: it writes the aperture size and base into F3x90/F3x94,
/// with the GART still off, and the driver reads them back as Linux's
/// aperture_64.c does.
enum AMDGARTFamily: FamilyBuilder {
    /// 512 MiB carved from the default platform's MMIO hole (RAM ends at
    /// 0xBFFFFFFF): the aperture is bus address space and hides no RAM.
    static let defaultApertureBase: UInt64 = 0xC000_0000
    static let defaultApertureSize: UInt64 = 512 << 20

    static func build(_ context: FamilyContext) throws(PlatformError) -> BuiltFamily {
        var scopes: [GARTUnitScope] = []
        var units: [String: any ReportingUnit] = [:]
        for specification in context.units {
            let base = specification.apertureBase ?? defaultApertureBase
            let size = specification.apertureSize ?? defaultApertureSize
            guard let encoding = GARTApertureSize.encoding(of: size) else {
                throw .invalidSpecification("\(specification.name): a GART aperture of \(hex(size)) bytes cannot be "
                                            + "encoded (a power of two from 32 MiB to 2 GiB)")
            }
            guard base != 0, base & (size - 1) == 0, base <= (1 << 32) - size else {
                throw .invalidSpecification("\(specification.name): the GART aperture at \(hex(base)) must be non-zero, "
                                            + "aligned to its size \(hex(size)) and end below 4 GiB")
            }
            let unit = GARTUnit(name: specification.name, memory: context.memory)
            unit.writeRegister(GARTRegister.apertureControl, UInt64(encoding << GARTControl.sizeShift))
            unit.writeRegister(GARTRegister.apertureBase, base >> 25)
            let covered = Set((context.devices[specification.name] ?? []).map(\.address))
            scopes.append(GARTUnitScope(unit: unit, includesAll: false, devices: covered, segment: specification.segment))
            units[specification.name] = unit
        }
        do {
            let driver = try GARTDriver(units: scopes, pages: context.pages, directRegions: context.directRegions)
            return BuiltFamily(driver: driver, units: units)
        } catch { throw .iommu(error) }
    }
}

extension GARTUnit: ReportingUnit {
    public var unitReport: UnitReport {
        let stats = statistics
        return UnitReport(name: name, family: IOMMUFamily.amdGART.rawValue,
                          iotlbCapacity: configuration.tlbSets * configuration.tlbWays,
                          iotlbHits: stats.tlbHits, iotlbMisses: stats.tlbMisses, pageWalks: stats.tableReads,
                          pageInvalidations: 0, domainInvalidations: 0, globalInvalidations: stats.cacheFlushes,
                          faultsRecorded: stats.errorsRecorded, faultsOverflowed: stats.errorsDropped)
    }
}
