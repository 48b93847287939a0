/// The decoded ACPI DMAR table (Intel VT-d DMA remapping reporting).
///
/// Structures are grouped by kind; each keeps its byte `offset` in the
/// table, so the original order is recoverable by sorting on it.
public struct DMARTable: Sendable, Hashable, Codable {
    public let header: ACPITableHeader
    /// Whether all bytes of the table sum to zero (see `FirmwareParseOptions`).
    public let checksumValid: Bool
    /// The Host Address Width byte as stored (the width minus one).
    public let hostAddressWidthField: UInt8
    /// DMA physical address width in bits (`hostAddressWidthField + 1`).
    public let hostAddressWidth: Int
    public let flags: DMARFlags
    /// DRHD structures (type 0).
    public let hardwareUnits: [DMARHardwareUnit]
    /// RMRR structures (type 1).
    public let reservedMemoryRegions: [DMARReservedMemoryRegion]
    /// ATSR structures (type 2).
    public let rootPortATS: [DMARRootPortATS]
    /// RHSA structures (type 3).
    public let hardwareAffinities: [DMARHardwareAffinity]
    /// ANDD structures (type 4).
    public let namespaceDevices: [DMARNamespaceDevice]
    /// SATC structures (type 5).
    public let socIntegratedATC: [DMARSoCIntegratedATC]
    /// SIDP structures (type 6).
    public let socIntegratedDeviceProperties: [DMARSoCDeviceProperty]
    /// Structures of other types, skipped by their length.
    public let unknownStructures: [FirmwareUnknownStructure]

    /// Size of the fixed part of the table (ACPI header + HAW + flags + reserved).
    public static let fixedSize = 48
}

/// DMAR table flags (byte 37).
public struct DMARFlags: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// INTR_REMAP: the platform supports interrupt remapping.
    public static let interruptRemapping = DMARFlags(rawValue: 1 << 0)
    /// X2APIC_OPT_OUT: firmware asks the OS not to enable x2APIC mode.
    public static let x2APICOptOut = DMARFlags(rawValue: 1 << 1)
    /// DMA_CTRL_PLATFORM_OPT_IN: firmware protected DMA before hand-off.
    public static let dmaControlPlatformOptIn = DMARFlags(rawValue: 1 << 2)

    /// Names of the set flags, e.g. ["INTR_REMAP", "X2APIC_OPT_OUT"].
    public var names: [String] {
        var out: [String] = []
        if contains(.interruptRemapping) { out.append("INTR_REMAP") }
        if contains(.x2APICOptOut) { out.append("X2APIC_OPT_OUT") }
        if contains(.dmaControlPlatformOptIn) { out.append("DMA_CTRL_PLATFORM_OPT_IN") }
        return out
    }
}

/// Kind of a DMAR device scope entry.
public enum DMARDeviceScopeKind: String, Sendable, Hashable, Codable {
    case endpoint, bridge, ioapic, hpet, acpiNamespaceDevice, unknown

    init(code: UInt8) {
        switch code {
        case 1: self = .endpoint
        case 2: self = .bridge
        case 3: self = .ioapic
        case 4: self = .hpet
        case 5: self = .acpiNamespaceDevice
        default: self = .unknown
        }
    }
}

/// One (device, function) hop of a device scope's PCI path.
public struct DMARPathElement: Sendable, Hashable, Codable {
    public let device: UInt8
    public let function: UInt8
    public init(device: UInt8, function: UInt8) { self.device = device; self.function = function }
}

/// A device scope entry: which device (or bridge, IOAPIC, ...) a structure applies to.
public struct DMARDeviceScope: Sendable, Hashable, Codable, CustomStringConvertible {
    public let offset: Int
    public let length: Int
    /// The type byte as stored (1 endpoint ... 5 ACPI namespace device).
    public let type: UInt8
    public let kind: DMARDeviceScopeKind
    /// Flags byte (used by SIDP scopes; reserved elsewhere).
    public let flags: UInt8
    /// IOAPIC ID, HPET number or ANDD device number, depending on `kind`.
    public let enumerationID: UInt8
    /// Bus number where the path starts.
    public let startBus: UInt8
    /// Path from `startBus`: the first hop is on `startBus`, each further hop
    /// on the secondary bus of the bridge named by the previous hop.
    public let path: [DMARPathElement]

    /// `bb:dd.f[/dd.f...]` in hex, the notation of SOURCES.md and Linux logs.
    public var pathDescription: String {
        var text = hex(startBus, digits: 2)
        for (index, hop) in path.enumerated() {
            text += (index == 0 ? ":" : "/") + hex(hop.device, digits: 2) + "." + hex(hop.function)
        }
        return text
    }

    public var description: String {
        switch kind {
        case .endpoint: return "ep " + pathDescription
        case .bridge: return "bridge " + pathDescription
        case .ioapic: return "ioapic#\(enumerationID) " + pathDescription
        case .hpet: return "hpet#\(enumerationID) " + pathDescription
        case .acpiNamespaceDevice: return "acpi#\(enumerationID) " + pathDescription
        case .unknown: return "type\(type) " + pathDescription
        }
    }
}

/// DRHD: one DMA remapping hardware unit.
public struct DMARHardwareUnit: Sendable, Hashable, Codable {
    public let offset: Int
    public let length: Int
    public let flags: UInt8
    /// INCLUDE_PCI_ALL: the unit covers every device of its segment not
    /// listed under another unit.
    public let includePCIAll: Bool
    /// Size of the register set: 2^size 4 KiB pages (0 on older tables).
    public let size: UInt8
    public let segment: UInt16
    public let registerBase: UInt64
    public let scopes: [DMARDeviceScope]
}

/// RMRR: memory that devices use for DMA before and after the OS takes over
/// and that must stay identity-mapped for them.
public struct DMARReservedMemoryRegion: Sendable, Hashable, Codable {
    public let offset: Int
    public let length: Int
    public let segment: UInt16
    /// First byte of the region.
    public let baseAddress: UInt64
    /// Last byte of the region (inclusive).
    public let limitAddress: UInt64
    public let scopes: [DMARDeviceScope]
}

/// ATSR: root ports whose devices may use PCIe Address Translation Services.
public struct DMARRootPortATS: Sendable, Hashable, Codable {
    public let offset: Int
    public let length: Int
    public let flags: UInt8
    /// ALL_PORTS: every root port of the segment supports ATS.
    public let allPorts: Bool
    public let segment: UInt16
    public let scopes: [DMARDeviceScope]
}

/// RHSA: NUMA proximity domain of a remapping unit.
public struct DMARHardwareAffinity: Sendable, Hashable, Codable {
    public let offset: Int
    public let length: Int
    public let registerBase: UInt64
    public let proximityDomain: UInt32
}

/// ANDD: an ACPI namespace device that scopes of type 5 refer to by number.
public struct DMARNamespaceDevice: Sendable, Hashable, Codable {
    public let offset: Int
    /// Length as stored; firmware often counts NUL padding after the name.
    public let length: Int
    public let deviceNumber: UInt8
    /// Object path up to the first NUL, e.g. `\_SB.PCI0.I2C0`.
    public let objectName: ACPIString
}

/// SATC: SoC-integrated devices with an address translation cache.
public struct DMARSoCIntegratedATC: Sendable, Hashable, Codable {
    public let offset: Int
    public let length: Int
    public let flags: UInt8
    /// ATC_REQUIRED: the devices need ATS enabled to work correctly.
    public let atcRequired: Bool
    public let segment: UInt16
    public let scopes: [DMARDeviceScope]
}

/// SIDP: SoC-integrated device properties (per-scope flags).
public struct DMARSoCDeviceProperty: Sendable, Hashable, Codable {
    public let offset: Int
    public let length: Int
    public let segment: UInt16
    public let scopes: [DMARDeviceScope]
}
