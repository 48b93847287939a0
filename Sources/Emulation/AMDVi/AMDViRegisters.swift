/// MMIO register offsets of an AMD-Vi unit (AMD I/O Virtualization Technology
/// specification #48882, "MMIO Registers"). The emulated unit decodes them
/// and the driver programs them, as on real hardware.
public enum AMDViRegister {
    /// Bits 51:12 the device table's base, bits 8:0 its size in 4 KiB pages minus one.
    public static let deviceTableBase = 0x0000
    /// Bits 51:12 the command buffer's base, bits 59:56 log2 of its entry count (8...15).
    public static let commandBufferBase = 0x0008
    /// Bits 51:12 the event log's base, bits 59:56 log2 of its entry count (8...15).
    public static let eventLogBase = 0x0010
    public static let control = 0x0018
    /// Bit 0 ExEn, bit 1 Allow (every device), bits 51:12 the first excluded page.
    public static let exclusionBase = 0x0020
    /// Bits 51:12 the last excluded page (inclusive).
    public static let exclusionLimit = 0x0028
    public static let extendedFeatures = 0x0030
    /// Byte offsets into the ring (bits 18:4), as the hardware reports and the driver moves them.
    public static let commandBufferHead = 0x2000
    public static let commandBufferTail = 0x2008
    public static let eventLogHead = 0x2010
    public static let eventLogTail = 0x2018
    public static let status = 0x2020
}

/// Control register bits.
public enum AMDViControl {
    public static let iommuEnable: UInt64 = 1 << 0
    public static let eventLogEnable: UInt64 = 1 << 2
    public static let eventInterruptEnable: UInt64 = 1 << 3
    public static let completionWaitInterruptEnable: UInt64 = 1 << 4
    public static let commandBufferEnable: UInt64 = 1 << 12
}

/// Status register bits; the first three are write-one-to-clear.
public enum AMDViStatus {
    public static let eventOverflow: UInt64 = 1 << 0
    public static let eventLogInterrupt: UInt64 = 1 << 1
    public static let completionWaitInterrupt: UInt64 = 1 << 2
    public static let eventLogRunning: UInt64 = 1 << 3
    public static let commandBufferRunning: UInt64 = 1 << 4
}

/// Extended feature register bits the driver reads.
public enum AMDViFeature {
    /// INVALIDATE_IOMMU_ALL is implemented.
    public static let invalidateAll: UInt64 = 1 << 6
    /// HATS (bits 11:10): host page-table levels, 0 = 4, 1 = 5, 2 = 6.
    public static let hostAddressTranslationSizeShift: UInt64 = 10
}

/// Exclusion range register bits.
public enum AMDViExclusion {
    public static let enable: UInt64 = 1 << 0
    public static let allowAll: UInt64 = 1 << 1
    public static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000
}

/// Device table entry fields (256 bits; only the first two quadwords matter for DMA).
public enum AMDViDTE {
    public static let bytes: UInt64 = 32
    // Quadword 0
    public static let valid: UInt64 = 1 << 0
    public static let translationValid: UInt64 = 1 << 1
    public static let modeShift: UInt64 = 9
    public static let modeMask: UInt64 = 7 << 9
    public static let rootMask: UInt64 = 0x000F_FFFF_FFFF_F000
    public static let readPermission: UInt64 = 1 << 61
    public static let writePermission: UInt64 = 1 << 62
    /// Bit 63 of quadword 0 is reserved: set, the entry is illegal.
    public static let reservedQuadword0: UInt64 = 1 << 63
    // Quadword 1
    public static let domainIDMask: UInt64 = 0xFFFF
    /// SE: suppress IO_PAGE_FAULT events for the device.
    public static let suppressEvents: UInt64 = 1 << 33
    /// EX: the exclusion range applies to the device.
    public static let exclusion: UInt64 = 1 << 39
}

/// Host (v1) page-table entry fields.
public enum AMDViPTE {
    public static let present: UInt64 = 1 << 0
    public static let nextLevelShift: UInt64 = 9
    public static let nextLevelMask: UInt64 = 7 << 9
    /// Next-level 7: a page whose size the address field encodes.
    public static let nextLevelLargePage: UInt64 = 7
    public static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000
    public static let forceCoherent: UInt64 = 1 << 60
    public static let readPermission: UInt64 = 1 << 61
    public static let writePermission: UInt64 = 1 << 62
}

/// Command opcodes (bits 63:60 of the first quadword of a 128-bit command).
public enum AMDViCommand {
    public static let completionWait: UInt64 = 0x1
    public static let invalidateDeviceTableEntry: UInt64 = 0x2
    public static let invalidateIOMMUPages: UInt64 = 0x3
    public static let invalidateIOMMUAll: UInt64 = 0x8
    public static let opcodeShift: UInt64 = 60
    /// COMPLETION_WAIT: store the second quadword at the address (bits 51:3).
    public static let waitStore: UInt64 = 1 << 0
    /// COMPLETION_WAIT: set ComWaitInt in the status register.
    public static let waitInterrupt: UInt64 = 1 << 1
    public static let waitAddressMask: UInt64 = 0x000F_FFFF_FFFF_FFF8
    /// INVALIDATE_IOMMU_PAGES: S, the address encodes a range size.
    public static let sizeBit: UInt64 = 1 << 0
    /// INVALIDATE_IOMMU_PAGES: PDE, directory entries too.
    public static let directoryBit: UInt64 = 1 << 1
    /// With S set, the address that means every page of the domain.
    public static let allPagesAddress: UInt64 = 0x7FFF_FFFF_FFFF_F000
}

/// Event codes (bits 31:28 of the second doubleword of an event).
public enum AMDViEventCode: UInt8, Sendable, Hashable, Codable {
    case illegalDeviceTableEntry = 0x1
    case ioPageFault = 0x2
    case illegalCommand = 0x5
}

/// Event flags (bits 27:16 of the second doubleword).
public struct AMDViEventFlags: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0xFFF }

    /// The interrupt (MSI) address range was targeted.
    public static let interrupt = AMDViEventFlags(rawValue: 1 << 3)
    /// The page was present (the fault is about permissions or encoding).
    public static let present = AMDViEventFlags(rawValue: 1 << 4)
    /// The access was a write.
    public static let write = AMDViEventFlags(rawValue: 1 << 5)
    /// Permission violation.
    public static let permission = AMDViEventFlags(rawValue: 1 << 6)
    /// Reserved bits or an illegal encoding in a table entry.
    public static let reservedBits = AMDViEventFlags(rawValue: 1 << 7)
    /// The request was a translation request (ATS) rather than a transaction.
    public static let translationRequest = AMDViEventFlags(rawValue: 1 << 8)
}
