import ArgumentParser
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

    func specification() throws -> PlatformSpecification {
        let chosen: DefaultDomainPolicy
        switch policy {
        case "strict": chosen = DefaultDomainPolicy(invalidation: .strict)
        case "lazy": chosen = DefaultDomainPolicy(invalidation: .lazy)
        case "passthrough", "pass-through": chosen = DefaultDomainPolicy(passThrough: true)
        default: throw ValidationError("unknown --policy '\(policy)': expected strict, lazy or passthrough")
        }
        guard let family = IOMMUFamily(rawValue: driver) else {
            throw ValidationError("unknown --driver '\(driver)': expected \(IOMMUFamily.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var specification = try PlatformSpecification.defaultPlatform(family: family, policy: chosen)
        for index in specification.units.indices { specification.units[index].prefersWidestAddressSpace = widest }
        return specification
    }
}

/// Prints a Codable value as one JSON object with sorted keys.
func printJSON(_ value: some Encodable) throws {
    print(try JSONText.encode(value))
}
