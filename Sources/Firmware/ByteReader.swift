/// Little-endian reads over a table's bytes that can never trap.
///
/// Parsers check every structure's extent against its container before
/// reading its fields; as a second line of defence each read returns zero for
/// an offset outside the buffer instead of trapping.
struct ByteReader: Sendable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }

    func u8(_ offset: Int) -> UInt8 {
        offset >= 0 && offset < bytes.count ? bytes[offset] : 0
    }

    func u16(_ offset: Int) -> UInt16 {
        UInt16(u8(offset)) | UInt16(u8(offset &+ 1)) << 8
    }

    func u32(_ offset: Int) -> UInt32 {
        UInt32(u16(offset)) | UInt32(u16(offset &+ 2)) << 16
    }

    func u64(_ offset: Int) -> UInt64 {
        UInt64(u32(offset)) | UInt64(u32(offset &+ 4)) << 32
    }

    /// Little-endian unsigned integer of `width` (0...8) bytes.
    func uint(_ offset: Int, width: Int) -> UInt64 {
        var value: UInt64 = 0
        var index = min(max(width, 0), 8)
        while index > 0 {
            index -= 1
            value = value << 8 | UInt64(u8(offset &+ index))
        }
        return value
    }

    /// `count` bytes from `offset`, clipped to the buffer.
    func slice(_ offset: Int, _ count: Int) -> [UInt8] {
        guard offset >= 0, count > 0, offset < bytes.count else { return [] }
        let end = offset + min(count, bytes.count - offset)
        return Array(bytes[offset..<end])
    }

    /// Throws unless `[offset, offset + length)` lies inside `[0, end)` and
    /// `length >= minimum`. `end` is the end of the enclosing structure.
    func require(_ structure: String, offset: Int, length: Int, minimum: Int, end: Int) throws(FirmwareTableError) {
        if length < minimum || length <= 0 {
            throw .lengthTooSmall(structure: structure, offset: offset, length: length, minimum: minimum)
        }
        let limit = min(end, bytes.count)
        if offset < 0 || offset > limit || length > limit - offset {
            throw .structureOverrun(structure: structure, offset: offset, length: length, containerEnd: end)
        }
    }
}
