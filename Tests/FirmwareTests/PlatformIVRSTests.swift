import Testing
@testable import Firmware

/// The platform description built from IVRS tables: which IVHDs define the
/// units, entry expansion, aliases, IVMD regions.
@Suite("Platform from IVRS")
struct PlatformIVRSTests {
    typealias B = TableBuilder

    func address(_ text: String) -> FirmwarePCIAddress {
        FirmwarePCIAddress(parsing: text) ?? FirmwarePCIAddress(bus: 0xFF, device: 31, function: 7)
    }

    @Test("units come from the highest IVHD type", arguments: CorpusFiles.tableNames("ivrs"))
    func highestType(name: String) throws {
        let table = try IVRSTable.parse(CorpusFiles.bytes(name))
        let platform = FirmwarePlatform(ivrs: table)
        let highest = table.hardwareDefinitions.map(\.type).max { a, b in
            [0x10, 0x11, 0x40].firstIndex(of: a) ?? 0 < [0x10, 0x11, 0x40].firstIndex(of: b) ?? 0
        }
        #expect(platform.ivhdTypeUsed == highest)
        #expect(platform.units.count == table.hardwareDefinitions.filter { $0.type == highest }.count)
        #expect(platform.units.allSatisfy { $0.kind == .amdVi && $0.ivhdDeviceID != nil })
    }

    @Test func unityAndExclusionRegions() throws {
        let table = try IVRSTable.parse(CorpusFiles.bytes("ivrs/asus-zenbook-s16-um5606wa"))
        let platform = FirmwarePlatform(ivrs: table)
        let npu = platform.device(address("00:0c.0"))
        #expect(npu?.coverage == .explicit)  // named by an ACPI HID entry
        #expect(npu?.reservedRegions.first == FirmwareReservedRegion(
            first: 0x7D90_0000, last: 0x7D9F_FFFF, kind: .direct, readable: true, writable: true, source: "IVMD@0xc8"))
        let excluded = platform.device(address("c4:00.7"))
        #expect(excluded?.coverage == .range)
        #expect(excluded?.reservedRegions.first == FirmwareReservedRegion(
            first: 0x75E0_0000, last: 0x75E1_FFFF, kind: .exclusion, readable: true, writable: true, source: "IVMD@0xe8"))
        // The HID entry's UID is a 2-byte integer.
        let msft = table.hardwareDefinitions.last?.entries.last?.acpiDevice
        #expect(msft?.uidFormat == .integer && msft?.uidInteger == 1 && msft?.hid.text == "MSFT0201")
    }

    @Test func oneByteExclusionRangesCoverAPage() throws {
        let table = try IVRSTable.parse(CorpusFiles.bytes("ivrs/mechrevo-wujie14xa"))
        let platform = FirmwarePlatform(ivrs: table, devices: [FirmwarePCIDevice(address("00:08.1")),
                                                                 FirmwarePCIDevice(address("10:00.0"))])
        let regions = platform.device(address("00:08.1"))?.reservedRegions ?? []
        #expect(regions.filter { $0.kind == .exclusion }.map { $0.last - $0.first } == [0xFFF, 0xFFF, 0xFFF, 0xFFF, 0xFFF])
        #expect(regions.contains { $0.first == 0x9618_E000 && $0.last == 0x9618_EFFF })
        // Outside the IVMD device range 0000-0fff only the MSI window remains.
        #expect(platform.device(address("10:00.0"))?.reservedRegions.map(\.kind) == [.msi])
    }

    @Test func entryKindsExpandAgainstPresentDevices() throws {
        let bytes = B.ivrs([
            B.ivhd(type: 0x10, base: 0xA000_0000, [B.entry4(1, 0)]),
            B.ivhd(type: 0x10, deviceID: 0x4002, base: 0xB000_0000, [
                B.entry4(2, 0x4010),
                B.alias(0x42, 0x4100, source: 0x40F8),
                B.extended(0x46, 0x4200, data: 0x8000_0000),
                B.alias(0x43, 0x4300, source: 0x4308), B.entry4(4, 0x43FF),
                B.extended(0x47, 0x4400, data: 0), B.entry4(4, 0x44FF),
                B.special(handle: 7, source: 0x40A0, variety: 1),
                B.acpiHID(0x40A5, hid: "AMDI0020", uidFormat: 0, uid: []),
                B.entry4(0x00, 0),
            ]),
            B.ivmd(type: 0x20, flags: 3, start: 0x1000, length: 0x1000),
            B.ivmd(type: 0x22, flags: 5, deviceID: 0x4300, aux: 0x43FF, start: 0x20_0000, length: 0x1_0001),
        ])
        let table = try IVRSTable.parse(bytes, options: .strict)
        let kinds = table.hardwareDefinitions[1].entries.map(\.kind)
        #expect(kinds == [.select, .aliasSelect, .extendedSelect, .aliasRangeStart, .rangeEnd, .extendedRangeStart,
                          .rangeEnd, .special, .acpiHID, .pad])
        #expect(table.hardwareDefinitions[1].entries[2].extendedData == 0x8000_0000)
        #expect(table.hardwareDefinitions[1].entries[7].special?.variety == .ioapic)
        let present = ["40:02.0", "41:00.0", "42:00.0", "43:01.0", "44:00.3", "40:14.5", "50:00.0", "0001:00:00.0"]
            .map { FirmwarePCIDevice(address($0)) }
        let platform = FirmwarePlatform(ivrs: table, devices: present)
        #expect(platform.units.map(\.includesAllDevices) == [true, false])
        func check(_ text: String, unit: Int?, _ coverage: FirmwareCoverage?, alias: UInt16? = nil) {
            let device = platform.device(address(text))
            #expect(device?.unit == unit && device?.coverage == coverage && device?.aliasRequesterID == alias, "\(text)")
        }
        check("40:02.0", unit: 1, .explicit)
        check("41:00.0", unit: 1, .explicit, alias: 0x40F8)
        check("42:00.0", unit: 1, .explicit)
        check("43:01.0", unit: 1, .range, alias: 0x4308)
        check("44:00.3", unit: 1, .range)
        check("40:14.5", unit: 1, .explicit)
        check("50:00.0", unit: 0, .includeAll)
        check("0001:00:00.0", unit: nil, nil)
        let ranged = platform.device(address("43:01.0"))?.reservedRegions ?? []
        #expect(ranged.map(\.first) == [0x1000, 0x20_0000, 0xFEE0_0000])
        #expect(ranged[0].readable && !ranged[0].writable)
        #expect(ranged[1].last == 0x21_0FFF && !ranged[1].readable && ranged[1].writable)
        #expect(platform.device(address("50:00.0"))?.reservedRegions.count == 2)
    }

    @Test func ivinfoAndHeaderFields() throws {
        let table = try IVRSTable.parse(CorpusFiles.bytes("ivrs/lenovo-thinkpad-t14-gen3"))
        #expect(table.info.efrSupported && table.info.physicalAddressBits == 48 && table.info.virtualAddressBits == 64)
        #expect(table.info.guestVirtualAddressBits == 48)
        #expect(table.unknownSubtables.map(\.type) == [0x51])
        let ivmd = table.memoryDefinitions.first
        #expect(ivmd?.exclusionRange == true && ivmd?.scope == .device && ivmd?.deviceID == 0x0300)
    }
}
