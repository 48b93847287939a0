import Testing
@testable import Firmware

/// The platform description built from DMAR tables: unit matching,
/// RMRR regions, multi-hop paths, MSI window.
@Suite("Platform from DMAR")
struct PlatformDMARTests {
    typealias B = TableBuilder

    func dmar(_ name: String) throws -> DMARTable { try DMARTable.parse(CorpusFiles.bytes("dmar/" + name)) }

    func address(_ text: String) -> FirmwarePCIAddress {
        FirmwarePCIAddress(parsing: text) ?? FirmwarePCIAddress(bus: 0xFF, device: 31, function: 7)
    }

    /// Over the whole corpus: every one-hop endpoint in an RMRR gets exactly
    /// that range as a read/write direct region, and every translated device
    /// has the MSI window.
    @Test("RMRR endpoints get their regions", arguments: CorpusFiles.tableNames("dmar"))
    func rmrrRegions(name: String) throws {
        let table = try DMARTable.parse(CorpusFiles.bytes(name))
        let platform = FirmwarePlatform(dmar: table)
        #expect(platform.units.count == table.hardwareUnits.count)
        for rmrr in table.reservedMemoryRegions {
            for scope in rmrr.scopes where scope.kind == .endpoint && scope.path.count == 1 {
                let device = FirmwarePCIAddress(segment: rmrr.segment, bus: scope.startBus,
                                                device: scope.path[0].device, function: scope.path[0].function)
                let regions = platform.device(device)?.reservedRegions ?? []
                #expect(regions.contains(FirmwareReservedRegion(
                    first: rmrr.baseAddress, last: rmrr.limitAddress, kind: .direct, readable: true, writable: true,
                    source: "RMRR@0x" + String(rmrr.offset, radix: 16))), "\(name): \(device)")
            }
        }
        for device in platform.devices {
            #expect(device.unit == nil || device.reservedRegions.contains { $0.kind == .msi && $0.first == 0xFEE0_0000 && $0.last == 0xFEEF_FFFF })
        }
    }

    @Test func explicitBridgeAndIncludeAllMatching() throws {
        let table = try dmar("dell-poweredge-r820")
        let devices = [
            FirmwarePCIDevice(address("40:05.0")),
            FirmwarePCIDevice(address("40:01.0"), secondaryBus: 0x41, subordinateBus: 0x42),
            FirmwarePCIDevice(address("42:00.1")),
            FirmwarePCIDevice(address("00:1a.0")),
            FirmwarePCIDevice(address("0001:00:1a.0")),
            FirmwarePCIDevice(address("c0:05.0")),
        ]
        let platform = FirmwarePlatform(dmar: table, devices: devices)
        #expect(platform.device(address("40:05.0"))?.unit == 0)
        #expect(platform.device(address("40:05.0"))?.coverage == .explicit)
        #expect(platform.device(address("42:00.1"))?.unit == 0)
        #expect(platform.device(address("42:00.1"))?.coverage == .bridgeScope)
        #expect(platform.device(address("c0:05.0"))?.unit == 2)
        let usb = platform.device(address("00:1a.0"))
        #expect(usb?.unit == 3 && usb?.coverage == .includeAll)
        #expect(usb?.reservedRegions.map(\.first) == [0xBF45_0000, 0xBF45_8000, 0xFEE0_0000])
        // Another segment: no unit, no regions.
        let other = platform.device(address("0001:00:1a.0"))
        #expect(other?.unit == nil && other?.reservedRegions.isEmpty == true)
    }

    @Test func multiHopPathsResolveThroughBridges() throws {
        let table = try dmar("hp-proliant-dl360-g7")
        let unresolvedAlone = FirmwarePlatform(dmar: table).unresolvedScopes
        #expect(unresolvedAlone.count == 10)
        #expect(unresolvedAlone.allSatisfy { $0.structure == "RMRR" && $0.path.contains("/") })
        let devices = [
            FirmwarePCIDevice(address("00:1c.4"), secondaryBus: 2),
            FirmwarePCIDevice(address("00:01.0"), secondaryBus: 3),
            FirmwarePCIDevice(address("00:09.0"), secondaryBus: 4),
            FirmwarePCIDevice(address("00:03.0"), secondaryBus: 5),
            FirmwarePCIDevice(address("02:00.0")), FirmwarePCIDevice(address("02:00.4")),
            FirmwarePCIDevice(address("03:00.0")), FirmwarePCIDevice(address("04:00.1")),
        ]
        let platform = FirmwarePlatform(dmar: table, devices: devices)
        #expect(platform.unresolvedScopes.isEmpty)
        // 02:00.0 is named by two RMRRs, 02:00.4 by one, 03:00.0 by the third.
        #expect(platform.device(address("02:00.0"))?.reservedRegions.map(\.first) == [0xDF61_E000, 0xDF7D_F000, 0xFEE0_0000])
        #expect(platform.device(address("02:00.4"))?.reservedRegions.map(\.first) == [0xDF7D_F000, 0xFEE0_0000])
        #expect(platform.device(address("03:00.0"))?.reservedRegions.first?.last == 0xDF61_FFFF)
        #expect(platform.device(address("04:00.1"))?.reservedRegions.count == 2)
        // A bridge without its secondary bus leaves the path unresolved.
        let partial = FirmwarePlatform(dmar: table, devices: [FirmwarePCIDevice(address("00:1c.4"))])
        #expect(partial.unresolvedScopes.first?.reason.contains("secondary bus") == true)
    }

    @Test func relaxableForUSBAndGraphics() throws {
        let table = try dmar("hp-elitebook-8440p")
        let platform = FirmwarePlatform(dmar: table, devices: [
            FirmwarePCIDevice(address("00:1d.0"), classCode: 0x0C0320),
            FirmwarePCIDevice(address("00:02.0"), classCode: 0x030000),
            FirmwarePCIDevice(address("00:1a.0"), classCode: 0x020000),
        ])
        #expect(platform.device(address("00:1d.0"))?.reservedRegions.first == FirmwareReservedRegion(
            first: 0, last: 0xFFF, kind: .directRelaxable, readable: true, writable: true, source: "RMRR@0x70"))
        #expect(platform.device(address("00:02.0"))?.reservedRegions.first?.kind == .directRelaxable)
        #expect(platform.device(address("00:1a.0"))?.reservedRegions.first?.kind == .direct)
    }

    @Test func impliedDevicesAndUnits() throws {
        let table = try dmar("supermicro-x10dai")
        let implied = FirmwarePlatform.impliedDevices(dmar: table).map(\.address)
        #expect(implied.contains(address("80:04.7")) && implied.contains(address("00:14.0")))
        #expect(!implied.contains(address("80:05.4")))  // IOAPIC scopes are not DMA devices
        #expect(implied == implied.sorted())
        let platform = FirmwarePlatform(dmar: table)
        #expect(platform.units.map(\.registerBase) == [0xFBFF_C000, 0xF3FF_D000, 0xF3FF_C000])
        #expect(platform.units.map(\.includesAllDevices) == [false, false, true])
        #expect(platform.units.allSatisfy { $0.kind == .intelVTd })
    }

    @Test func pciAddressParsingAndRequesterID() {
        let parsed = FirmwarePCIAddress(parsing: "0001:80:1f.7")
        #expect(parsed == FirmwarePCIAddress(segment: 1, bus: 0x80, device: 0x1F, function: 7))
        #expect(parsed?.requesterID == 0x80FF)
        #expect(FirmwarePCIAddress(segment: 1, requesterID: 0x80FF) == parsed)
        #expect(parsed?.description == "0001:80:1f.7")
        for bad in ["", "00:20.0", "00:1f.8", "zz:00.0", "00.0", "1:2:3:4.0"] {
            #expect(FirmwarePCIAddress(parsing: bad) == nil, "\(bad)")
        }
        let bridge = FirmwarePCIDevice(parsing: "00:1c.4=02-05@060400")
        #expect(bridge?.secondaryBus == 2 && bridge?.subordinateBus == 5 && bridge?.classCode == 0x060400)
        #expect(FirmwarePCIDevice(parsing: "00:1c.4=05-02") == nil)
        #expect(FirmwarePCIDevice(parsing: "00:02.0@1000000") == nil)
    }
}
