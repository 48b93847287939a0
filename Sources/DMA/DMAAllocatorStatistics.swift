import IOMMUCore
import IOVA

/// What a translated domain's IOVA allocator did, whichever ``IOVAPlacement`` it uses.
public struct DMAAllocatorStatistics: Sendable, Hashable, Codable {
    /// `native` or `linux` (``IOVAPlacement/name``); `mixed` for a sum over domains of both kinds.
    public var placement: String
    /// Allocations served from a per-thread (native) or per-CPU (linux) cache or its depot.
    public var cacheHits: UInt64
    /// Cacheable allocations that had to search the range tree.
    public var cacheMisses: UInt64
    /// `cacheHits / (cacheHits + cacheMisses)`, 0 when there were none.
    public var cacheHitRate: Double
    /// Allocations of PCI devices with a wide mask placed below 4 GiB by the 32-bit-first try.
    public var preferredHits: UInt64
    /// 32-bit-first tries that failed and fell back to the full mask (Linux then stops trying).
    public var preferredFallbacks: UInt64
    /// Times a failed search emptied every cache into the tree and searched again.
    public var cacheDrains: UInt64

    public init(placement: String, cacheHits: UInt64 = 0, cacheMisses: UInt64 = 0, preferredHits: UInt64 = 0,
                preferredFallbacks: UInt64 = 0, cacheDrains: UInt64 = 0) {
        self.placement = placement
        self.cacheHits = cacheHits
        self.cacheMisses = cacheMisses
        self.preferredHits = preferredHits
        self.preferredFallbacks = preferredFallbacks
        self.cacheDrains = cacheDrains
        let lookups = cacheHits + cacheMisses
        cacheHitRate = lookups == 0 ? 0 : Double(cacheHits) / Double(lookups)
    }

    init(native: IOVAStatistics) {
        self.init(placement: IOVAPlacement.native.name, cacheHits: native.cacheHits, cacheMisses: native.cacheMisses,
                  preferredHits: native.preferredHits, preferredFallbacks: native.preferredFallbacks,
                  cacheDrains: native.exhaustionRetries)
    }

    init(linux: LinuxIOVAStatistics) {
        self.init(placement: "linux", cacheHits: linux.cacheHits, cacheMisses: linux.cacheMisses,
                  preferredHits: linux.preferredHits, preferredFallbacks: linux.preferredFallbacks,
                  cacheDrains: linux.cacheFlushes)
    }

    /// Sums two domains' counters.
    public static func + (lhs: Self, rhs: Self) -> Self {
        Self(placement: lhs.placement == rhs.placement ? lhs.placement : "mixed",
             cacheHits: lhs.cacheHits + rhs.cacheHits, cacheMisses: lhs.cacheMisses + rhs.cacheMisses,
             preferredHits: lhs.preferredHits + rhs.preferredHits,
             preferredFallbacks: lhs.preferredFallbacks + rhs.preferredFallbacks,
             cacheDrains: lhs.cacheDrains + rhs.cacheDrains)
    }
}

extension DeviceDMA {
    /// The IOVA allocator statistics of the device's translated domain (shared by every device
    /// in it); nil when the device is not translated.
    public var allocatorStatistics: DMAAllocatorStatistics? {
        guard case let .translated(state) = route else { return nil }
        return state.allocatorStatistics
    }

    /// Who places IOVAs in the device's translated domain; nil when the device is not translated.
    public var iovaPlacement: IOVAPlacement? {
        guard case let .translated(state) = route else { return nil }
        return state.linuxPlacement.map { .linux(cpus: $0.cpus) } ?? .native
    }

    /// The translated domain the device maps into, to tell devices that share one apart; nil when not translated.
    public var translatedDomain: IOMMUDomain? {
        guard case let .translated(state) = route else { return nil }
        return state.domain
    }
}
