/// A fixed set of ASCII names looked up by byte range, with no reference
/// counting per lookup (the parser does this for every token of every line).
struct ByteNameTable {
    private let bytes: [UInt8]
    private let entries: [(start: Int, count: Int)]

    init(_ names: [String]) {
        var bytes: [UInt8] = [], entries: [(Int, Int)] = []
        for name in names {
            entries.append((bytes.count, name.utf8.count))
            bytes += name.utf8
        }
        self.bytes = bytes
        self.entries = entries
    }

    /// The index of the name equal to `b[range]`.
    func index(of b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Int? {
        bytes.withUnsafeBufferPointer { table in
            entries.withUnsafeBufferPointer { entries in
                for (index, entry) in entries.enumerated() where entry.count == range.count {
                    var offset = 0
                    while offset < entry.count, table[entry.start + offset] == b[range.lowerBound + offset] { offset += 1 }
                    if offset == entry.count { return index }
                }
                return nil
            }
        }
    }
}
