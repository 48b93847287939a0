#if canImport(Glibc)
import Glibc
#endif
import DMA

/// Reads ftrace text exactly as `cat /sys/kernel/tracing/trace` prints it:
/// `TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: PAYLOAD`, with `#` header lines.
///
/// It works on the raw bytes (no per-line String) because traces run to
/// millions of lines. A line it cannot read is recorded with its number and
/// skipped, or is fatal in strict mode.
public struct TraceParser: Sendable {
    public var strict: Bool

    public init(strict: Bool = false) { self.strict = strict }

    /// Parses a whole trace file.
    /// - Throws: ``TraceParseError/unreadable(path:reason:)``; in strict mode ``TraceParseError/malformed(_:)``.
    public func parse(contentsOf path: String) throws(TraceParseError) -> ParsedTrace {
        let bytes: [UInt8]
        do { bytes = try FileBytes.read(path) } catch { throw .unreadable(path: path, reason: error.description) }
        return try parse(bytes)
    }

    /// Parses trace text.
    /// - Throws: in strict mode ``TraceParseError/malformed(_:)`` for the first unreadable line.
    public func parse(_ text: String) throws(TraceParseError) -> ParsedTrace { try parse(Array(text.utf8)) }

    /// Parses trace bytes.
    /// - Throws: in strict mode ``TraceParseError/malformed(_:)`` for the first unreadable line.
    public func parse(_ bytes: [UInt8]) throws(TraceParseError) -> ParsedTrace {
        var state = TraceParseState()
        // ftrace lines of these events run 120-200 bytes; one reservation avoids regrowth copies.
        state.trace.events.reserveCapacity(bytes.count / 128 + 16)
        let failure: MalformedTraceLine? = bytes.withUnsafeBufferPointer { buffer in
            var start = 0, lineNumber = 0
            while start < buffer.count {
                let end: Int
                if let newline = memchr(buffer.baseAddress! + start, 0x0A, buffer.count - start) {
                    end = buffer.baseAddress!.distance(to: newline.assumingMemoryBound(to: UInt8.self))
                } else {
                    end = buffer.count
                }
                lineNumber += 1
                if let reason = state.parseLine(buffer, start, end, lineNumber) {
                    let bad = MalformedTraceLine(line: lineNumber, reason: reason)
                    if strict { return bad }
                    state.trace.malformed.append(bad)
                }
                start = end + 1
            }
            state.trace.lineCount = lineNumber
            return nil
        }
        if let failure { throw .malformed(failure) }
        state.finishCounts()
        return state.trace
    }
}

/// The parser's working state: results plus lookup tables kept as bytes.
struct TraceParseState {
    var trace = ParsedTrace()
    private var deviceBytes: [[UInt8]] = []
    private var kindCounts = [Int](repeating: 0, count: TraceEventKind.allCases.count)
    private static let namedKinds = TraceEventKind.allCases.filter { $0 != .other }
    private static let kindNames = ByteNameTable(namedKinds.map(\.traceName))

    mutating func finishCounts() {
        for kind in TraceEventKind.allCases where kind != .other && kindCounts[Int(kind.rawValue)] > 0 {
            trace.eventCounts[kind.traceName] = kindCounts[Int(kind.rawValue)]
        }
    }

    typealias Bytes = UnsafeBufferPointer<UInt8>

    /// Returns nil when the line was read (or is a header/blank), else why not.
    mutating func parseLine(_ b: Bytes, _ start: Int, _ rawEnd: Int, _ lineNumber: Int) -> String? {
        var end = rawEnd
        if end > start, b[end - 1] == 0x0D { end -= 1 }
        var i = start
        while i < end, b[i] == 0x20 || b[i] == 0x09 { i += 1 }
        if i == end || b[i] == UInt8(ascii: "#") { return nil }
        // The CPU column: the first "[digits]".
        var bracket = i
        var cpu = -1
        while bracket < end {
            if b[bracket] == UInt8(ascii: "["), let (value, close) = Self.digits(b, bracket + 1, end), close < end,
               b[close] == UInt8(ascii: "]") {
                cpu = Int(value)
                break
            }
            bracket += 1
        }
        guard cpu >= 0 else { return "no [CPU] column" }
        var taskEnd = bracket
        while taskEnd > i, b[taskEnd - 1] == 0x20 { taskEnd -= 1 }
        var dash = taskEnd
        while dash > i, b[dash - 1] != UInt8(ascii: "-") { dash -= 1 }
        guard dash > i, let (pid, pidEnd) = Self.digits(b, dash, taskEnd), pidEnd == taskEnd else {
            return "no TASK-PID before the CPU column"
        }
        var cursor = Self.skipDigits(b, bracket + 1, end) + 1
        // Flags (irq-info) are optional; the timestamp is the token that ends in ':' and starts with a digit.
        var token = Self.nextToken(b, &cursor, end)
        if let first = token, !(Self.isDigit(b[first.lowerBound]) && b[first.upperBound - 1] == UInt8(ascii: ":")) {
            token = Self.nextToken(b, &cursor, end)
        }
        guard let stamp = token, b[stamp.upperBound - 1] == UInt8(ascii: ":"),
              let micros = Self.timestamp(b, stamp.lowerBound, stamp.upperBound - 1) else {
            return "no timestamp"
        }
        guard let name = Self.nextToken(b, &cursor, end), name.count > 1, b[name.upperBound - 1] == UInt8(ascii: ":") else {
            return "no event name after the timestamp"
        }
        let nameRange = name.lowerBound..<(name.upperBound - 1)
        let kind = Self.kind(b, nameRange)
        kindCounts[Int(kind.rawValue)] += 1
        if kind == .other {
            trace.eventCounts[String(decoding: UnsafeBufferPointer(rebasing: b[nameRange]), as: UTF8.self), default: 0] += 1
            return nil
        }
        var event = TraceEvent(kind: kind, line: lineNumber, cpu: cpu, pid: Int(pid), timestampMicros: micros)
        if let reason = parsePayload(b, cursor, end, into: &event) {
            kindCounts[Int(kind.rawValue)] -= 1
            return "\(kind.traceName): \(reason)"
        }
        trace.events.append(event)
        return nil
    }

    private mutating func parsePayload(_ b: Bytes, _ from: Int, _ end: Int, into event: inout TraceEvent) -> String? {
        var cursor = from
        switch event.kind {
        case .tracingMarkWrite, .other, .ioPageFault: return nil
        case .iommuMap, .iommuUnmap, .addDeviceToGroup, .attachDeviceToDomain, .removeDeviceFromGroup:
            guard let prefix = Self.nextToken(b, &cursor, end), Self.equals(b, prefix, "IOMMU:") else {
                return "payload does not start with IOMMU:"
            }
        default:
            guard let device = Self.nextToken(b, &cursor, end) else { return "no device name" }
            event.device = deviceIndex(b, device)
        }
        var seen: UInt32 = 0
        while let token = Self.nextToken(b, &cursor, end) {
            var equals = token.lowerBound
            while equals < token.upperBound, b[equals] != UInt8(ascii: "=") { equals += 1 }
            if equals == token.upperBound {
                if Self.equals(b, token, "[TRUNCATED]") { event.truncated = true }
                continue
            }
            let key = token.lowerBound..<equals, value = (equals + 1)..<token.upperBound
            guard let field = Self.field(b, key) else { continue }
            guard apply(field, b, value, to: &event) else { return "bad value for \(field.rawValue)=" }
            seen |= 1 << field.bit
        }
        let required = Self.requiredMasks[Int(event.kind.rawValue)]
        if seen & required != required {
            for field in Self.required(event.kind) where seen & (1 << field.bit) == 0 { return "missing \(field.rawValue)=" }
        }
        if event.kind == .dmaMapSG, event.busSegments.count != event.segmentSizes.count {
            return "dma_addrs and sizes differ in length"
        }
        if event.kind == .dmaMapSG || event.kind == .dmaMapPage || event.kind == .dmaMapResource
            || event.kind == .dmaUnmapPage || event.kind == .dmaUnmapResource || event.kind == .dmaAlloc
            || event.kind == .dmaFree, event.size == 0 { return "size is zero" }
        return nil
    }

    mutating func deviceIndex(_ b: Bytes, _ range: Range<Int>) -> Int {
        for (index, known) in deviceBytes.enumerated() where known.count == range.count {
            if known.withUnsafeBufferPointer({ k in (0..<k.count).allSatisfy { k[$0] == b[range.lowerBound + $0] } }) {
                return index
            }
        }
        deviceBytes.append(Array(b[range]))
        trace.devices.append(String(decoding: UnsafeBufferPointer(rebasing: b[range]), as: UTF8.self))
        return deviceBytes.count - 1
    }

    private static func kind(_ b: Bytes, _ range: Range<Int>) -> TraceEventKind {
        kindNames.index(of: b, range).map { namedKinds[$0] } ?? .other
    }
}
