/// The decoded ACPI IVRS table (AMD I/O virtualization reporting).
public struct IVRSTable: Sendable, Hashable, Codable {
    public let header: ACPITableHeader
    /// Whether all bytes of the table sum to zero (see `FirmwareParseOptions`).
    public let checksumValid: Bool
    public let info: IVRSInfo
    /// IVHD blocks (types 0x10, 0x11, 0x40) in table order.
    public let hardwareDefinitions: [IVHDBlock]
    /// IVMD blocks (types 0x20, 0x21, 0x22) in table order.
    public let memoryDefinitions: [IVMDBlock]
    /// Subtables of other types (for example the undocumented 0x51), skipped by length.
    public let unknownSubtables: [FirmwareUnknownStructure]

    /// Size of the fixed part (ACPI header + IVinfo + 8 reserved bytes).
    public static let fixedSize = 48
}

/// The IVinfo field (bytes 36-39): what the platform's IOMMUs support.
public struct IVRSInfo: Sendable, Hashable, Codable {
    public let rawValue: UInt32
    /// EFRSup: IVHD types 0x11/0x40 carry an image of the EFR register.
    public let efrSupported: Bool
    /// DMA guard opt-in: firmware protected DMA before hand-off.
    public let dmaGuardOptIn: Bool
    /// GVASize code (bits 7:5); 2 means 48-bit, 3 means 57-bit guest virtual addresses.
    public let guestVirtualAddressSizeCode: UInt8
    /// Guest virtual address width in bits, when the code is known.
    public let guestVirtualAddressBits: Int?
    /// PASize: physical address width in bits.
    public let physicalAddressBits: Int
    /// VASize: virtual address width in bits.
    public let virtualAddressBits: Int
    /// HtAtsResv: the HyperTransport ATS-reserved range is in use.
    public let htATSReserved: Bool

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
        efrSupported = rawValue & 1 != 0
        dmaGuardOptIn = rawValue & 2 != 0
        let gva = UInt8((rawValue >> 5) & 7)
        guestVirtualAddressSizeCode = gva
        guestVirtualAddressBits = gva == 2 ? 48 : (gva == 3 ? 57 : nil)
        physicalAddressBits = Int((rawValue >> 8) & 0x7F)
        virtualAddressBits = Int((rawValue >> 15) & 0x7F)
        htATSReserved = rawValue & (1 << 22) != 0
    }
}

/// An IVHD block: one AMD IOMMU and the devices it translates for.
///
/// Firmware usually describes the same IOMMU several times (types 0x10, 0x11
/// and 0x40) for OSes of different ages; see `FirmwarePlatform` for which
/// blocks are used.
public struct IVHDBlock: Sendable, Hashable, Codable {
    public let offset: Int
    /// 0x10, 0x11 or 0x40.
    public let type: UInt8
    public let flags: UInt8
    public let length: Int
    /// PCI requester ID of the IOMMU itself.
    public let deviceID: UInt16
    /// Offset of the IOMMU capability block in its PCI config space.
    public let capabilityOffset: UInt16
    public let baseAddress: UInt64
    public let segment: UInt16
    /// IOMMU info: MSI message number (bits 4:0) and UnitID (bits 12:8).
    public let iommuInfo: UInt16
    /// Type 0x10: IOMMU feature reporting field.
    public let featureReporting: UInt32?
    /// Types 0x11/0x40: IOMMU attributes field.
    public let attributes: UInt32?
    /// Types 0x11/0x40: image of the Extended Feature Register.
    public let efrImage: UInt64?
    /// Types 0x11/0x40: image of the second Extended Feature Register
    /// (iasl calls it "Reserved").
    public let efr2Image: UInt64?
    public let entries: [IVHDDeviceEntry]

    /// Decoded flag bits.
    public var coherent: Bool { flags & 0x20 != 0 }
    public var iotlbSupported: Bool { flags & 0x10 != 0 }
    public var pprSupported: Bool { flags & 0x80 != 0 }
    public var msiNumber: UInt8 { UInt8(iommuInfo & 0x1F) }
    public var unitID: UInt8 { UInt8((iommuInfo >> 8) & 0x1F) }

    /// Size of the fixed part of an IVHD of `type`.
    public static func headerSize(type: UInt8) -> Int { type == 0x10 ? 24 : 40 }
}

/// What an IVHD device entry does.
public enum IVHDEntryKind: String, Sendable, Hashable, Codable {
    case pad, selectAll, select, rangeStart, rangeEnd
    case aliasSelect, aliasRangeStart, extendedSelect, extendedRangeStart
    case special, acpiHID, unknown
}

/// Variety of a special (0x48) device entry.
public enum IVHDSpecialVariety: String, Sendable, Hashable, Codable {
    case ioapic, hpet, unknown
}

/// Payload of a special (0x48) device entry: an IOAPIC or HPET and the
/// requester ID its interrupts carry.
public struct IVHDSpecialDevice: Sendable, Hashable, Codable {
    /// IOAPIC ID or HPET number.
    public let handle: UInt8
    public let sourceDeviceID: UInt16
    public let varietyCode: UInt8
    public let variety: IVHDSpecialVariety
}

/// Format of the UID in an ACPI HID (0xF0) device entry.
public enum IVHDUIDFormat: String, Sendable, Hashable, Codable {
    case none, integer, string, unknown
}

/// Payload of an ACPI HID (0xF0) device entry: a non-PCI device named by its
/// ACPI _HID/_CID/_UID that DMAs with the entry's requester ID.
public struct IVHDACPIDevice: Sendable, Hashable, Codable {
    /// _HID, 8 bytes (string, NUL-padded).
    public let hid: ACPIString
    /// _CID as the 8 raw bytes read little-endian (0 when absent).
    public let cid: UInt64
    public let uidFormatCode: UInt8
    public let uidFormat: IVHDUIDFormat
    public let uidLength: UInt8
    /// The UID when it is an integer (format 1, up to 8 bytes little-endian).
    public let uidInteger: UInt64?
    /// The UID when it is a string (format 2).
    public let uidString: ACPIString?
    /// The UID bytes as stored.
    public let uidBytes: [UInt8]

    /// `HID/UID` with "-" for no UID, as in SOURCES.md.
    public var summary: String {
        switch uidFormat {
        case .none: return hid.text + "/-"
        case .integer: return hid.text + "/int 0x" + hex(uidInteger ?? 0, digits: 4)
        case .string: return hid.text + "/" + (uidString?.text ?? "")
        case .unknown: return hid.text + "/?"
        }
    }
}

/// One IVHD device entry.
public struct IVHDDeviceEntry: Sendable, Hashable, Codable {
    public let offset: Int
    public let type: UInt8
    public let kind: IVHDEntryKind
    public let length: Int
    /// Requester ID (bus << 8 | device << 3 | function); reserved (0) for
    /// pad, select-all and special entries.
    public let deviceID: UInt16
    /// DTE setting byte: INITPass, EIntPass, NMIPass, SysMgt, Lint0/1Pass.
    public let dataSetting: UInt8
    /// Alias entries: the requester ID the device's requests arrive with.
    public let aliasSourceID: UInt16?
    /// Extended entries: the extended data word (bit 31: ATS disabled).
    public let extendedData: UInt32?
    /// Special (0x48) entries.
    public let special: IVHDSpecialDevice?
    /// ACPI HID (0xF0) entries.
    public let acpiDevice: IVHDACPIDevice?
}

/// Which devices an IVMD block applies to.
public enum IVMDScope: String, Sendable, Hashable, Codable {
    /// Type 0x20: every device.
    case allDevices
    /// Type 0x21: the device `firstDeviceID`.
    case device
    /// Type 0x22: devices `firstDeviceID...lastDeviceID`.
    case deviceRange
}

/// An IVMD block: memory a device (or all devices) must reach untranslated.
public struct IVMDBlock: Sendable, Hashable, Codable {
    public let offset: Int
    /// 0x20, 0x21 or 0x22.
    public let type: UInt8
    public let flags: UInt8
    public let length: Int
    /// The Device ID field as stored (start of range for type 0x22).
    public let deviceID: UInt16
    /// Auxiliary data as stored (end of range for type 0x22).
    public let auxiliaryData: UInt16
    /// PCI segment (bytes 8-9, reserved in older specifications).
    public let segment: UInt16
    public let scope: IVMDScope
    public let firstDeviceID: UInt16
    public let lastDeviceID: UInt16
    public let startAddress: UInt64
    /// Memory block length in bytes as stored (may be smaller than a page).
    public let memoryLength: UInt64

    public var unity: Bool { flags & 1 != 0 }
    public var readable: Bool { flags & 2 != 0 }
    public var writable: Bool { flags & 4 != 0 }
    public var exclusionRange: Bool { flags & 8 != 0 }
}
