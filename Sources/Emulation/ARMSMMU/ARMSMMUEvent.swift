/// Event type codes an SMMUv3 writes into its event queue (IHI 0070, 7.3).
public enum ARMSMMUEventType: UInt8, Error, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case badStreamID = 0x02
    case steFetch = 0x03
    case badSTE = 0x04
    case streamDisabled = 0x06
    case badSubstreamID = 0x08
    case cdFetch = 0x09
    case badCD = 0x0A
    case walkExternalAbort = 0x0B
    case translation = 0x10
    case addressSize = 0x11
    case access = 0x12
    case permission = 0x13

    /// What a device sees when the unit refuses its access for this reason.
    public var generic: DMAFaultReason {
        switch self {
        case .badStreamID, .streamDisabled, .badSubstreamID: .requesterNotConfigured
        case .steFetch, .badSTE, .cdFetch, .badCD, .walkExternalAbort: .invalidTable
        case .translation, .access: .notPresent
        case .addressSize: .beyondAddressWidth
        case .permission: .permissionDenied
        }
    }

    /// The specification's mnemonic, for logs.
    public var description: String {
        switch self {
        case .badStreamID: "C_BAD_STREAMID"
        case .steFetch: "F_STE_FETCH"
        case .badSTE: "C_BAD_STE"
        case .streamDisabled: "F_STREAM_DISABLED"
        case .badSubstreamID: "C_BAD_SUBSTREAMID"
        case .cdFetch: "F_CD_FETCH"
        case .badCD: "C_BAD_CD"
        case .walkExternalAbort: "F_WALK_EABT"
        case .translation: "F_TRANSLATION"
        case .addressSize: "F_ADDR_SIZE"
        case .access: "F_ACCESS"
        case .permission: "F_PERMISSION"
        }
    }
}

/// One 32-byte event record. Word 0: type [7:0], StreamID [63:32]; word 1:
/// RnW [35] (1 = read); word 2: the input address (or, for fetch faults, the
/// address of the structure that could not be fetched).
public struct ARMSMMUEvent: Sendable, Hashable, Codable, CustomStringConvertible {
    public var type: ARMSMMUEventType
    public var streamID: UInt32
    public var isRead: Bool
    public var address: UInt64

    public static let readBit: UInt64 = 1 << 35

    public init(type: ARMSMMUEventType, streamID: UInt32, isRead: Bool, address: UInt64) {
        self.type = type
        self.streamID = streamID
        self.isRead = isRead
        self.address = address
    }

    /// The four little-endian words the unit writes into the queue.
    public var words: (UInt64, UInt64, UInt64, UInt64) {
        (UInt64(type.rawValue) | UInt64(streamID) << 32, isRead ? Self.readBit : 0, address, 0)
    }

    /// Decodes a record; nil when the type code is not one this model emits.
    public init?(words: (UInt64, UInt64, UInt64, UInt64)) {
        guard let type = ARMSMMUEventType(rawValue: UInt8(words.0 & 0xFF)) else { return nil }
        self.init(type: type, streamID: UInt32(words.0 >> 32), isRead: words.1 & Self.readBit != 0, address: words.2)
    }

    public var description: String {
        "\(type) SID \(hex(UInt64(streamID))) \(isRead ? "read" : "write") at \(hex(address))"
    }
}
