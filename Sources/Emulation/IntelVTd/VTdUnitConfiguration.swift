/// The build-time properties of an emulated VT-d unit, which its capability
/// registers advertise to the driver.
public struct VTdUnitConfiguration: Sendable, Hashable {
    /// Address widths (table depths) the unit can walk: CAP.SAGAW.
    public var supportedWidths: Set<VTdAddressWidth> = [.bits48, .bits57]
    /// Host address width: physical addresses wider than this are reserved bits.
    public var hostAddressBits: Int = 46
    public var supports2MPages = true
    public var supports1GPages = true
    public var supportsPassThrough = true
    public var iotlbSets = 64
    public var iotlbWays = 8
    /// Fault recording registers (CAP.NFR + 1), at most 256.
    public var faultRecordCount = 64
    /// Domain-ID bits; CAP.ND encodes 4 + 2·ND bits.
    public var domainIDBits = 16

    public init() {}

    /// The CAP register image.
    public var capabilityRegister: UInt64 {
        var sagaw: UInt64 = 0
        for width in supportedWidths { sagaw |= 1 << UInt64(width.levels - 2) }
        let mgaw = UInt64(supportedWidths.map(\.rawValue).max() ?? 48) - 1
        let nd = UInt64(max(0, min(6, (domainIDBits - 4) / 2)))
        var sllps: UInt64 = 0
        if supports2MPages { sllps |= 1 }
        if supports1GPages { sllps |= 2 }
        let nfr = UInt64(max(1, min(256, faultRecordCount)) - 1)
        let fro = UInt64(VTdRegister.faultRecordingBase / 16)
        return nd | sagaw << 8 | mgaw << 16 | fro << 24 | sllps << 34 | 1 << 39 /* PSI */ | nfr << 40 | 0x3F << 48 /* MAMV */
    }

    /// The ECAP register image: queued invalidation, pass-through, IOTLB register offset.
    public var extendedCapabilityRegister: UInt64 {
        let iro = UInt64(VTdRegister.iotlbRegistersBase / 16)
        return 1 << 1 /* QI */ | (supportsPassThrough ? 1 << 6 : 0) | iro << 8
    }
}

/// Counters the emulated unit keeps; reports read them.
public struct VTdUnitStatistics: Sendable, Hashable, Codable {
    public var translations: UInt64 = 0
    public var iotlbHits: UInt64 = 0
    public var iotlbMisses: UInt64 = 0
    public var pageWalks: UInt64 = 0
    public var contextCacheMisses: UInt64 = 0
    public var pageInvalidations: UInt64 = 0
    public var domainInvalidations: UInt64 = 0
    public var globalInvalidations: UInt64 = 0
    public var contextInvalidations: UInt64 = 0
    public var iotlbEntriesDropped: UInt64 = 0
    public var faultsRecorded: UInt64 = 0
    public var faultsOverflowed: UInt64 = 0
    public var faultsSuppressed: UInt64 = 0
}
