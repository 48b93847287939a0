/// The three translation granules of the VMSAv8-64 translation table format
/// (Arm ARM D8.2) and the table geometry each implies. Both the emulated SMMU's
/// walker and the LPAE page-table format read their layout from here.
public enum ARMTranslationGranule: UInt64, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case size4K = 0x1000
    case size16K = 0x4000
    case size64K = 0x1_0000

    /// log2 of the granule: the page offset bits.
    @inlinable public var shift: Int { rawValue.trailingZeroBitCount }
    /// Index bits a full table resolves: a table is one granule of 8-byte descriptors.
    @inlinable public var bitsPerLevel: Int { shift - 3 }
    /// Descriptors in a full table.
    @inlinable public var entriesPerTable: Int { 1 << bitsPerLevel }

    /// The address bits below the entries of `level` (0...3): level 3 maps one granule.
    @inlinable public func shift(atLevel level: Int) -> Int { shift + bitsPerLevel * (3 - level) }

    /// Whether a block descriptor is legal at `level` with 48-bit output
    /// addresses: 4K has 1 GiB (level 1) and 2 MiB (level 2) blocks, 16K has
    /// 32 MiB (level 2) blocks, 64K has 512 MiB (level 2) blocks. The larger
    /// 16K and 64K level-1 blocks exist only with 52-bit addresses (FEAT_LPA/LPA2).
    @inlinable public func allowsBlock(atLevel level: Int) -> Bool {
        switch self {
        case .size4K: level == 1 || level == 2
        case .size16K, .size64K: level == 2
        }
    }

    /// The page sizes a table of this granule can map: the granule and its blocks.
    public var pageSizes: [UInt64] {
        [rawValue] + (1...2).filter(allowsBlock(atLevel:)).map { 1 << UInt64(shift(atLevel: $0)) }.sorted()
    }

    /// The level a leaf of `pageSize` bytes lives at, nil when the granule has no such page.
    @inlinable public func level(forPageSize pageSize: UInt64) -> Int? {
        if pageSize == rawValue { return 3 }
        for level in 1...2 where allowsBlock(atLevel: level) && pageSize == 1 << UInt64(shift(atLevel: level)) {
            return level
        }
        return nil
    }

    /// The first level a walk of an `inputBits`-bit address space starts at.
    @inlinable public func startLevel(inputBits: Int) -> Int {
        let levels = (inputBits - shift + bitsPerLevel - 1) / bitsPerLevel
        return 4 - levels
    }

    /// Index bits resolved at `level` for an `inputBits`-bit space: the start level may be a partial table.
    @inlinable public func indexBits(atLevel level: Int, inputBits: Int) -> Int {
        level == startLevel(inputBits: inputBits) ? inputBits - shift(atLevel: level) : bitsPerLevel
    }

    /// The CD.TG0 / TCR.TG0 encoding: 0b00 4 KiB, 0b01 64 KiB, 0b10 16 KiB.
    public var tg0Encoding: UInt64 {
        switch self {
        case .size4K: 0
        case .size64K: 1
        case .size16K: 2
        }
    }

    public init?(tg0Encoding: UInt64) {
        switch tg0Encoding {
        case 0: self = .size4K
        case 1: self = .size64K
        case 2: self = .size16K
        default: return nil
        }
    }

    /// The TG field of a range TLBI command (SMMUv3.2 RIL): 0b01 4 KiB, 0b10 16 KiB, 0b11 64 KiB.
    public var rangeInvalidationEncoding: UInt64 {
        switch self {
        case .size4K: 1
        case .size16K: 2
        case .size64K: 3
        }
    }

    public init?(rangeInvalidationEncoding: UInt64) {
        switch rangeInvalidationEncoding {
        case 1: self = .size4K
        case 2: self = .size16K
        case 3: self = .size64K
        default: return nil
        }
    }

    public var description: String { "\(rawValue >> 10)K" }
}

/// Bits of a VMSAv8-64 stage-1 descriptor (Arm ARM D8.3).
public enum ARMLPAEDescriptor {
    /// Bit 0: the descriptor is valid.
    public static let valid: UInt64 = 1 << 0
    /// Bit 1 at levels 0-2: a table (1) or a block (0); at level 3 it must be 1 (a page).
    public static let tableOrPage: UInt64 = 1 << 1
    /// AttrIndx[2:0], bits 4:2: which MAIR attribute applies.
    public static let attributeIndexShift: UInt64 = 2
    /// AP[1], bit 6: unprivileged (EL0) access allowed. Device transactions are unprivileged here.
    public static let unprivileged: UInt64 = 1 << 6
    /// AP[2], bit 7: read-only.
    public static let readOnly: UInt64 = 1 << 7
    /// SH[1:0], bits 9:8; 0b11 inner shareable.
    public static let innerShareable: UInt64 = 3 << 8
    /// AF, bit 10: the access flag; a walk that finds it clear faults unless the CD disables that.
    public static let accessFlag: UInt64 = 1 << 10
    /// nG, bit 11: not global, so the translation belongs to an ASID.
    public static let notGlobal: UInt64 = 1 << 11
    /// APTable[1], bit 62 of a table descriptor: no write access below.
    public static let tableReadOnly: UInt64 = 1 << 62
    /// APTable[0], bit 61 of a table descriptor: no unprivileged access below.
    public static let tableNoUnprivileged: UInt64 = 1 << 61
    /// Output address bits 47:12 (48-bit OA); the granule masks off its own offset bits.
    public static let outputAddressMask: UInt64 = 0x0000_FFFF_FFFF_F000
    /// OA[51:48] bits that a 48-bit output size requires to be zero.
    public static let wideOutputAddressBits: UInt64 = 0x000F_0000_0000_0000

    /// The MAIR index Linux's io-pgtable uses for normal write-back cacheable memory.
    public static let cacheableAttributeIndex: UInt64 = 1
}
