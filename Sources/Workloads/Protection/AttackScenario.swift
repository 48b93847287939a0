import Emulation
import IOMMUCore

/// A known way for a device to reach memory it was not given, run against one
/// family under one strategy. ``all`` is the registry the command line lists.
public struct AttackScenario: Sendable {
    public var name: String
    /// One line: what the attacker tries.
    public var summary: String
    public var run: @Sendable (AttackContext) throws(PlatformError) -> AttackOutcome

    public init(name: String, summary: String, run: @escaping @Sendable (AttackContext) throws(PlatformError) -> AttackOutcome) {
        self.name = name
        self.summary = summary
        self.run = run
    }

    /// Every scenario, in report order.
    public static let all: [AttackScenario] = [
        .outsideMappings, .useAfterUnmap, .lazyWindow, .subPage, .requesterIDSpoofing, .blockedDomain,
        .reservedRegions, .faultStorm, .wrongDirection,
    ]

    public static func named(_ name: String) -> AttackScenario? { all.first { $0.name == name } }
}

/// What a scenario runs on.
public struct AttackContext: Sendable {
    public var family: IOMMUFamily
    public var strategy: ProtectionStrategy
    /// Faults to provoke in the fault-storm scenario.
    public var stormFaults: Int

    public init(family: IOMMUFamily, strategy: ProtectionStrategy, stormFaults: Int = 100_000) {
        self.family = family
        self.strategy = strategy
        self.stormFaults = stormFaults
    }
}

/// A window through which a policy or a family lets a device reach memory
/// it was not given, by design and documented.
public enum ExposureWindow: String, Sendable, Hashable, Codable, CaseIterable {
    /// A GART passes every address outside its aperture straight to memory.
    case gartPassThrough = "gart-pass-through"
    /// Lazy invalidation: unmapped ranges stay reachable until the flush queue is flushed.
    case lazyFlush = "lazy-flush"
    /// A mapping covers whole IOMMU pages, so the rest of a buffer's page comes with it (trusted devices).
    case pageGranularity = "page-granularity"
    /// Devices the IOMMU cannot tell apart share a group, hence a domain.
    case sharedGroup = "shared-group"
    /// The IOMMU knows a device only by its requester ID; checking it is the switch's job (ACS source validation).
    case requesterID = "requester-id"
    /// The page tables cannot say the direction: GART entries carry only a valid bit, and Arm LPAE cannot
    /// make a page writable but not readable.
    case coarsePermissions = "coarse-permissions"
    /// Shadow buffers copy a from-device buffer's earlier contents into its slot (so bytes the device does not
    /// write come back unchanged, as swiotlb does), and the pool is readable: the device may read them.
    case shadowCopyIn = "shadow-copy-in"
}

/// The outcome of one scenario: what was attempted, what was blocked and what leaked.
public struct AttackOutcome: Sendable, Hashable, Codable {
    public var scenario: String
    public var family: String
    public var strategy: String
    public var attempted: String
    public var attempts = 0
    public var blocked = 0
    /// Accesses that completed inside the device's own shadow pool, which holds only copies of buffers it was
    /// given (or zeros) and what it wrote there itself: nothing it was not given was read or changed.
    public var contained = 0
    /// Faults the hardware raised (as the devices saw them).
    public var faults = 0
    public var bytesAttempted: UInt64 = 0
    /// Bytes moved to or from memory the device was not given, through a documented window.
    public var bytesLeakedInWindows: [String: UInt64] = [:]
    /// Bytes moved to or from memory the device was not given, through no documented window: a protection failure.
    public var bytesLeakedUndocumented: UInt64 = 0
    public var notes: [String] = []
    /// Set when the family cannot run the scenario at all (for example a GART cannot block).
    public var unsupported: String?

    public var bytesLeaked: UInt64 { bytesLeakedUndocumented + bytesLeakedInWindows.values.reduce(0, +) }

    /// "protected", "window: …", "LEAK" or "unsupported".
    public var verdict: String {
        if bytesLeakedUndocumented > 0 { return "LEAK" }
        if unsupported != nil, attempts == 0 { return "unsupported" }
        let windows = bytesLeakedInWindows.filter { $0.value > 0 }.keys.sorted()
        return windows.isEmpty ? "protected" : "window: " + windows.joined(separator: ", ")
    }

    init(scenario: String, context: AttackContext, attempted: String) {
        self.scenario = scenario
        family = context.family.rawValue
        strategy = context.strategy.name
        self.attempted = attempted
    }

    /// Counts one device access of `requested` bytes at memory the device was not given;
    /// `window` names the documented window that would explain a success, nil when it must be blocked.
    /// `pool` says whether the whole access lies in a shadow pool the device reaches: its own (contained)
    /// or another device's in a group it shares (the shared-group window).
    mutating func record(_ result: DMATransferResult, requested: Int, window: ExposureWindow?, pool: ShadowPoolReach? = nil) {
        attempts += 1
        bytesAttempted += UInt64(requested)
        if result.fault != nil { faults += 1 }
        let moved = UInt64(result.bytesTransferred)
        if moved == 0 { blocked += 1; return }
        if pool == .own { contained += 1; return }
        let window = pool == .shared ? .sharedGroup : window
        if let window { bytesLeakedInWindows[window.rawValue, default: 0] += moved } else { bytesLeakedUndocumented += moved }
    }
}

extension AttackOutcome {
    /// Counts an attempt whose leak was measured by content rather than by bytes moved.
    /// `contained`: the access completed, inside the device's own shadow pool.
    mutating func record(attemptOf requested: Int, faulted: Bool, leaked: UInt64, window: ExposureWindow?,
                         contained inPool: Bool = false) {
        attempts += 1
        bytesAttempted += UInt64(requested)
        if faulted { faults += 1 }
        if leaked == 0, inPool, !faulted { contained += 1; return }
        if leaked == 0 { blocked += 1; return }
        if let window { bytesLeakedInWindows[window.rawValue, default: 0] += leaked } else { bytesLeakedUndocumented += leaked }
    }
}
