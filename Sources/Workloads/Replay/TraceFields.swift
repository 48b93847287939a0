import DMA

/// The payload keys the replay reads, and how each is printed.
enum TraceField: String, CaseIterable {
    case dir, dmaAddr = "dma_addr", size, physAddr = "phys_addr", dmaAddrs = "dma_addrs", sizes
    case physAddrs = "phys_addrs", iova, paddr, unmappedSize = "unmapped_size", groupID, device

    var bit: UInt32 { UInt32(Self.allCases.firstIndex(of: self) ?? 0) }
}

extension TraceParseState {
    static let fieldNames = ByteNameTable(TraceField.allCases.map(\.rawValue))
    static let fields = TraceField.allCases

    static func field(_ b: Bytes, _ range: Range<Int>) -> TraceField? {
        fieldNames.index(of: b, range).map { fields[$0] }
    }

    /// ``required(_:)`` as bit masks, indexed by the kind's raw value (no array per line).
    static let requiredMasks: [UInt32] = TraceEventKind.allCases.map { kind in
        required(kind).reduce(0) { $0 | 1 << $1.bit }
    }

    /// Keys an event must print for the replay to use it.
    static func required(_ kind: TraceEventKind) -> [TraceField] {
        switch kind {
        case .dmaMapPage, .dmaMapResource: [.dir, .dmaAddr, .size, .physAddr]
        case .dmaUnmapPage, .dmaUnmapResource, .dmaAlloc, .dmaFree, .dmaSyncSingleForCPU, .dmaSyncSingleForDevice:
            [.dir, .dmaAddr, .size]
        case .dmaMapSG: [.dir, .dmaAddrs, .sizes, .physAddrs]
        case .dmaUnmapSG: [.dir, .physAddrs]
        case .dmaSyncSGForCPU, .dmaSyncSGForDevice: [.dir, .dmaAddrs, .sizes]
        case .iommuMap: [.iova, .paddr, .size]
        case .iommuUnmap: [.iova, .size, .unmappedSize]
        case .addDeviceToGroup: [.groupID, .device]
        case .attachDeviceToDomain, .removeDeviceFromGroup: [.device]
        default: []
        }
    }

    /// Stores one key's value; false when the value cannot be read.
    mutating func apply(_ field: TraceField, _ b: Bytes, _ value: Range<Int>, to event: inout TraceEvent) -> Bool {
        switch field {
        case .dir:
            if Self.equals(b, value, "FROM_DEVICE") { event.direction = .fromDevice }
            else if Self.equals(b, value, "TO_DEVICE") { event.direction = .toDevice }
            else if Self.equals(b, value, "BIDIRECTIONAL") || Self.equals(b, value, "NONE") { event.direction = .bidirectional }
            else { return false }
        case .dmaAddr, .iova:
            guard let number = Self.hex(b, value) else { return false }
            event.address = number
        case .physAddr, .paddr:
            guard let number = Self.hex(b, value) else { return false }
            event.physical = number
        case .size:
            guard let (number, stop) = Self.digits(b, value.lowerBound, value.upperBound), stop == value.upperBound else {
                return false
            }
            event.size = number
        case .unmappedSize:
            guard let (number, stop) = Self.digits(b, value.lowerBound, value.upperBound), stop == value.upperBound else {
                return false
            }
            event.physical = number
        case .groupID:
            guard let (number, stop) = Self.digits(b, value.lowerBound, value.upperBound), stop == value.upperBound else {
                return false
            }
            event.group = Int(number)
        case .device:
            event.device = deviceIndex(b, value)
        case .dmaAddrs:
            guard let list = Self.hexList(b, value) else { return false }
            event.busSegments = list
        case .sizes:
            guard let list = Self.hexList(b, value) else { return false }
            event.segmentSizes = list
            event.size = list.reduce(0, &+)
        case .physAddrs:
            guard let list = Self.hexList(b, value) else { return false }
            event.physicalSegments = list
        }
        return true
    }

    // MARK: Byte helpers

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    static func equals(_ b: Bytes, _ range: Range<Int>, _ text: StaticString) -> Bool {
        guard range.count == text.utf8CodeUnitCount else { return false }
        let pointer = text.utf8Start
        for offset in 0..<range.count where pointer[offset] != b[range.lowerBound + offset] { return false }
        return true
    }

    /// Decimal digits from `start`: the value and where they stop; nil when none or on overflow.
    static func digits(_ b: Bytes, _ start: Int, _ end: Int) -> (UInt64, Int)? {
        var value: UInt64 = 0, i = start
        while i < end, isDigit(b[i]) {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(UInt64(b[i] - 0x30))
            if o1 || o2 { return nil }
            value = sum
            i += 1
        }
        return i == start ? nil : (value, i)
    }

    static func skipDigits(_ b: Bytes, _ start: Int, _ end: Int) -> Int {
        var i = start
        while i < end, isDigit(b[i]) { i += 1 }
        return i
    }

    /// Hexadecimal with or without 0x; nil when empty, not hex or wider than 64 bits.
    static func hex(_ b: Bytes, _ range: Range<Int>) -> UInt64? {
        var i = range.lowerBound
        if range.count > 2, b[i] == 0x30, b[i + 1] | 0x20 == UInt8(ascii: "x") { i += 2 }
        guard i < range.upperBound, range.upperBound - i <= 16 else { return nil }
        var value: UInt64 = 0
        while i < range.upperBound {
            let c = b[i]
            let nibble: UInt8
            if isDigit(c) { nibble = c - 0x30 } else if (c | 0x20) >= 0x61, (c | 0x20) <= 0x66 { nibble = (c | 0x20) - 0x57 } else {
                return nil
            }
            value = value << 4 | UInt64(nibble)
            i += 1
        }
        return value
    }

    /// `{0x1,0x2}` (an empty `{}` is an empty list).
    static func hexList(_ b: Bytes, _ range: Range<Int>) -> [UInt64]? {
        guard range.count >= 2, b[range.lowerBound] == UInt8(ascii: "{"), b[range.upperBound - 1] == UInt8(ascii: "}") else {
            return nil
        }
        var list: [UInt64] = []
        var start = range.lowerBound + 1
        let stop = range.upperBound - 1
        while start < stop {
            var comma = start
            while comma < stop, b[comma] != UInt8(ascii: ",") { comma += 1 }
            guard let value = hex(b, start..<comma) else { return nil }
            list.append(value)
            start = comma + 1
        }
        return list
    }

    /// "SECONDS.FRACTION" as microseconds (any number of fraction digits).
    static func timestamp(_ b: Bytes, _ start: Int, _ end: Int) -> UInt64? {
        guard let (seconds, dot) = digits(b, start, end), dot < end, b[dot] == UInt8(ascii: ".") else { return nil }
        var micros: UInt64 = 0, scale: UInt64 = 100_000, i = dot + 1
        while i < end, isDigit(b[i]) {
            micros += UInt64(b[i] - 0x30) * scale
            scale /= 10
            i += 1
        }
        guard i == end, i > dot + 1 else { return nil }
        let (total, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        return overflow ? nil : total + micros
    }

    /// The next space-separated token; a `{...}` list may not contain spaces in ftrace output.
    static func nextToken(_ b: Bytes, _ cursor: inout Int, _ end: Int) -> Range<Int>? {
        while cursor < end, b[cursor] == 0x20 || b[cursor] == 0x09 { cursor += 1 }
        guard cursor < end else { return nil }
        let start = cursor
        while cursor < end, b[cursor] != 0x20, b[cursor] != 0x09 { cursor += 1 }
        return start..<cursor
    }
}
