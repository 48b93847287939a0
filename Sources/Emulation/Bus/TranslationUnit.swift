/// Why the IOMMU refused a device access. Each hardware family records its
/// own reason codes in its own fault log; this is what the device sees.
public enum DMAFaultReason: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// No valid entry translates the address (not present / not mapped).
    case notPresent
    /// An entry exists but does not grant the access (read or write).
    case permissionDenied
    /// The address is wider than the page table or aperture can express.
    case beyondAddressWidth
    /// The requester is not set up in the unit (no root, context or device table entry).
    case requesterNotConfigured
    /// The requester is deliberately blocked.
    case blocked
    /// The tables the unit read are malformed (reserved bits, bad pointers).
    case invalidTable

    public var description: String { rawValue }
}

/// A successful translation of one device access.
public struct Translation: Sendable, Hashable {
    /// Where the accessed byte lives.
    public var physical: PhysicalAddress
    /// How many bytes from `physical` on the same translation covers, so a
    /// device can move a run of bytes within one page without asking again.
    public var contiguousBytes: UInt64
    /// Whether the unit answered from its translation cache.
    public var cached: Bool

    @inlinable public init(physical: PhysicalAddress, contiguousBytes: UInt64, cached: Bool) {
        self.physical = physical
        self.contiguousBytes = contiguousBytes
        self.cached = cached
    }
}

/// What the unit decided about one access.
public enum TranslationOutcome: Sendable, Hashable {
    case translated(Translation)
    case faulted(DMAFaultReason)
}

/// An IOMMU hardware unit as the bus sees it: something that translates
/// (or refuses) each device access. Each family's unit implements it by
/// reading the tables its driver wrote into emulated memory.
public protocol TranslationUnit: AnyObject, Sendable {
    /// A short name for reports ("dmar0", "AMD-Vi0").
    var name: String { get }
    /// Translates one access of `requester` at bus address `address`,
    /// recording a fault in the unit's own log when it refuses.
    func translate(_ address: IOVirtualAddress, requester: PCIAddress, access: BusAccess) -> TranslationOutcome
}
