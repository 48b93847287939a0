/// One VT-d primary fault record, as the fault recording registers hold it.
public struct VTdFaultRecord: Sendable, Hashable, Codable {
    public var sourceID: UInt16
    /// The faulting address with its low 12 bits cleared, as hardware records it.
    public var pageAddress: UInt64
    public var access: AccessKindCode
    public var reason: VTdFaultReasonCode

    public enum AccessKindCode: UInt8, Sendable, Codable { case write = 0, read = 1 }

    /// The 128-bit register image: low word = fault info, high word = SID, reason, type, F.
    public var registerImage: (low: UInt64, high: UInt64) {
        (pageAddress & ~0xFFF,
         UInt64(sourceID) | UInt64(reason.rawValue) << 32 | UInt64(access.rawValue) << 62 | 1 << 63)
    }

    public init(sourceID: UInt16, pageAddress: UInt64, access: AccessKindCode, reason: VTdFaultReasonCode) {
        self.sourceID = sourceID
        self.pageAddress = pageAddress
        self.access = access
        self.reason = reason
    }

    /// Decodes a register image; nil when the F (fault) bit is clear or the reason is unknown.
    public init?(low: UInt64, high: UInt64) {
        guard high >> 63 == 1, let reason = VTdFaultReasonCode(rawValue: UInt8((high >> 32) & 0xFF)) else { return nil }
        self.init(sourceID: UInt16(high & 0xFFFF), pageAddress: low & ~0xFFF,
                  access: (high >> 62) & 1 == 1 ? .read : .write, reason: reason)
    }
}

/// The unit's primary fault logging: a fixed number of recording registers
/// used round robin. When the next one is still full the fault is dropped and
/// the overflow flag is set, exactly the bounded behaviour of the hardware;
/// the overflow *count* is an emulator statistic real hardware does not keep.
struct VTdFaultRecorder {
    private(set) var slots: [VTdFaultRecord?]
    private(set) var nextIndex = 0
    private(set) var overflowed = false
    private(set) var overflowCount: UInt64 = 0
    private(set) var recorded: UInt64 = 0

    init(count: Int) { slots = Array(repeating: nil, count: max(1, min(count, 256))) }

    var pending: Bool { slots.contains { $0 != nil } }

    /// Returns true when the record was stored.
    mutating func record(_ fault: VTdFaultRecord) -> Bool {
        guard slots[nextIndex] == nil else {
            overflowed = true
            overflowCount += 1
            return false
        }
        slots[nextIndex] = fault
        nextIndex = (nextIndex + 1) % slots.count
        recorded += 1
        return true
    }

    mutating func clear(slot: Int) {
        guard slots.indices.contains(slot) else { return }
        slots[slot] = nil
    }

    mutating func clearOverflow() { overflowed = false }
}
