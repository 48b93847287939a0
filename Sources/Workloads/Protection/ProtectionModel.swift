import Emulation
import IOMMUCore

/// Where a page the model lets a device reach came from, for the accounting
/// of what a device could touch and why.
public enum ReachKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// A mapping the DMA API or an IOMMU-API user made for the device's domain.
    case mapped
    /// A firmware direct region mapped 1:1 before attach.
    case direct
    /// Outside a GART aperture, or an identity domain: bus address = physical address.
    case passThrough = "pass-through"
    /// An unmapped page a lazy domain may still translate until its flush.
    case stale
    /// A device's shadow pool: mapped read+write for the device's whole life, holding only copies of
    /// buffers the device was given (or zeros) and what it wrote there itself.
    case shadow
}

/// One 4 KiB page of a domain as the model sees it.
struct ModelPage {
    var physical: UInt64
    var permissions: AccessPermissions
    var kind: ReachKind
}

/// The model's copy of one domain: what its tables should hold, and what a
/// lazy flush may still let through.
final class DomainModel {
    let domain: IOMMUDomain
    var live: [UInt64: ModelPage] = [:]
    var stale: [UInt64: ModelPage] = [:]

    init(domain: IOMMUDomain) { self.domain = domain }

    var kind: DomainKind { domain.kind }

    func add(iova: UInt64, physical: UInt64, bytes: UInt64, permissions: AccessPermissions, kind: ReachKind) {
        var offset: UInt64 = 0
        while offset < bytes {
            let page = (iova + offset) >> 12
            stale[page] = nil // the IOVA is only handed out again after a flush
            live[page] = ModelPage(physical: physical + offset, permissions: permissions, kind: kind)
            offset += PageSize.size4K
        }
    }

    /// Removes the pages; in a lazy domain they stay reachable as stale pages until the flush.
    func remove(iova: UInt64, bytes: UInt64, deferred: Bool) {
        var offset: UInt64 = 0
        while offset < bytes {
            let page = (iova + offset) >> 12
            if let old = live.removeValue(forKey: page), deferred {
                var entry = old
                entry.kind = .stale
                stale[page] = entry
            }
            offset += PageSize.size4K
        }
    }

    func overlapsLive(iova: UInt64, bytes: UInt64) -> Bool {
        var offset: UInt64 = 0
        while offset < bytes {
            if live[(iova + offset) >> 12] != nil { return true }
            offset += PageSize.size4K
        }
        return false
    }
}

/// What the model predicts for one page of a device access. `known` says
/// whether the model tracks the contents of the page reached (the fuzzer only
/// lets devices write where it does).
enum PagePrediction: Equatable {
    /// The access must fault here and move nothing from this page on.
    case fault
    /// The access must reach `physical`.
    case reaches(physical: UInt64, kind: ReachKind, known: Bool)
    /// A stale translation: the access may reach `physical` or fault.
    case mayReach(physical: UInt64, known: Bool)

    var physical: UInt64? {
        switch self {
        case .fault: nil
        case let .reaches(physical, _, _), let .mayReach(physical, _): physical
        }
    }

    var known: Bool {
        switch self {
        case .fault: true
        case let .reaches(_, _, known), let .mayReach(_, known): known
        }
    }
}

/// The reference model of what a device may reach at a bus address: only the
/// facts of the family and the API calls made so far, never the tables.
struct ReachabilityModel {
    let profile: FamilyProtectionProfile
    let memorySize: UInt64

    /// The prediction for the 4 KiB page holding `address` when the device's group is attached to `domain`
    /// (nil: the device is unplugged or behind no IOMMU and `plugged` says which).
    func predict(_ address: UInt64, access: BusAccess, domain: DomainModel?, plugged: Bool,
                 knows: (UInt64) -> Bool) -> PagePrediction {
        guard plugged else { return .fault }
        let page = address & ~(PageSize.size4K - 1)
        func passThrough() -> PagePrediction {
            guard page < memorySize else { return .fault } // no memory there: a master abort
            return .reaches(physical: page, kind: .passThrough, known: knows(page))
        }
        guard let domain else { return passThrough() }
        switch domain.kind {
        case .identity: return passThrough()
        case .blocked: return .fault
        case .dma, .dmaLazy, .unmanaged:
            if !domain.domain.geometry.aperture.contains(address) {
                return domain.domain.geometry.outside == .passThrough ? passThrough() : .fault
            }
            if let entry = domain.live[address >> 12] {
                guard profile.effectivePermissions(entry.permissions).contains(access.requiredPermission) else { return .fault }
                return .reaches(physical: entry.physical, kind: entry.kind, known: knows(entry.physical))
            }
            if let entry = domain.stale[address >> 12],
               profile.effectivePermissions(entry.permissions).contains(access.requiredPermission) {
                return .mayReach(physical: entry.physical, known: knows(entry.physical))
            }
            return .fault
        }
    }
}
