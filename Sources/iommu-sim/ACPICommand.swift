import ArgumentParser
import Firmware
import Foundation

/// `iommu-sim acpi [FILE...]`: decode ACPI DMAR / IVRS tables and show the
/// IOMMU units and per-device reserved regions they imply.
///
/// Each FILE is a raw table (as in /sys/firmware/acpi/tables or `acpixtract`
/// output), DMAR or IVRS by its signature. Without FILE the command reads
/// /sys/firmware/acpi/tables/DMAR and/or IVRS.
///
/// `--json` prints one object, `FirmwareReport` encoded with camelCase keys:
///
///     { "tables": [ {
///         "source": "path", "signature": "DMAR" | "IVRS", "checksumValid": true,
///         "dmar": { "header": {...}, "hostAddressWidth": 39, "flags": 5,
///                   "hardwareUnits": [ { "offset", "flags", "includePCIAll", "size", "segment",
///                                        "registerBase", "scopes": [ { "kind", "type", "flags",
///                                        "enumerationID", "startBus", "path": [ {"device","function"} ] } ] } ],
///                   "reservedMemoryRegions": [ { "segment", "baseAddress", "limitAddress", "scopes" } ],
///                   "rootPortATS", "hardwareAffinities", "namespaceDevices", "socIntegratedATC",
///                   "socIntegratedDeviceProperties", "unknownStructures" },            (DMAR only)
///         "ivrs": { "header", "info": { "rawValue", "efrSupported", "virtualAddressBits", ... },
///                   "hardwareDefinitions": [ { "type", "flags", "deviceID", "baseAddress", "segment",
///                                              "entries": [ { "kind", "type", "deviceID", "dataSetting", ... } ] } ],
///                   "memoryDefinitions": [ { "type", "flags", "scope", "firstDeviceID", "lastDeviceID",
///                                            "startAddress", "memoryLength" } ],
///                   "unknownSubtables": [ { "offset", "type", "length", "bytes" } ] },   (IVRS only)
///         "platform": { "units": [ { "index", "kind": "intelVTd" | "amdVi", "segment", "registerBase",
///                                    "includesAllDevices", "ivhdDeviceID"?, "tableOffset" } ],
///                       "devices": [ { "address": { "segment", "bus", "device", "function", "requesterID" },
///                                      "requesterID", "unit"?, "coverage"?, "aliasRequesterID"?,
///                                      "reservedRegions": [ { "first", "last",
///                                          "kind": "direct" | "directRelaxable" | "exclusion" | "msi",
///                                          "readable", "writable", "source" } ] } ],
///                       "unresolvedScopes": [ { "structure", "offset", "path", "reason" } ],
///                       "ivhdTypeUsed"? } } ] }
///
/// Addresses, sizes and offsets are integers; keys with no value are omitted.
struct ACPICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acpi",
        abstract: "Decode ACPI DMAR/IVRS tables and show IOMMU units and per-device reserved regions.")

    @Argument(help: "Raw DMAR or IVRS table files (default: /sys/firmware/acpi/tables/DMAR and IVRS).")
    var files: [String] = []

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Treat a wrong table checksum as an error instead of a warning.")
    var strictChecksum = false

    @Option(name: .customLong("device"),
            help: "A present PCI device, [ssss:]bb:dd.f[=SEC[-SUB]][@CLASS] (hex); repeatable. Default: the devices the table names.")
    var devices: [String] = []

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func run() throws {
        var present: [FirmwarePCIDevice]?
        if !devices.isEmpty {
            present = try devices.map { text in
                guard let device = FirmwarePCIDevice(parsing: text) else {
                    throw ValidationError("invalid --device '\(text)': expected [ssss:]bb:dd.f[=SEC[-SUB]][@CLASS]")
                }
                return device
            }
        }
        var paths = files
        if paths.isEmpty {
            paths = ["/sys/firmware/acpi/tables/DMAR", "/sys/firmware/acpi/tables/IVRS"]
                .filter { FileManager.default.fileExists(atPath: $0) }
            if paths.isEmpty {
                throw Failure(description: "no FILE given and neither /sys/firmware/acpi/tables/DMAR nor IVRS exists (no IOMMU table on this machine, or not readable)")
            }
        }
        let options: FirmwareParseOptions = strictChecksum ? .strict : .lenient
        var reports: [FirmwareTableReport] = []
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw Failure(description: "\(path): cannot read file")
            }
            do {
                let table = try FirmwareTable.parse([UInt8](data), options: options)
                reports.append(FirmwareTableReport(source: path, table: table, devices: present))
            } catch {
                throw Failure(description: "\(path): \(error)")
            }
        }
        let report = FirmwareReport(tables: reports)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(report)
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(report.renderText(), terminator: "")
        }
    }
}
