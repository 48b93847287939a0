import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// The AMD-Vi family as the platform builder, reports and benchmark see it.
@Suite struct AMDViPlatformTests {
    @Test func theDefaultAMDPlatformReportsItsUnitDomainsAndRegions() throws {
        let report = try EmulatedPlatform(.defaultPlatform(family: .amdVi)).report()
        #expect(report.units.map(\.name) == ["amd-vi0"])
        #expect(report.units.first?.family == "amd")
        let nic = try #require(report.devices.first { $0.name == "nic0" })
        #expect(nic.domainKind == "dma")
        #expect(nic.pageSizes.first == 4096)
        #expect(nic.pageSizes.contains(1 << 16) && nic.pageSizes.contains(1 << 22) && !nic.pageSizes.contains(1 << 39))
        let usb = try #require(report.devices.first { $0.name == "usb-xhci" })
        #expect(usb.reservedRegions.map(\.kind) == ["direct", "msi", "reserved"])
    }

    @Test func anExclusionRangeFromTheUnitSpecificationBypassesTranslation() throws {
        var specification = try PlatformSpecification.defaultPlatform(family: .amdVi)
        specification.units[0].amdViExclusionRanges = [0x5000_0000...0x5000_FFFF]
        let platform = try EmulatedPlatform(specification)
        let nic = try #require(platform.dma(for: "nic0"))
        try platform.memory.write(PhysicalAddress(0x5000_2000), bytes: [0x3C])
        #expect(nic.device.engine.read(from: IOVirtualAddress(0x5000_2000), count: 1).bytes == [0x3C])
        let regions = try #require(nic.managed).reservedRegions
        #expect(regions.contains { $0.range == 0x5000_0000...0x5000_FFFF && $0.kind == .reserved })
        // The DMA layer never hands the excluded range out.
        let buffer = try platform.pages.allocate()
        for _ in 0..<8 {
            let bus = try nic.map(buffer, size: 4096, direction: .toDevice)
            #expect(!(0x5000_0000...0x5000_FFFF).contains(bus.value))
        }
    }

    @Test func theBenchmarkReportsTheDriverAndWhetherTheLeafArrayWasOn() throws {
        for leafArray in [true, false] {
            var options = DMABenchmark.Options()
            options.iterations = 64
            options.policies = [.strict]
            options.family = .amdVi
            options.amdLeafArray = leafArray
            options.memoryGiB = 8
            let report = try DMABenchmark.run(options)
            #expect(report.results.count == 1)
            #expect(report.results.allSatisfy {
                $0.driver == "amd" && $0.leafArray == leafArray && $0.nsPerOp > 0 && $0.domainMapUnmapNs > 0
            })
        }
        var vtdOptions = DMABenchmark.Options()
        vtdOptions.iterations = 32
        vtdOptions.policies = [.lazy]
        vtdOptions.memoryGiB = 8
        let vtd = try DMABenchmark.run(vtdOptions)
        #expect(vtd.results.allSatisfy { $0.driver == "vtd" && $0.leafArray == nil })
    }
}
