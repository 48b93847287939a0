import Emulation
import Firmware
import Foundation
import IOMMUCore
import Testing
import Workloads

/// The real machines in ../shared/acpi (linuxhw/ACPI, CC BY 4.0) as running platforms.
@Suite struct FirmwarePlatformTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/acpi")

    static func tables(_ kind: String) -> [URL] {
        let folder = corpus.appendingPathComponent(kind)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".bin") }.sorted().map { folder.appendingPathComponent($0) }
    }

    static func specification(_ url: URL) throws -> PlatformSpecification {
        let table = try FirmwareTable.parse([UInt8](try Data(contentsOf: url)))
        return try PlatformSpecification.fromFirmware(table: table, name: url.lastPathComponent)
    }

    @Test func theCorpusIsThere() {
        #expect(Self.tables("dmar").count == 20)
        #expect(Self.tables("ivrs").count == 20)
    }

    @Test(arguments: tables("dmar") + tables("ivrs"))
    func everyMachineRunsTheWorkloadWithItsFirmwareRegionsMappedOneToOne(table: URL) throws {
        let specification = try Self.specification(table)
        let platform = try EmulatedPlatform(specification)
        let report = DefaultWorkload(iterations: 4, seed: 1).run(on: platform)
        #expect(report.checksFailed == 0)
        #expect(report.checksPassed > 0, "\(table.lastPathComponent) put no device behind its IOMMU")
        for device in specification.devices where device.behindIOMMU {
            let managed = try #require(platform.subsystem.device(at: device.address))
            guard let domain = managed.domain, domain.kind.translates else { continue }
            for region in device.directRegions {
                let page = region.range.lowerBound & ~0xFFF
                #expect(domain.translate(IOVirtualAddress(page)) == PhysicalAddress(page), "\(table.lastPathComponent) \(region)")
            }
        }
        // Firmware memory is never handed out by the page allocator.
        let ranges = specification.devices.flatMap(\.directRegions).map(\.range)
        for _ in 0..<64 {
            let page = try platform.pages.allocate(zone: .below(PhysicalAddress(0xFFFF_FFFF)))
            #expect(!ranges.contains { $0.contains(page.value) })
        }
    }

    @Test func aTableWithoutIOMMUsIsAClearError() throws {
        let empty = FirmwarePlatform(units: [], devices: [], unresolvedScopes: [], ivhdTypeUsed: nil)
        #expect(throws: PlatformError.invalidSpecification("empty describes no IOMMU unit")) {
            try PlatformSpecification.fromFirmware(empty, name: "empty")
        }
    }
}
