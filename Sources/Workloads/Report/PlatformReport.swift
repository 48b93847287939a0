import DMA
import Emulation
import IOMMUCore

/// A closed address range in JSON: `{"first": n, "last": n}`.
public struct AddressRange: Codable, Sendable, Hashable {
    public var first: UInt64
    public var last: UInt64
}

/// One reserved region in reports.
public struct RegionReport: Codable, Sendable, Hashable {
    public var first: UInt64
    public var last: UInt64
    public var kind: String
    public var permissions: String
    public var source: String

    init(_ region: ReservedRegion) {
        first = region.range.lowerBound
        last = region.range.upperBound
        kind = region.kind.rawValue
        permissions = region.permissions.description
        source = region.source
    }
}

/// What the IOMMU-API says about one device: the documented `devices[]` entry
/// of `iommu-sim topology --json` (workload counters are added by `run`).
public struct DeviceReport: Codable, Sendable, Hashable {
    public var address: String
    public var name: String
    public var deviceClass: String
    public var addressBits: Int
    public var unit: String?
    public var group: Int?
    public var domainKind: String
    public var aperture: AddressRange?
    public var outsideAperture: String?
    public var pageSizes: [UInt64]
    public var reservedRegions: [RegionReport]
    public var workload: DeviceWorkloadReport?
}

/// Counters from running a workload on one device.
public struct DeviceWorkloadReport: Codable, Sendable, Hashable {
    public var mappings: UInt64
    public var unmappings: UInt64
    public var bytesMapped: UInt64
    public var bytesMoved: UInt64
    public var iotlbHits: UInt64
    public var iotlbMisses: UInt64
    public var faults: UInt64
    public var checksPassed: Int
    public var checksFailed: Int
    public var notes: [String]
}

/// One IOMMU hardware unit in reports.
public struct UnitReport: Codable, Sendable, Hashable {
    public var name: String
    public var family: String
    public var iotlbCapacity: Int
    public var iotlbHits: UInt64
    public var iotlbMisses: UInt64
    public var pageWalks: UInt64
    public var pageInvalidations: UInt64
    public var domainInvalidations: UInt64
    public var globalInvalidations: UInt64
    public var faultsRecorded: UInt64
    public var faultsOverflowed: UInt64
}

/// The whole platform: `iommu-sim topology --json` prints exactly this.
public struct PlatformReport: Codable, Sendable, Hashable {
    public var platform: String
    public var memoryBytes: UInt64
    public var policy: String
    public var units: [UnitReport]
    public var devices: [DeviceReport]
}

extension EmulatedPlatform {
    /// Describes the platform as the IOMMU-API sees it.
    public func report() -> PlatformReport {
        let units = self.units.map(\.unitReport)
        let policy = subsystem.policy
        let policyName = policy.passThrough ? "pass-through" : policy.invalidation.rawValue
        return PlatformReport(platform: specification.name, memoryBytes: memory.size, policy: policyName, units: units,
                              devices: devices.map(deviceReport))
    }

    func deviceReport(_ device: PCIDevice) -> DeviceReport {
        let managed = subsystem.device(at: device.address)
        let domain = managed?.group.defaultDomain
        return DeviceReport(
            address: device.address.description, name: device.name, deviceClass: device.deviceClass.rawValue,
            addressBits: device.addressBits, unit: managed?.unitName, group: managed?.group.identifier,
            domainKind: domain?.kind.rawValue ?? "none (no IOMMU)",
            aperture: domain.flatMap { $0.kind.translates ? AddressRange(first: $0.geometry.aperture.lowerBound,
                                                                        last: $0.geometry.aperture.upperBound) : nil },
            outsideAperture: domain.flatMap { $0.kind.translates ? $0.geometry.outside.rawValue : nil },
            pageSizes: domain?.pageSizes.sizes ?? [],
            reservedRegions: (managed?.reservedRegions ?? []).map(RegionReport.init),
            workload: nil)
    }
}
