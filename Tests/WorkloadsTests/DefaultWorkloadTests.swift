import Foundation
import IOMMUCore
import Testing
import Workloads

@Suite struct DefaultWorkloadTests {
    @Test(arguments: ["strict", "lazy", "passthrough"])
    func everyCheckPassesUnderEachPolicy(policy: String) throws {
        let chosen: DefaultDomainPolicy = switch policy {
        case "lazy": DefaultDomainPolicy(invalidation: .lazy)
        case "passthrough": DefaultDomainPolicy(passThrough: true)
        default: DefaultDomainPolicy()
        }
        let platform = try EmulatedPlatform(.defaultPlatform(policy: chosen))
        let report = DefaultWorkload(iterations: 16, seed: 7).run(on: platform)
        #expect(report.checksFailed == 0, "\(report.platform.devices.compactMap(\.workload).flatMap(\.notes))")
        #expect(report.checksPassed > 100)
        for device in report.platform.devices {
            let work = try #require(device.workload)
            #expect(work.bytesMoved > 0)
            #expect(work.mappings == work.unmappings)
        }
    }

    @Test func theDefaultPlatformHasTheDevicesTheREADMEDescribes() throws {
        let report = try EmulatedPlatform(.defaultPlatform()).report()
        let kinds = Dictionary(uniqueKeysWithValues: report.devices.map { ($0.name, $0.domainKind) })
        #expect(kinds == ["usb-xhci": "dma", "audio": "identity", "nic0": "dma", "nvme0": "dma", "legacy-dma": "dma"])
        let usb = try #require(report.devices.first { $0.name == "usb-xhci" })
        #expect(usb.reservedRegions.map(\.kind) == ["direct", "msi"])
        #expect(report.devices.first { $0.name == "legacy-dma" }?.addressBits == 32)
    }

    @Test func jsonKeysAreTheDocumentedOnes() throws {
        let platform = try EmulatedPlatform(.defaultPlatform())
        let report = DefaultWorkload(iterations: 2).run(on: platform)
        let object = try #require(JSONSerialization.jsonObject(with: Data(try JSONText.encode(report).utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["platform", "iterations", "seed", "checksPassed", "checksFailed", "faults"])
        let platformObject = try #require(object["platform"] as? [String: Any])
        #expect(Set(platformObject.keys) == ["platform", "memoryBytes", "policy", "units", "devices"])
        let device = try #require((platformObject["devices"] as? [[String: Any]])?.first)
        #expect(Set(device.keys).isSuperset(of: ["address", "name", "deviceClass", "addressBits", "unit", "group", "domainKind",
                                                 "aperture", "outsideAperture", "pageSizes", "reservedRegions", "workload"]))
        let workload = try #require(device["workload"] as? [String: Any])
        #expect(Set(workload.keys) == ["mappings", "unmappings", "bytesMapped", "bytesMoved", "iotlbHits", "iotlbMisses", "faults",
                                       "checksPassed", "checksFailed", "notes"])
    }

    @Test func theSameSeedGivesTheSameRun() throws {
        let first = DefaultWorkload(iterations: 8, seed: 42).run(on: try EmulatedPlatform(.defaultPlatform()))
        let second = DefaultWorkload(iterations: 8, seed: 42).run(on: try EmulatedPlatform(.defaultPlatform()))
        #expect(try JSONText.encode(first) == JSONText.encode(second))
    }
}
