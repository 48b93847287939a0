/// Why a GART access failed.
public enum GARTErrorKind: UInt8, Sendable, Hashable, Codable, CustomStringConvertible {
    /// The GATT entry for the page has its valid bit clear (GartPteErr).
    case invalidEntry = 1
    /// The GATT entry could not be read: the table base points outside memory.
    case tableUnreadable = 2

    public var generic: DMAFaultReason { self == .invalidEntry ? .notPresent : .invalidTable }
    public var description: String { self == .invalidEntry ? "GATT entry not valid" : "GATT unreadable" }
}

/// One GART error as the emulator logs it.
///
/// Real GART hardware has no fault log: an access through an invalid entry
/// sets GartPteErr, raises a northbridge machine-check ("GART table walk
/// error") whose address register holds the bus address, and the request is
/// aborted. The emulator keeps the same facts in a small log so that a driver
/// can report them; the requester is an emulator extra used to route the
/// fault, since the machine-check record does not name the device.
public struct GARTErrorRecord: Sendable, Hashable, Codable {
    public var address: UInt64
    public var requester: UInt16
    public var isWrite: Bool
    public var kind: GARTErrorKind

    public init(address: UInt64, requester: UInt16, isWrite: Bool, kind: GARTErrorKind) {
        self.address = address
        self.requester = requester
        self.isWrite = isWrite
        self.kind = kind
    }

    /// Register image: low = address; high = bit 63 valid, bit 62 write, bits 23:16 kind, bits 15:0 requester.
    public var registerImage: (low: UInt64, high: UInt64) {
        (address, 1 << 63 | (isWrite ? 1 << 62 : 0) | UInt64(kind.rawValue) << 16 | UInt64(requester))
    }

    /// Decodes a register image; nil when the valid bit is clear or the kind unknown.
    public init?(low: UInt64, high: UInt64) {
        guard high >> 63 == 1, let kind = GARTErrorKind(rawValue: UInt8((high >> 16) & 0xFF)) else { return nil }
        self.init(address: low, requester: UInt16(high & 0xFFFF), isWrite: (high >> 62) & 1 == 1, kind: kind)
    }
}

/// The unit's error slots (see ``BoundedRecordLog``).
typealias GARTErrorLog = BoundedRecordLog<GARTErrorRecord>
