import IOMMUCore
import Testing
import Workloads

/// Every family at once under the one DMA layer.
@Suite struct MixedPlatformTests {
    @Test(arguments: [DefaultDomainPolicy(), DefaultDomainPolicy(invalidation: .lazy), DefaultDomainPolicy(passThrough: true)])
    func everyFamilyServesItsDevicesSideBySide(policy: DefaultDomainPolicy) throws {
        let platform = try EmulatedPlatform(.mixedPlatform(policy: policy))
        let report = DefaultWorkload(iterations: 8, seed: 5).run(on: platform)
        #expect(report.checksFailed == 0, "\(report.platform.devices.compactMap(\.workload).flatMap(\.notes))")
        let families = Set(report.platform.units.map(\.family))
        #expect(families == Set(IOMMUFamily.allCases.filter(\.isEmulated).map(\.rawValue)))
        let unitOf = Dictionary(uniqueKeysWithValues: report.platform.devices.map { ($0.name, $0.unit) })
        #expect(unitOf["nic0"] == "amd-vi0" && unitOf["nvme0"] == "smmu0" && unitOf["legacy-dma"] == "gart0")
        #expect(unitOf["raid0"] == "calgary0" && unitOf["usb-xhci"] == "dmar0")
        for device in report.platform.devices where device.workload != nil {
            #expect(device.workload?.bytesMoved ?? 0 > 0, "\(device.name) moved no data")
        }
    }

    @Test func eachDefaultDomainReportsItsOwnFamilysCapabilities() throws {
        let report = try EmulatedPlatform(.mixedPlatform()).report()
        let byName = Dictionary(uniqueKeysWithValues: report.devices.map { ($0.name, $0) })
        #expect(byName["legacy-dma"]?.outsideAperture == "pass-through")
        #expect(byName["legacy-dma"]?.aperture?.first == 0xC000_0000 && byName["legacy-dma"]?.aperture?.last == 0xDFFF_FFFF)
        #expect(byName["raid0"]?.outsideAperture == "blocked")
        #expect(byName["nvme0"]?.reservedRegions.map(\.kind).contains("software-msi") == true)
        #expect(byName["nic0"]?.reservedRegions.map(\.source).contains("HyperTransport") == true)
    }
}
