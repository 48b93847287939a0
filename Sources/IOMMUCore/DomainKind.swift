import Emulation

/// What a domain does with a device's DMA, as Linux's IOMMU_DOMAIN_* types.
public enum DomainKind: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Translated by page tables the DMA layer manages; unmap invalidates before returning.
    case dma
    /// Translated, with deferred (batched) invalidation: the DMA layer's flush queue.
    case dmaLazy = "dma-lazy"
    /// Bus address = physical address; the IOMMU passes everything through.
    case identity
    /// Every access faults.
    case blocked
    /// Translated by tables a caller other than the DMA layer owns (a VFIO-like user).
    case unmanaged

    /// Whether the domain has page tables that map/unmap work on.
    public var translates: Bool { self == .dma || self == .dmaLazy || self == .unmanaged }
    /// Whether the generic DMA layer manages the domain's address space.
    public var usesDMALayer: Bool { self == .dma || self == .dmaLazy }

    public var description: String { rawValue }
}

/// What a device reaches at a bus address outside the domain's aperture.
public enum OutsideApertureBehavior: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// The address goes to memory untranslated (AMD GART).
    case passThrough = "pass-through"
    /// The access faults (IBM Calgary, and every full-width IOMMU).
    case blocked

    public var description: String { rawValue }
}

/// The window of I/O virtual addresses a domain can remap, and what happens outside it.
public struct DomainGeometry: Sendable, Hashable, Codable {
    /// First and last remappable bus address (closed, since it can reach 2^64 - 1).
    public var aperture: ClosedRange<UInt64>
    public var outside: OutsideApertureBehavior
    /// Whether map refuses addresses outside the aperture (Linux's force_aperture).
    public var enforcesAperture: Bool

    public init(aperture: ClosedRange<UInt64>, outside: OutsideApertureBehavior, enforcesAperture: Bool = true) {
        self.aperture = aperture
        self.outside = outside
        self.enforcesAperture = enforcesAperture
    }
}

/// A set of supported page sizes as a bitmap (bit n set = 2^n bytes), the
/// same encoding as Linux's pgsize_bitmap.
public struct PageSizeSet: Sendable, Hashable, Codable, CustomStringConvertible {
    public var bitmap: UInt64

    public init(bitmap: UInt64) { self.bitmap = bitmap }
    public init(_ sizes: [UInt64]) { bitmap = sizes.reduce(0) { $0 | $1 } }

    public var smallest: UInt64 { bitmap == 0 ? 0 : 1 << UInt64(bitmap.trailingZeroBitCount) }
    public var sizes: [UInt64] { (0..<64).compactMap { bitmap >> UInt64($0) & 1 == 1 ? 1 << UInt64($0) : nil } }
    public func contains(_ size: UInt64) -> Bool { size.nonzeroBitCount == 1 && bitmap & size != 0 }

    /// The largest supported page that fits `remaining` bytes and the alignment
    /// of both addresses: how a range is split into pages (Linux's iommu_pgsize).
    @inlinable
    public func largestPage(iova: UInt64, physical: UInt64, remaining: UInt64) -> UInt64 {
        var candidates = bitmap
        let fitMask = remaining >= 1 << 63 ? UInt64.max : (UInt64(1) << UInt64(64 - remaining.leadingZeroBitCount)) &- 1
        candidates &= fitMask
        let alignment = iova | physical
        if alignment != 0 { candidates &= (alignment & (0 &- alignment)) &* 2 &- 1 }
        guard candidates != 0 else { return 0 }
        return 1 << UInt64(63 - candidates.leadingZeroBitCount)
    }

    public var description: String { sizes.map(Self.name).joined(separator: ",") }

    public static func name(_ size: UInt64) -> String {
        if size >= 1 << 30 { return "\(size >> 30)G" }
        if size >= 1 << 20 { return "\(size >> 20)M" }
        if size >= 1 << 10 { return "\(size >> 10)K" }
        return "\(size)"
    }
}
