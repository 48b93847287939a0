/// Register offsets and bit fields of an Intel VT-d remapping unit, from the
/// VT-d specification (chapter 11). The emulated unit decodes them and the
/// driver programs them, as on real hardware.
public enum VTdRegister {
    public static let version = 0x00
    public static let capability = 0x08
    public static let extendedCapability = 0x10
    public static let globalCommand = 0x18
    public static let globalStatus = 0x1C
    public static let rootTableAddress = 0x20
    public static let contextCommand = 0x28
    public static let faultStatus = 0x34
    public static let faultEventControl = 0x38
    public static let invalidationQueueHead = 0x80
    public static let invalidationQueueTail = 0x88
    public static let invalidationQueueAddress = 0x90
    public static let invalidationCompletionStatus = 0x9C
    /// Where the fault recording registers start (CAP.FRO × 16 in this model).
    public static let faultRecordingBase = 0x200
    /// Where the IOTLB invalidation registers start (ECAP.IRO × 16 in this model): past the
    /// largest fault-recording bank (256 × 16 bytes from 0x200), which they must not overlap.
    public static let iotlbRegistersBase = 0x1400
}

public enum VTdGlobal {
    public static let translationEnable: UInt32 = 1 << 31
    public static let setRootTablePointer: UInt32 = 1 << 30
    public static let queuedInvalidationEnable: UInt32 = 1 << 26
}

public enum VTdFaultStatus {
    public static let primaryFaultOverflow: UInt32 = 1 << 0
    public static let primaryPendingFault: UInt32 = 1 << 1
    public static let invalidationQueueError: UInt32 = 1 << 4
}

/// Fault reason codes a VT-d unit writes into a fault record.
public enum VTdFaultReasonCode: UInt8, Error, Sendable, Codable {
    case rootNotPresent = 0x1
    case contextNotPresent = 0x2
    case invalidContext = 0x3
    case beyondAddressWidth = 0x4
    case writeNotPermitted = 0x5
    case readNotPermitted = 0x6
    case invalidNextTable = 0x7
    case reservedBitsInEntry = 0xC

    public var generic: DMAFaultReason {
        switch self {
        case .rootNotPresent, .contextNotPresent: .requesterNotConfigured
        case .invalidContext, .invalidNextTable, .reservedBitsInEntry: .invalidTable
        case .beyondAddressWidth: .beyondAddressWidth
        case .writeNotPermitted, .readNotPermitted: .permissionDenied
        }
    }
}

/// Invalidation descriptor types and fields (VT-d 6.5.2).
public enum VTdDescriptor {
    public static let contextCacheType: UInt64 = 0x1
    public static let iotlbType: UInt64 = 0x2
    public static let deviceTLBType: UInt64 = 0x3
    public static let waitType: UInt64 = 0x5
    /// Granularity field (bits 5:4) values shared by context and IOTLB descriptors.
    public static let globalGranularity: UInt64 = 1 << 4
    public static let domainGranularity: UInt64 = 2 << 4
    public static let pageOrDeviceGranularity: UInt64 = 3 << 4
    /// Wait descriptor: write the status word when done.
    public static let waitStatusWrite: UInt64 = 1 << 5
}

/// Context-entry translation types (bits 3:2 of the low word).
public enum VTdTranslationType: UInt64, Sendable {
    case secondLevelOnly = 0
    case secondLevelWithDeviceTLB = 1
    case passThrough = 2
}

/// Second-level paging-entry bits.
public enum VTdPTE {
    public static let read: UInt64 = 1 << 0
    public static let write: UInt64 = 1 << 1
    public static let pageSize: UInt64 = 1 << 7
    public static let snoop: UInt64 = 1 << 11
    public static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000
}

/// Address widths a VT-d second-level table can have, as the context entry's
/// AW field and CAP.SAGAW encode them.
public enum VTdAddressWidth: Int, Sendable, CaseIterable, Codable {
    case bits39 = 39, bits48 = 48, bits57 = 57

    public var levels: Int { (rawValue - 12) / 9 }
    /// The context-entry AW encoding (1 = 3-level, 2 = 4-level, 3 = 5-level).
    public var contextEncoding: UInt64 { UInt64(levels - 2) }

    public init?(levels: Int) {
        switch levels {
        case 3: self = .bits39
        case 4: self = .bits48
        case 5: self = .bits57
        default: return nil
        }
    }
}
