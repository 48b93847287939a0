/// Why a DMAR or IVRS table could not be decoded.
///
/// Every case names the structure and the byte offset (from the start of the
/// table) where decoding stopped, so a report can point at the exact bytes.
/// Parsing never traps on hostile input: any inconsistency ends as one of these.
public enum FirmwareTableError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the fixed part of the table (ACPI header plus the
    /// table's own fixed fields).
    case tooShort(available: Int, needed: Int)
    /// The first four bytes are not a signature this module decodes.
    case unknownSignature(found: [UInt8])
    /// The signature is not the one the caller asked for.
    case signatureMismatch(expected: String, found: [UInt8])
    /// The header's Length field disagrees with the number of bytes given
    /// (a truncated or overlong table).
    case tableLengthMismatch(declared: UInt32, available: Int)
    /// The bytes of the table do not sum to zero modulo 256 (strict mode only;
    /// by default a bad checksum is reported in `checksumValid`).
    case checksumMismatch(stored: UInt8, sum: UInt8)
    /// A structure's length field is smaller than its fixed part (or zero).
    case lengthTooSmall(structure: String, offset: Int, length: Int, minimum: Int)
    /// A structure claims more bytes than its container has left.
    case structureOverrun(structure: String, offset: Int, length: Int, containerEnd: Int)
    /// Bytes left over inside a container that are too few to form a structure.
    case trailingBytes(structure: String, offset: Int, count: Int)
    /// An IVHD device entry type whose size this decoder cannot know.
    case unknownEntryLength(structure: String, offset: Int, type: UInt8)
    /// Fields that are each well formed but contradict one another
    /// (an end address below its start, a range end without a start, ...).
    case inconsistent(structure: String, offset: Int, reason: String)

    /// The byte offset in the table the error refers to.
    public var offset: Int {
        switch self {
        case .tooShort, .unknownSignature, .signatureMismatch, .tableLengthMismatch: return 0
        case .checksumMismatch: return 9
        case .lengthTooSmall(_, let offset, _, _), .structureOverrun(_, let offset, _, _),
             .trailingBytes(_, let offset, _), .unknownEntryLength(_, let offset, _),
             .inconsistent(_, let offset, _):
            return offset
        }
    }

    public var description: String {
        switch self {
        case let .tooShort(available, needed):
            return "table too short: \(available) bytes, at least \(needed) needed (offset 0x0)"
        case let .unknownSignature(found):
            return "unknown table signature \(ACPIString(found).quoted) at offset 0x0 (expected DMAR or IVRS)"
        case let .signatureMismatch(expected, found):
            return "signature \(ACPIString(found).quoted) at offset 0x0, expected \"\(expected)\""
        case let .tableLengthMismatch(declared, available):
            return "ACPI header at offset 0x0: Length field says \(declared) bytes but \(available) bytes were given"
        case let .checksumMismatch(stored, sum):
            return "ACPI header checksum byte at offset 0x9 (0x\(hex(stored))) is wrong: table bytes sum to 0x\(hex(sum)), not 0"
        case let .lengthTooSmall(structure, offset, length, minimum):
            return "\(structure) at offset 0x\(hex(offset)): length \(length) is smaller than the minimum \(minimum)"
        case let .structureOverrun(structure, offset, length, end):
            return "\(structure) at offset 0x\(hex(offset)): length \(length) runs past the end of its container at offset 0x\(hex(end))"
        case let .trailingBytes(structure, offset, count):
            return "\(structure) at offset 0x\(hex(offset)): \(count) trailing byte(s) too short to form a structure"
        case let .unknownEntryLength(structure, offset, type):
            return "\(structure) at offset 0x\(hex(offset)): device entry type 0x\(hex(type)) has no known length"
        case let .inconsistent(structure, offset, reason):
            return "\(structure) at offset 0x\(hex(offset)): \(reason)"
        }
    }
}

/// Lower-case hexadecimal without prefix.
@inline(__always)
func hex<T: BinaryInteger>(_ value: T) -> String { String(value, radix: 16) }

/// Lower-case hexadecimal, zero-padded to `digits`.
func hex<T: BinaryInteger>(_ value: T, digits: Int) -> String {
    let text = String(value, radix: 16)
    return text.count >= digits ? text : String(repeating: "0", count: digits - text.count) + text
}
