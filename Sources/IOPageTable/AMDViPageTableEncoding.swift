import Emulation

/// Bit-level encoding of AMD-Vi v1 host page-table entries (AMD IOMMU
/// specification #48882, "I/O Page Tables for Host Translations"): bit 0
/// present, bits 11:9 the next level (0 a page of the level's natural
/// size, 1–6 a lower table, 7 a page whose size the address field encodes),
/// bits 51:12 the address, bit 60 force-coherent, bit 61 read, bit 62 write.
public enum AMDViPageTableEncoding {
    /// The largest page the 40-bit address field can encode (bits 51:12).
    public static let largestPageShift = 51
    /// 512 GiB pages are left out, as Linux does, because of a hardware erratum.
    public static let erratumPageSize: UInt64 = 1 << 39

    /// Bits 11:0 = 12 + 9 × (level − 1): the bytes one entry of `level` maps naturally.
    @inline(__always)
    public static func naturalShift(level: Int) -> Int { 12 + 9 * (level - 1) }

    /// The level whose entries hold a page of `pageSize` and how many
    /// consecutive entries it fills there (2^((log2 size − 12) mod 9)).
    @inline(__always)
    public static func placement(of pageSize: UInt64) -> (level: Int, count: Int) {
        let shift = pageSize.trailingZeroBitCount
        return ((shift - 12) / 9 + 1, 1 << ((shift - 12) % 9))
    }

    /// Every page size a table of `levels` levels can map: each power of two
    /// from 4 KiB up to what the top level's entries and the address field
    /// can express, without 512 GiB.
    public static func pageSizes(levels: Int) -> UInt64 {
        let top = min(largestPageShift, naturalShift(level: levels) + 8)
        var bitmap: UInt64 = 0
        for shift in 12...top { bitmap |= 1 << UInt64(shift) }
        return bitmap & ~erratumPageSize
    }

    /// A directory entry pointing at a table of level `nextLevel`, with both
    /// permissions so that the leaf decides.
    public static func directoryEntry(table: UInt64, nextLevel: Int) -> UInt64 {
        (table & AMDViPTE.addressMask) | UInt64(nextLevel) << AMDViPTE.nextLevelShift | AMDViPTE.present
            | AMDViPTE.readPermission | AMDViPTE.writePermission
    }

    /// A leaf: next level 0 for a page of its level's natural size; next
    /// level 7 for sizes between the natural ones, with the address bits
    /// below the size set except the highest, which marks the size.
    public static func leafEntry(physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) -> UInt64 {
        var entry = AMDViPTE.present | AMDViPTE.forceCoherent
        if permissions.contains(.read) { entry |= AMDViPTE.readPermission }
        if permissions.contains(.write) { entry |= AMDViPTE.writePermission }
        if placement(of: pageSize).count == 1 {
            return entry | (physical & AMDViPTE.addressMask)
        }
        let encoded = (physical | (pageSize - 1)) & ~(pageSize >> 1)
        return entry | (encoded & AMDViPTE.addressMask) | AMDViPTE.nextLevelLargePage << AMDViPTE.nextLevelShift
    }

    @inlinable @inline(__always)
    public static func nextLevel(_ entry: UInt64) -> Int { Int((entry & AMDViPTE.nextLevelMask) >> AMDViPTE.nextLevelShift) }

    /// Whether a present entry at `level` points at a lower table (rather than being a page).
    @inlinable @inline(__always)
    public static func isDirectory(_ entry: UInt64, level: Int) -> Bool {
        let next = nextLevel(entry)
        return entry & AMDViPTE.present != 0 && next != 0 && next != 7 && next < level
    }

    /// The page size a present leaf at `level` maps; nil for an illegal encoding.
    @inlinable
    public static func leafShift(_ entry: UInt64, level: Int) -> Int? {
        let natural = naturalShift(level: level)
        switch nextLevel(entry) {
        case 0: return natural
        case 7:
            let shift = 12 + (~((entry & AMDViPTE.addressMask) >> 12)).trailingZeroBitCount + 1
            return shift > natural && shift < natural + 9 && shift <= 52 ? shift : nil
        default: return nil
        }
    }

    @inlinable @inline(__always)
    public static func permissions(_ entry: UInt64) -> AccessPermissions {
        var permissions: AccessPermissions = []
        if entry & AMDViPTE.readPermission != 0 { permissions.insert(.read) }
        if entry & AMDViPTE.writePermission != 0 { permissions.insert(.write) }
        return permissions
    }
}
