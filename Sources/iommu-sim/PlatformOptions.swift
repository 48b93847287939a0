import ArgumentParser
import Firmware
import Foundation
import IOMMUCore
import Workloads

/// Options that choose and shape the emulated platform, shared by the verbs.
struct PlatformOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Invalidation policy for translated default domains: strict, lazy or passthrough (default strict).",
        discussion: "With run SCENARIO --compare: a comma-separated list, each run in turn."))
    var policy: String?

    @Option(name: .long, help: ArgumentHelp(
        "IOMMU family of the platform: \(IOMMUFamily.allCases.map(\.rawValue).joined(separator: ", ")) (default vtd).",
        discussion: "With run SCENARIO --compare: a comma-separated list, each run in turn."))
    var driver: String?

    /// `--driver` as a list; nil when not given.
    var driverNames: [String]? { driver.map(Self.list) }
    /// `--policy` as a list; nil when not given.
    var policyNames: [String]? { policy.map(Self.list) }

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    @Flag(name: .long, help: "Use the widest address space the unit supports (VT-d 5-level tables).")
    var widest = false

    @Option(name: .long, help: "Arm SMMU translation granule: 4K, 16K or 64K.")
    var smmuGranule: String = "4K"

    @Option(name: .long, help: "Build the platform an ACPI DMAR or IVRS table describes instead of the default one.")
    var acpi: String?

    @Option(name: .long, help: "The built-in platform: default (one unit of --driver's family) or mixed (one unit of every family).")
    var platform: String = "default"

    func specification() throws -> PlatformSpecification {
        let policy = self.policy ?? "strict", driver = self.driver ?? "vtd"
        for (name, value) in [("--policy", policy), ("--driver", driver)] where value.contains(",") {
            throw ValidationError("\(name) takes one value here; a list ('\(value)') needs run SCENARIO --compare")
        }
        let chosen: DefaultDomainPolicy
        switch policy {
        case "strict": chosen = DefaultDomainPolicy(invalidation: .strict)
        case "lazy": chosen = DefaultDomainPolicy(invalidation: .lazy)
        case "passthrough", "pass-through": chosen = DefaultDomainPolicy(passThrough: true)
        default: throw ValidationError("unknown --policy '\(policy)': expected strict, lazy or passthrough")
        }
        if let acpi { return try firmwareSpecification(acpi, policy: chosen) }
        switch platform {
        case "default": break
        case "mixed":
            guard self.driver == nil else { throw ValidationError("--platform mixed has one unit of every family: drop --driver") }
            return try PlatformSpecification.mixedPlatform(policy: chosen)
        default: throw ValidationError("unknown --platform '\(platform)': expected default or mixed")
        }
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
        var specification = try PlatformSpecification.fromFirmware(table: table,
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
