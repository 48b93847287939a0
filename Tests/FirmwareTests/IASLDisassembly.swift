import Foundation

/// The fields of an `iasl -d` disassembly (.dsl), parsed from its text.
///
/// Each field line looks like
/// `[0A4h 0164 001h]                Enumeration ID : 00` or
/// `[030h 0048 002h]               Subtable Type : 0000 [Hardware Unit Definition]`.
/// Lines without a `[offset]` prefix (decoded flag bits) are ignored.
struct IASLDisassembly {
    struct Field: Equatable {
        let offset: Int
        let width: Int
        let name: String
        /// The value text: a string without its quotes, or the hex digits
        /// with any trailing `[description]` dropped.
        let value: String
    }

    let fields: [Field]
    /// iasl gave up part-way (unknown subtable, or a subtable it could not decode).
    let stoppedEarly: Bool

    init(_ text: String) {
        var fields: [Field] = []
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = Substring(rawLine)
            guard line.hasPrefix("["), let close = line.firstIndex(of: "]") else { continue }
            let numbers = line[line.index(after: line.startIndex)..<close].split(separator: " ")
            guard numbers.count == 3, numbers[0].hasSuffix("h"), numbers[2].hasSuffix("h"),
                  let offset = Int(numbers[0].dropLast(), radix: 16),
                  let width = Int(numbers[2].dropLast(), radix: 16) else { continue }
            let rest = line[line.index(after: close)...]
            guard let colon = rest.range(of: " : ") else { continue }
            let name = rest[..<colon.lowerBound].trimmingCharacters(in: .whitespaces)
            var value = Substring(rest[colon.upperBound...])
            if value.hasPrefix("\"") {
                let body = value.dropFirst()
                value = body.firstIndex(of: "\"").map { body[..<$0] } ?? body
            } else {
                if let bracket = value.range(of: " [") { value = value[..<bracket.lowerBound] }
                value = Substring(value.trimmingCharacters(in: .whitespaces))
            }
            fields.append(Field(offset: offset, width: width, name: name, value: String(value)))
        }
        self.fields = fields
        self.stoppedEarly = text.contains("Unknown IVRS subtable type") || text.contains("terminates early")
    }

    /// First byte after the last decoded field; fields past it were not decoded by iasl.
    var decodedEnd: Int {
        fields.map { $0.offset + $0.width }.max() ?? 0
    }
}
