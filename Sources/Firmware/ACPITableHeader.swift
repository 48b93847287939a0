/// A fixed-width ACPI text field (OEM ID, creator ID, ...) kept as raw bytes.
///
/// Firmware puts NUL padding and sometimes binary bytes in these fields, so
/// the bytes are the truth and `text` is a readable rendering: trailing NULs
/// dropped, anything outside printable ASCII written as `\xNN`.
public struct ACPIString: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The field's bytes exactly as in the table.
    public let bytes: [UInt8]
    /// Printable rendering (see the type's documentation).
    public let text: String

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        var end = bytes.count
        while end > 0 && bytes[end - 1] == 0 { end -= 1 }
        var out = ""
        for byte in bytes[0..<end] {
            if byte >= 0x20 && byte < 0x7F && byte != 0x5C {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else if byte == 0x5C {
                out += "\\"
            } else {
                out += "\\x" + hex(byte, digits: 2)
            }
        }
        self.text = out
    }

    /// True when every byte (ignoring trailing NULs) is printable ASCII.
    public var isPrintableASCII: Bool {
        var end = bytes.count
        while end > 0 && bytes[end - 1] == 0 { end -= 1 }
        return bytes[0..<end].allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    public var description: String { text }
    var quoted: String { "\"" + text + "\"" }
}

/// The 36-byte header every ACPI system description table starts with.
public struct ACPITableHeader: Sendable, Hashable, Codable {
    /// Four-character signature ("DMAR", "IVRS").
    public let signature: String
    /// Length of the whole table in bytes, header included.
    public let length: UInt32
    public let revision: UInt8
    /// The checksum byte as stored (chosen so all bytes sum to 0 mod 256).
    public let checksum: UInt8
    public let oemID: ACPIString
    public let oemTableID: ACPIString
    public let oemRevision: UInt32
    /// "ASL compiler ID" in iasl's words: the tool that built the table.
    public let creatorID: ACPIString
    public let creatorRevision: UInt32

    /// Size of the header in bytes.
    public static let size = 36
}

/// How strict the parsers are about things real firmware gets wrong.
///
/// Checksum policy: by default a checksum mismatch is **not** fatal. Linux
/// only warns about it, and shipping firmware has been seen with stale
/// checksums after a BIOS patched a table in place; the mismatch is reported
/// in the parsed table's `checksumValid`. With `strictChecksum` it is an
/// error (`FirmwareTableError.checksumMismatch`). Lengths are always checked.
public struct FirmwareParseOptions: Sendable, Hashable {
    public var strictChecksum: Bool

    public init(strictChecksum: Bool = false) { self.strictChecksum = strictChecksum }

    /// Checksum mismatches are reported, not fatal (the default).
    public static let lenient = FirmwareParseOptions()
    /// Checksum mismatches are errors.
    public static let strict = FirmwareParseOptions(strictChecksum: true)
}

extension ACPITableHeader {
    /// Decodes and validates the header of a table with `signature`.
    ///
    /// Checks that the buffer holds at least `minimumLength` bytes, that the
    /// Length field equals the buffer size and, in strict mode, the checksum.
    /// Returns the header and whether the checksum is valid.
    static func parse(_ reader: ByteReader, signature expected: String, minimumLength: Int,
                      options: FirmwareParseOptions) throws(FirmwareTableError) -> (ACPITableHeader, Bool) {
        guard reader.count >= 4 else { throw .tooShort(available: reader.count, needed: minimumLength) }
        let signatureBytes = reader.slice(0, 4)
        guard signatureBytes == Array(expected.utf8) else {
            throw .signatureMismatch(expected: expected, found: signatureBytes)
        }
        guard reader.count >= minimumLength else {
            throw .tooShort(available: reader.count, needed: minimumLength)
        }
        let length = reader.u32(4)
        guard UInt64(length) == UInt64(reader.count) else {
            throw .tableLengthMismatch(declared: length, available: reader.count)
        }
        var sum: UInt8 = 0
        for byte in reader.bytes { sum &+= byte }
        let checksum = reader.u8(9)
        if sum != 0 && options.strictChecksum {
            throw .checksumMismatch(stored: checksum, sum: sum)
        }
        let header = ACPITableHeader(
            signature: expected, length: length, revision: reader.u8(8), checksum: checksum,
            oemID: ACPIString(reader.slice(10, 6)), oemTableID: ACPIString(reader.slice(16, 8)),
            oemRevision: reader.u32(24), creatorID: ACPIString(reader.slice(28, 4)),
            creatorRevision: reader.u32(32))
        return (header, sum == 0)
    }
}

/// Any structure whose type the decoder does not know, skipped by its length.
public struct FirmwareUnknownStructure: Sendable, Hashable, Codable {
    /// Offset of the structure from the start of the table.
    public let offset: Int
    public let type: UInt16
    public let length: Int
    /// The structure's bytes (header included), for reports and tests.
    public let bytes: [UInt8]
}
