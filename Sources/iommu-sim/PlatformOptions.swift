import ArgumentParser
import IOMMUCore
import Workloads

/// Options that choose and shape the emulated platform, shared by the verbs.
struct PlatformOptions: ParsableArguments {
    @Option(name: .long, help: "Invalidation policy for translated default domains: strict, lazy or passthrough.")
    var policy: String = "strict"

    @Flag(name: .long, help: "Use 5-level (57-bit) VT-d page tables.")
    var fiveLevel = false

    func specification() throws -> PlatformSpecification {
        let chosen: DefaultDomainPolicy
        switch policy {
        case "strict": chosen = DefaultDomainPolicy(invalidation: .strict)
        case "lazy": chosen = DefaultDomainPolicy(invalidation: .lazy)
        case "passthrough", "pass-through": chosen = DefaultDomainPolicy(passThrough: true)
        default: throw ValidationError("unknown --policy '\(policy)': expected strict, lazy or passthrough")
        }
        var specification = try PlatformSpecification.defaultPlatform(policy: chosen)
        specification.prefersFiveLevelTables = fiveLevel
        return specification
    }
}

/// Prints a Codable value as one JSON object with sorted keys.
func printJSON(_ value: some Encodable) throws {
    print(try JSONText.encode(value))
}
