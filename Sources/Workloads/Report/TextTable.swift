/// Renders rows as aligned columns for terminal output.
public struct TextTable: Sendable {
    public var headers: [String]
    public var rows: [[String]] = []

    public init(_ headers: [String]) { self.headers = headers }

    public mutating func add(_ row: [String]) { rows.append(row) }

    public func render() -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() where column < widths.count { widths[column] = max(widths[column], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                column == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined(separator: "  ")
        }
        var lines = [line(headers), line(widths.map { String(repeating: "-", count: $0) })]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }
}

func hexString(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

func sizeName(_ size: UInt64) -> String {
    if size >= 1 << 30, size % (1 << 30) == 0 { return "\(size >> 30)G" }
    if size >= 1 << 20, size % (1 << 20) == 0 { return "\(size >> 20)M" }
    if size >= 1 << 10, size % (1 << 10) == 0 { return "\(size >> 10)K" }
    return "\(size)"
}
