import ArgumentParser
import Firmware
import Foundation
import IOMMUCore
import Workloads

/// Options that choose and shape the emulated platform, shared by the verbs.
struct PlatformOptions: ParsableArguments {
    @Option(name: .long, help: "Invalidation policy for translated default domains: strict, lazy or passthrough.")
    var policy: String = "strict"

    @Option(name: .long, help: "IOMMU family of the default platform: \(IOMMUFamily.allCases.map(\.rawValue).joined(separator: ", ")).")
    var driver: String = "vtd"

    @Flag(name: .long, help: "Use the widest address space the unit supports (VT-d 5-level tables).")
    var widest = false

    @Option(name: .long, help: "Arm SMMU translation granule: 4K, 16K or 64K.")
    var smmuGranule: String = "4K"

    @Option(name: .long, help: "Build the platform an ACPI DMAR or IVRS table describes instead of the default one.")
    var acpi: String?

    func specification() throws -> PlatformSpecification {
        let chosen: DefaultDomainPolicy
        switch policy {
        case "strict": chosen = DefaultDomainPolicy(invalidation: .strict)
        case "lazy": chosen = DefaultDomainPolicy(invalidation: .lazy)
        case "passthrough", "pass-through": chosen = DefaultDomainPolicy(passThrough: true)
        default: throw ValidationError("unknown --policy '\(policy)': expected strict, lazy or passthrough")
        }
        if let acpi { return try firmwareSpecification(acpi, policy: chosen) }
        guard let family = IOMMUFamily(rawValue: driver) else {
            throw ValidationError("unknown --driver '\(driver)': expected \(IOMMUFamily.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let granules: [String: UInt64] = ["4K": 4096, "16K": 16384, "64K": 65536]
        guard let granule = granules[smmuGranule.uppercased()] else {
            throw ValidationError("unknown --smmu-granule '\(smmuGranule)': expected 4K, 16K or 64K")
        }
        var specification = try PlatformSpecification.defaultPlatform(family: family, policy: chosen)
        for index in specification.units.indices {
            specification.units[index].prefersWidestAddressSpace = widest
            specification.units[index].smmuGranule = granule
        }
        return specification
    }
}

extension PlatformOptions {
    func firmwareSpecification(_ path: String, policy: DefaultDomainPolicy) throws -> PlatformSpecification {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read ACPI table '\(path)'")
        }
        let table: FirmwareTable
        do { table = try FirmwareTable.parse([UInt8](data)) } catch {
            throw ValidationError("\(path): \(error)")
        }
        var specification = try PlatformSpecification.fromFirmware(FirmwarePlatform(table: table),
                                                                   name: URL(fileURLWithPath: path).lastPathComponent,
                                                                   policy: policy)
        for index in specification.units.indices { specification.units[index].prefersWidestAddressSpace = widest }
        return specification
    }
}

/// Prints a Codable value as one JSON object with sorted keys.
func printJSON(_ value: some Encodable) throws {
    print(try JSONText.encode(value))
}
