import Emulation
import IOMMUCore
import IOMMUDrivers

/// Builds IBM Calgary chips and the Calgary driver. Each distinct bus of the
/// devices a chip covers is wired to one of its four PHBs, so each bus gets
/// its own TCE table and group.
enum IBMCalgaryFamily: FamilyBuilder {
    /// 2 GiB from bus address 0: below 4 GiB for 32-bit devices, clear of
    /// the MSI window, and large enough for the default platform's RMRR.
    /// (Linux's default is the largest table, a 4 GiB window.)
    static let defaultWindowBytes: UInt64 = 2 << 30

    static func build(_ context: FamilyContext) throws(PlatformError) -> BuiltFamily {
        var scopes: [CalgaryUnitScope] = []
        var units: [String: any ReportingUnit] = [:]
        for specification in context.units {
            if let base = specification.apertureBase, base != 0 {
                throw .invalidSpecification("\(specification.name): a Calgary DMA window always starts at bus address 0, "
                                            + "not \(hex(base))")
            }
            let window = specification.apertureSize ?? defaultWindowBytes
            guard CalgaryTableAddress.sizeCode(windowBytes: window) != nil else {
                throw .invalidSpecification("\(specification.name): a Calgary DMA window of \(hex(window)) bytes cannot "
                                            + "be encoded (a power of two from 32 MiB to 4 GiB)")
            }
            let covered = context.devices[specification.name] ?? []
            let buses = Set(covered.map { ($0.requesterAlias ?? $0.address).bus }).sorted()
            guard buses.count <= CalgaryRegister.phbCount else {
                throw .invalidSpecification("\(specification.name): a Calgary chip has \(CalgaryRegister.phbCount) PHBs "
                                            + "but its devices sit on \(buses.count) buses")
            }
            var wiring: [ClosedRange<UInt8>?] = buses.map { $0...$0 }
            if wiring.isEmpty { wiring = [0...0] }
            wiring += Array(repeating: nil, count: CalgaryRegister.phbCount - wiring.count)
            let unit = CalgaryUnit(name: specification.name, memory: context.memory,
                                   configuration: CalgaryUnitConfiguration(phbBuses: wiring))
            scopes.append(CalgaryUnitScope(unit: unit, includesAll: false, devices: Set(covered.map(\.address)),
                                           segment: specification.segment, windowBytes: window))
            units[specification.name] = unit
        }
        do {
            let driver = try CalgaryDriver(units: scopes, pages: context.pages, directRegions: context.directRegions)
            return BuiltFamily(driver: driver, units: units)
        } catch { throw .iommu(error) }
    }
}

extension CalgaryUnit: ReportingUnit {
    public var unitReport: UnitReport {
        let stats = statistics
        return UnitReport(name: name, family: IOMMUFamily.ibmCalgary.rawValue,
                          iotlbCapacity: configuration.tceCacheSets * configuration.tceCacheWays,
                          iotlbHits: stats.cacheHits, iotlbMisses: stats.cacheMisses, pageWalks: stats.tableReads,
                          pageInvalidations: 0, domainInvalidations: stats.cacheInvalidations, globalInvalidations: 0,
                          faultsRecorded: stats.errorsRecorded, faultsOverflowed: stats.errorsDropped)
    }
}
