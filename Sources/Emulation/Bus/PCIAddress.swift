/// A PCI function's address, segment:bus:device.function. Its low 16 bits
/// (bus, device, function) are the requester ID a device puts on every
/// transaction, which is how an IOMMU tells devices apart.
public struct PCIAddress: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public var segment: UInt16
    public var bus: UInt8
    public var device: UInt8
    public var function: UInt8

    /// - Throws: ``PCIAddressError`` when device > 31 or function > 7.
    public init(segment: UInt16 = 0, bus: UInt8, device: UInt8, function: UInt8) throws(PCIAddressError) {
        guard device < 32, function < 8 else { throw .fieldOutOfRange(device: device, function: function) }
        self.segment = segment
        self.bus = bus
        self.device = device
        self.function = function
    }

    /// Rebuilds an address from a segment and a 16-bit requester ID; never fails.
    public init(segment: UInt16 = 0, requesterID: UInt16) {
        self.segment = segment
        bus = UInt8(requesterID >> 8)
        device = UInt8((requesterID >> 3) & 0x1F)
        function = UInt8(requesterID & 7)
    }

    /// Parses `SSSS:BB:DD.F` or `BB:DD.F` (hexadecimal, as lspci prints).
    /// - Throws: ``PCIAddressError/malformed(_:)``.
    public init(parsing text: String) throws(PCIAddressError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3,
              let tail = parts.last, let dot = tail.firstIndex(of: ".") else { throw .malformed(text) }
        let segmentText = parts.count == 3 ? parts[0] : "0"
        let busText = parts[parts.count - 2]
        guard let segment = UInt16(segmentText, radix: 16), let bus = UInt8(busText, radix: 16),
              let device = UInt8(tail[..<dot], radix: 16), let function = UInt8(tail[tail.index(after: dot)...], radix: 16),
              device < 32, function < 8 else { throw .malformed(text) }
        self.segment = segment
        self.bus = bus
        self.device = device
        self.function = function
    }

    public var requesterID: UInt16 { UInt16(bus) << 8 | UInt16(device) << 3 | UInt16(function) }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.segment, lhs.requesterID) < (rhs.segment, rhs.requesterID)
    }

    public var description: String {
        func pad(_ value: some BinaryInteger, _ width: Int) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(segment, 4)):\(pad(bus, 2)):\(pad(device, 2)).\(function)"
    }
}

public enum PCIAddressError: Error, Equatable, Sendable, CustomStringConvertible {
    case fieldOutOfRange(device: UInt8, function: UInt8)
    case malformed(String)

    public var description: String {
        switch self {
        case let .fieldOutOfRange(device, function):
            "PCI device \(device) must be below 32 and function \(function) below 8"
        case let .malformed(text):
            "'\(text)' is not a PCI address (expected SSSS:BB:DD.F or BB:DD.F in hex)"
        }
    }
}
