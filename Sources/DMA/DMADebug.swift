import Emulation
import Synchronization

/// One misuse of the DMA API caught by debug checking, with the device and
/// the call it happened in (Linux's DMA-API debug warnings, as values).
public struct DMADebugReport: Sendable, Equatable, CustomStringConvertible {
    public var device: PCIAddress
    /// The DMA-API call that misbehaved ("unmap", "unmapScatterList", "syncForCPU", "remove", ...).
    public var call: String
    public var error: DMAError

    public var description: String { "DMA-API debug: device \(device), \(call): \(error)" }
}

/// Tracks every live mapping of one device when debug checking is on.
final class DMADebugTracker: Sendable {
    struct Live: Sendable {
        var size: UInt64
        var direction: DMADirection
    }

    private struct State {
        var live: [UInt64: Live] = [:]
        /// Recently unmapped bus addresses, to tell a double unmap from a wild one.
        var recentlyUnmapped: [UInt64] = []
        var reports: [DMADebugReport] = []
    }

    let device: PCIAddress
    private let state = HostLock(State())
    static let remembered = 256

    init(device: PCIAddress) { self.device = device }

    func mapped(bus: UInt64, size: UInt64, direction: DMADirection, call: StaticString) {
        state.withLock { state in
            state.live[bus] = Live(size: size, direction: direction)
            state.recentlyUnmapped.removeAll { $0 == bus }
        }
    }

    /// Checks an unmap against the map it ends, and forgets the mapping.
    /// - Throws: ``DMAError/notMapped(busAddress:)``, ``DMAError/alreadyUnmapped(busAddress:)``,
    ///   ``DMAError/sizeMismatch(busAddress:mapped:given:)``, ``DMAError/directionMismatch(busAddress:mapped:given:)``.
    func unmapping(bus: UInt64, size: UInt64, direction: DMADirection, call: StaticString) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            let problem: DMAError?
            if let live = state.live[bus] {
                if live.size != size { problem = .sizeMismatch(busAddress: bus, mapped: live.size, given: size) }
                else if live.direction != direction {
                    problem = .directionMismatch(busAddress: bus, mapped: live.direction, given: direction)
                } else { problem = nil }
            } else {
                problem = state.recentlyUnmapped.contains(bus) ? .alreadyUnmapped(busAddress: bus) : .notMapped(busAddress: bus)
            }
            if let problem {
                state.reports.append(DMADebugReport(device: device, call: "\(call)", error: problem))
                throw problem
            }
            state.live[bus] = nil
            state.recentlyUnmapped.append(bus)
            if state.recentlyUnmapped.count > Self.remembered { state.recentlyUnmapped.removeFirst() }
        }
    }

    /// Checks that a sync stays inside one live mapping made with the same direction.
    /// - Throws: ``DMAError/syncOfUnmapped(busAddress:size:)``, ``DMAError/directionMismatch(busAddress:mapped:given:)``.
    func syncing(bus: UInt64, size: UInt64, direction: DMADirection, call: StaticString) throws(DMAError) {
        try state.withLock { (state) throws(DMAError) in
            let owner = state.live.first { bus >= $0.key && bus &+ size <= $0.key &+ $0.value.size }
            var problem: DMAError?
            if let owner {
                if owner.value.direction != direction {
                    problem = .directionMismatch(busAddress: owner.key, mapped: owner.value.direction, given: direction)
                }
            } else { problem = .syncOfUnmapped(busAddress: bus, size: size) }
            if let problem {
                state.reports.append(DMADebugReport(device: device, call: "\(call)", error: problem))
                throw problem
            }
        }
    }

    /// Reports the mappings still live when the device goes; returns how many.
    func removing() -> Int {
        state.withLock { state in
            let count = state.live.count
            if count > 0 {
                state.reports.append(DMADebugReport(device: device, call: "remove",
                                                    error: .mappingsLiveAtRemoval(device, count: count)))
            }
            return count
        }
    }

    var liveCount: Int { state.withLock { $0.live.count } }
    var reports: [DMADebugReport] { state.withLock { $0.reports } }
}

extension DeviceDMA {
    /// Misuse found so far by debug checking (empty when it is off).
    public var debugReports: [DMADebugReport] { debug?.reports ?? [] }

    /// Live streaming mappings as debug checking tracks them (0 when it is off).
    public var liveMappings: Int { debug?.liveCount ?? 0 }

    /// Called when the device is removed (its driver's remove(), before the IOMMU-API lets the device go):
    /// gives its shadow pool back, and with debug checking reports and refuses if mappings are still live
    /// (the driver leaked them; shadow mappings among them are dropped without a copy-back).
    /// - Throws: ``DMAError/mappingsLiveAtRemoval(_:count:)``.
    public func deviceRemoved() throws(DMAError) {
        flushDeferred()
        releaseShadowPool(domainAlive: defaultDomainAlive)
        guard let debug else { return }
        let live = debug.removing()
        if live > 0 { throw .mappingsLiveAtRemoval(device.address, count: live) }
    }
}
