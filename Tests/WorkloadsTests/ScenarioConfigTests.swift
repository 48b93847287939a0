import Testing
@testable import Workloads

/// YAML settings: every key read, every bad key or value an error that names it.
@Suite struct ScenarioConfigTests {
    @Test func aFullFileIsRead() throws {
        let yaml = """
        scenario: nvme
        driver: [vtd, smmu]
        policy: strict,lazy
        devices: 2
        queue-depth: 16
        min-size: 8K
        max-size: 1MiB
        operations: 40
        duration: 1.5s
        seed: 42
        """
        let settings = try ScenarioSettings.load(yaml: yaml, file: "run.yaml")
        #expect(settings.scenario == "nvme")
        #expect(settings.drivers == ["vtd", "smmu"])
        #expect(settings.policies == ["strict", "lazy"])
        let parameters = try settings.parameters(for: .nvme)
        #expect(parameters == ScenarioParameters(devices: 2, queueDepth: 16, minSize: 8192, maxSize: 1 << 20,
                                                 operations: 40, duration: 1.5, seed: 42))
    }

    @Test func theCommandLineOverridesTheFileWhichOverridesTheDefaults() throws {
        let file = try ScenarioSettings.load(yaml: "devices: 3\nseed: 7\n", file: "f.yaml")
        var commandLine = ScenarioSettings()
        commandLine.seed = 9
        let parameters = try commandLine.overriding(file).parameters(for: .network)
        #expect(parameters.devices == 3)
        #expect(parameters.seed == 9)
        #expect(parameters.queueDepth == ScenarioKind.network.defaults.queueDepth)
    }

    @Test func anEmptyFileChangesNothing() throws {
        #expect(try ScenarioSettings.load(yaml: "", file: "e.yaml") == ScenarioSettings())
    }

    @Test(arguments: [
        ("queue_depth: 4", ScenarioError.unknownKey("queue_depth", file: "c.yaml")),
        ("devices: 2\ncolour: red", .unknownKey("colour", file: "c.yaml")),
        ("devices: two", .invalidValue(key: "devices", value: "two", expected: "an integer")),
        ("devices: [1, 2]", .invalidValue(key: "devices", value: "a list", expected: "a single value")),
        ("min-size: 4 parsecs", .invalidValue(key: "min-size", value: "4 parsecs", expected: "a size such as 4096, 4K, 64KiB or 1M")),
        ("duration: -3", .invalidValue(key: "duration", value: "-3", expected: "a positive number of seconds, e.g. 2.5")),
        ("seed: -1", .invalidValue(key: "seed", value: "-1", expected: "an unsigned 64-bit integer")),
        ("driver: []", .invalidValue(key: "driver", value: "", expected: "at least one name")),
        ("seed: 1\nseed: 2", .invalidValue(key: "seed", value: "(given twice)", expected: "one value")),
        ("- devices\n- 2", .unreadableConfig(file: "c.yaml", reason: "expected a mapping of settings (key: value) at the top level")),
    ])
    func aBadFileIsAnErrorNamingTheKey(yaml: String, expected: ScenarioError) {
        #expect(throws: expected) { try ScenarioSettings.load(yaml: yaml, file: "c.yaml") }
    }

    @Test func malformedYAMLIsAnErrorNamingTheFile() {
        do {
            _ = try ScenarioSettings.load(yaml: "devices: [1, 2\n", file: "broken.yaml")
            Issue.record("malformed YAML was accepted")
        } catch {
            guard case let .unreadableConfig(file, reason) = error else { Issue.record("\(error)"); return }
            #expect(file == "broken.yaml")
            #expect(reason.hasPrefix("not valid YAML"))
        }
    }

    @Test(arguments: [
        ("devices: 0", "devices", "0"), ("devices: 17", "devices", "17"), ("queue-depth: 0", "queue-depth", "0"),
        ("operations: 0", "operations", "0"), ("max-size: 0", "max-size", "0"),
        ("min-size: 64K\nmax-size: 4K", "max-size", "4096"),
    ])
    func valuesOutOfRangeAreErrorsNamingTheKey(yaml: String, key: String, value: String) throws {
        let settings = try ScenarioSettings.load(yaml: yaml, file: "r.yaml")
        do {
            _ = try settings.parameters(for: .nvme)
            Issue.record("\(yaml) was accepted")
        } catch {
            guard case let .invalidValue(named, given, _) = error else { Issue.record("\(error)"); return }
            #expect(named == key)
            #expect(given == value)
            #expect(error.description.contains("'\(key)'"))
        }
    }

    @Test func unknownScenariosFamiliesAndPoliciesAreNamed() {
        #expect(throws: ScenarioError.unknownScenario("disk")) { try ScenarioKind(named: "disk") }
        #expect(throws: ScenarioError.invalidValue(key: "policy", value: "eager", expected: "strict, lazy or passthrough")) {
            try ScenarioPolicy(named: "eager")
        }
        #expect(throws: ScenarioError.self) { try IOMMUFamily.emulated(named: "vt-x") }
        #expect(ScenarioError.unknownKey("colour", file: "c.yaml").description.contains("'colour'"))
    }

    @Test func sizesReadAsPeopleWriteThem() throws {
        #expect(try ByteSize.parse("4096", key: "k") == 4096)
        #expect(try ByteSize.parse("4K", key: "k") == 4096)
        #expect(try ByteSize.parse("64KiB", key: "k") == 65536)
        #expect(try ByteSize.parse("1 MiB", key: "k") == 1 << 20)
        #expect(try ByteSize.parse("2g", key: "k") == 2 << 30)
        #expect(throws: ScenarioError.self) { try ByteSize.parse("K", key: "k") }
        #expect(throws: ScenarioError.self) { try ByteSize.parse("99999999999999999999G", key: "k") }
    }
}
