import Foundation
import Testing
@testable import Firmware

/// `FirmwareReport`: the JSON shape `iommu-sim acpi --json` prints and the
/// human text rendering.
@Suite("Report rendering")
struct ReportTests {
    static let names = CorpusFiles.tableNames("dmar") + CorpusFiles.tableNames("ivrs")

    func report(_ name: String) throws -> FirmwareReport {
        FirmwareReport(tables: [FirmwareTableReport(source: name, table: try FirmwareTable.parse(CorpusFiles.bytes(name)))])
    }

    @Test("JSON round-trips", arguments: names)
    func jsonRoundTrip(name: String) throws {
        let original = try report(name)
        let data = try JSONEncoder().encode(original)
        #expect(try JSONDecoder().decode(FirmwareReport.self, from: data) == original)
    }

    @Test func jsonShape() throws {
        let data = try JSONEncoder().encode(try report("dmar/hp-elitebook-8440p"))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let table = try #require((object["tables"] as? [[String: Any]])?.first)
        #expect(table["signature"] as? String == "DMAR")
        #expect(table["checksumValid"] as? Bool == true)
        #expect(table["ivrs"] == nil)
        let dmar = try #require(table["dmar"] as? [String: Any])
        #expect(dmar["hostAddressWidth"] as? Int == 36)
        let rmrr = try #require((dmar["reservedMemoryRegions"] as? [[String: Any]])?.first)
        #expect(rmrr["baseAddress"] as? Int == 0 && rmrr["limitAddress"] as? Int == 0xFFF)
        let platform = try #require(table["platform"] as? [String: Any])
        let unit = try #require((platform["units"] as? [[String: Any]])?.first)
        #expect(unit["kind"] as? String == "intelVTd" && unit["registerBase"] as? Int == 0xFED9_0000)
        let devices = try #require(platform["devices"] as? [[String: Any]])
        let usb = try #require(devices.first { ($0["address"] as? [String: Any])?["device"] as? Int == 0x1D })
        #expect(usb["requesterID"] as? Int == 0xE8)
        let regions = try #require(usb["reservedRegions"] as? [[String: Any]])
        #expect(regions.map { $0["kind"] as? String } == ["direct", "msi"])
        #expect(regions.last?["first"] as? Int == 0xFEE0_0000)
    }

    @Test func textRendering() throws {
        let dmarText = try report("dmar/hp-proliant-dl360-g7").renderText()
        for needle in ["DMAR", "X2APIC_OPT_OUT", "RMRR @0x50", "0xdf7e6000-0xdf7e7fff", "ep 00:1c.4/00.2",
                       "\\xd2\\x04", "unresolved RMRR scope", "msi"] {
            #expect(dmarText.contains(needle), "missing \(needle)")
        }
        let ivrsText = try report("ivrs/lenovo-thinkpad-t14-gen3").renderText()
        for needle in ["IVRS", "IVHD type 0x40", "AMDI0020/\\_SB.FUR0", "unknown subtable type 0x51",
                       "exclusion rw", "IVHD type used: 0x40"] {
            #expect(ivrsText.contains(needle), "missing \(needle)")
        }
        let noUID = try report("ivrs/lenovo-thinkpad-e495").renderText()
        #expect(noUID.contains("PNPD0040/-"))
    }

    @Test func badChecksumIsShown() throws {
        var bytes = CorpusFiles.bytes("dmar/asrock-h510m-hdv")
        bytes[9] &+= 1
        let text = FirmwareTableReport(source: "x", table: try FirmwareTable.parse(bytes)).renderText()
        #expect(text.contains("INVALID"))
    }
}
