/// Why Calgary refused a DMA access.
public enum CalgaryErrorKind: UInt8, Sendable, Hashable, Codable, CustomStringConvertible {
    /// The bus address lies beyond the PHB's DMA window (or needs a dual address cycle).
    case outsideWindow = 1
    /// The TCE has neither read nor write set.
    case entryNotValid = 2
    /// The TCE does not grant this access (a write to a read-only page, or the reverse).
    case permissionDenied = 3
    /// The TCE could not be read: the TAR points outside memory.
    case tableUnreadable = 4
    /// The requester is on no bus this chip's PHBs decode.
    case unknownBus = 5

    public var generic: DMAFaultReason {
        switch self {
        case .outsideWindow: .beyondAddressWidth
        case .entryNotValid: .notPresent
        case .permissionDenied: .permissionDenied
        case .tableUnreadable: .invalidTable
        case .unknownBus: .requesterNotConfigured
        }
    }

    public var description: String {
        switch self {
        case .outsideWindow: "outside the DMA window"
        case .entryNotValid: "TCE not valid"
        case .permissionDenied: "TCE denies the access"
        case .tableUnreadable: "TCE table unreadable"
        case .unknownBus: "requester on no PHB's bus"
        }
    }
}

/// One refused access as the emulator logs it. Real Calgary latches a DMA
/// error in the PHB's channel status register (which Linux polls from a
/// watchdog timer); the emulator keeps the details in a bounded log as well.
public struct CalgaryErrorRecord: Sendable, Hashable, Codable {
    public var address: UInt64
    public var requester: UInt16
    /// The PHB that refused it; 0xFF when no PHB decodes the requester's bus.
    public var phb: UInt8
    public var isWrite: Bool
    public var kind: CalgaryErrorKind

    public init(address: UInt64, requester: UInt16, phb: UInt8, isWrite: Bool, kind: CalgaryErrorKind) {
        self.address = address
        self.requester = requester
        self.phb = phb
        self.isWrite = isWrite
        self.kind = kind
    }

    /// Register image: low = address; high = bit 63 valid, bit 62 write, bits 39:32 kind, bits 31:24 PHB, bits 15:0 requester.
    public var registerImage: (low: UInt64, high: UInt64) {
        (address, 1 << 63 | (isWrite ? 1 << 62 : 0) | UInt64(kind.rawValue) << 32 | UInt64(phb) << 24 | UInt64(requester))
    }

    /// Decodes a register image; nil when the valid bit is clear or the kind unknown.
    public init?(low: UInt64, high: UInt64) {
        guard high >> 63 == 1, let kind = CalgaryErrorKind(rawValue: UInt8((high >> 32) & 0xFF)) else { return nil }
        self.init(address: low, requester: UInt16(high & 0xFFFF), phb: UInt8((high >> 24) & 0xFF),
                  isWrite: (high >> 62) & 1 == 1, kind: kind)
    }
}

/// The unit's error slots (see ``BoundedRecordLog``).
typealias CalgaryErrorLog = BoundedRecordLog<CalgaryErrorRecord>
