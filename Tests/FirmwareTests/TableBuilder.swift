/// Builds small synthetic DMAR / IVRS tables for tests, with correct
/// lengths and checksums unless a test breaks them on purpose.
enum TableBuilder {
    static func le(_ value: UInt64, _ width: Int) -> [UInt8] {
        (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    static func header(_ signature: String, length: Int, revision: UInt8 = 1) -> [UInt8] {
        Array(signature.utf8) + le(UInt64(length), 4) + [revision, 0] + Array("TESTER".utf8)
            + Array("TABLE001".utf8) + le(1, 4) + Array("SWFT".utf8) + le(0x20260101, 4)
    }

    /// Sets byte 9 so that all bytes sum to zero.
    static func fixChecksum(_ bytes: inout [UInt8]) {
        guard bytes.count > 9 else { return }
        bytes[9] = 0
        var sum: UInt8 = 0
        for byte in bytes { sum &+= byte }
        bytes[9] = 0 &- sum
    }

    /// Writes a little-endian value and re-fixes the checksum.
    static func patch(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64, width: Int) {
        for (index, byte) in le(value, width).enumerated() where offset + index < bytes.count {
            bytes[offset + index] = byte
        }
        fixChecksum(&bytes)
    }

    // MARK: DMAR

    static func dmar(haw: UInt8 = 38, flags: UInt8 = 1, _ structures: [[UInt8]]) -> [UInt8] {
        let body = structures.flatMap { $0 }
        var bytes = header("DMAR", length: 48 + body.count) + [haw, flags] + [UInt8](repeating: 0, count: 10) + body
        fixChecksum(&bytes)
        return bytes
    }

    static func structure(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        le(UInt64(type), 2) + le(UInt64(payload.count + 4), 2) + payload
    }

    static func scope(_ type: UInt8, id: UInt8 = 0, bus: UInt8, _ path: [(UInt8, UInt8)], flags: UInt8 = 0) -> [UInt8] {
        [type, UInt8(6 + 2 * path.count), flags, 0, id, bus] + path.flatMap { [$0.0, $0.1] }
    }

    static func drhd(flags: UInt8 = 0, segment: UInt16 = 0, base: UInt64, _ scopes: [[UInt8]] = []) -> [UInt8] {
        structure(0, [flags, 0] + le(UInt64(segment), 2) + le(base, 8) + scopes.flatMap { $0 })
    }

    static func rmrr(segment: UInt16 = 0, base: UInt64, limit: UInt64, _ scopes: [[UInt8]]) -> [UInt8] {
        structure(1, [0, 0] + le(UInt64(segment), 2) + le(base, 8) + le(limit, 8) + scopes.flatMap { $0 })
    }

    // MARK: IVRS

    static func ivrs(info: UInt32 = 0x0020_3041, _ subtables: [[UInt8]]) -> [UInt8] {
        let body = subtables.flatMap { $0 }
        var bytes = header("IVRS", length: 48 + body.count, revision: 2) + le(UInt64(info), 4)
            + [UInt8](repeating: 0, count: 8) + body
        fixChecksum(&bytes)
        return bytes
    }

    static func ivhd(type: UInt8 = 0x10, deviceID: UInt16 = 2, base: UInt64 = 0xFEB8_0000, segment: UInt16 = 0,
                     _ entries: [[UInt8]]) -> [UInt8] {
        let extra = type == 0x10 ? le(0x8004_8F6E, 4) : le(0x48000, 4) + le(0x1234_5678_9ABC_DEF0, 8) + le(0x10, 8)
        let fixed = le(UInt64(deviceID), 2) + le(0x40, 2) + le(base, 8) + le(UInt64(segment), 2) + le(0, 2) + extra
        let body = entries.flatMap { $0 }
        return [type, 0xB0] + le(UInt64(4 + fixed.count + body.count), 2) + fixed + body
    }

    static func entry4(_ type: UInt8, _ deviceID: UInt16, dte: UInt8 = 0) -> [UInt8] {
        [type] + le(UInt64(deviceID), 2) + [dte]
    }

    static func alias(_ type: UInt8, _ deviceID: UInt16, source: UInt16) -> [UInt8] {
        [type] + le(UInt64(deviceID), 2) + [0, 0] + le(UInt64(source), 2) + [0]
    }

    static func extended(_ type: UInt8, _ deviceID: UInt16, data: UInt32) -> [UInt8] {
        [type] + le(UInt64(deviceID), 2) + [0] + le(UInt64(data), 4)
    }

    static func special(handle: UInt8, source: UInt16, variety: UInt8) -> [UInt8] {
        [0x48, 0, 0, 0, handle] + le(UInt64(source), 2) + [variety]
    }

    static func acpiHID(_ deviceID: UInt16, hid: String, cid: UInt64 = 0, uidFormat: UInt8, uid: [UInt8]) -> [UInt8] {
        var hidBytes = Array(hid.utf8.prefix(8))
        hidBytes += [UInt8](repeating: 0, count: 8 - hidBytes.count)
        return [0xF0] + le(UInt64(deviceID), 2) + [0x40] + hidBytes + le(cid, 8) + [uidFormat, UInt8(uid.count)] + uid
    }

    static func ivmd(type: UInt8, flags: UInt8, deviceID: UInt16 = 0, aux: UInt16 = 0, segment: UInt16 = 0,
                     start: UInt64, length: UInt64) -> [UInt8] {
        [type, flags] + le(32, 2) + le(UInt64(deviceID), 2) + le(UInt64(aux), 2) + le(UInt64(segment), 2)
            + [UInt8](repeating: 0, count: 6) + le(start, 8) + le(length, 8)
    }
}
