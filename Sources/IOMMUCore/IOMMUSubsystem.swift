import Emulation

/// The IOMMU-API: devices, groups, domains and the default-domain policy
/// (Linux's drivers/iommu/iommu.c). Drivers register here; when a device is
/// added, its driver probes it and the core gives its group a default domain,
/// maps the device's direct regions 1:1 into it and attaches it. Nothing above
/// the core creates default domains.
public final class IOMMUSubsystem: Sendable {
    public let policy: DefaultDomainPolicy
    private let drivers = HostLock<[any IOMMUDriver]>([])
    private let state = HostLock(State())
    private let faults: FaultRouter

    struct State {
        var devices: [PCIAddress: IOMMUDevice] = [:]
        var groups: [String: IOMMUGroup] = [:]
        var nextGroup = 0
    }

    public init(policy: DefaultDomainPolicy = .init()) {
        self.policy = policy
        faults = FaultRouter()
        faults.subsystem = self
    }

    /// Makes a driver available for probing devices added from now on.
    public func register(_ driver: any IOMMUDriver) {
        driver.connect(faultSink: faults)
        drivers.withLock { $0.append(driver) }
    }

    public var devices: [IOMMUDevice] { state.withLock { Array($0.devices.values) }.sorted { $0.address < $1.address } }
    public var groups: [IOMMUGroup] { state.withLock { Array($0.groups.values) }.sorted { $0.identifier < $1.identifier } }
    public func device(at address: PCIAddress) -> IOMMUDevice? { state.withLock { $0.devices[address] } }

    /// Faults that reached the core, newest last (bounded), and how many there were.
    public var recentFaults: [IOMMUFault] { faults.recent }
    public var faultCount: UInt64 { faults.total }

    /// Probes `device` with each registered driver. Returns nil when no IOMMU
    /// covers it (its DMA then goes straight to memory).
    /// - Throws: ``IOMMUError/deviceAlreadyAdded(_:)``; errors from making or
    ///   attaching the default domain, in which case the device is not added.
    @discardableResult
    public func addDevice(_ device: PCIDevice) throws(IOMMUError) -> IOMMUDevice? {
        if state.withLock({ $0.devices[device.address] != nil }) { throw .deviceAlreadyAdded(device.address) }
        let candidates = drivers.withLock { $0 }
        guard let (driver, probe) = candidates.lazy.compactMap({ driver in driver.probe(device).map { (driver, $0) } }).first
        else { return nil }
        let regions = driver.reservedRegions(for: device).sorted { $0.range.lowerBound < $1.range.lowerBound }

        let (group, isNew) = state.withLock { state -> (IOMMUGroup, Bool) in
            let key = "\(driver.name)/\(probe.groupKey)"
            if let existing = state.groups[key] { return (existing, false) }
            state.nextGroup += 1
            let group = IOMMUGroup(identifier: state.nextGroup - 1, key: key, driver: driver)
            state.groups[key] = group
            return (group, true)
        }
        var madeDomain: IOMMUDomain?
        do throws(IOMMUError) {
            var domain = group.defaultDomain
            if domain == nil {
                let kind = policy.kind(for: device, driverRequirement: driver.requiredDefaultDomainKind(for: device))
                domain = try driver.makeDomain(kind, for: device)
                madeDomain = domain
            }
            guard let domain else { throw IOMMUError.hardware("no default domain") }
            try mapDirectRegions(regions, into: domain)
            // A group that a user has claimed keeps its owner's domain: a device
            // joining it is attached there, not behind the owner's back to the default.
            try driver.attach(group.domain ?? domain, to: device)
            let managed = IOMMUDevice(device: device, group: group, unitName: probe.unitName, reservedRegions: regions)
            group.state.withLock { groupState in
                groupState.devices.append(device.address)
                groupState.gates.append(managed.dmaLayerGate)
                if groupState.defaultDomain == nil {
                    groupState.defaultDomain = domain
                    groupState.domain = domain
                }
                managed.dmaLayerGate.set(DMALayerGate.claimed, groupState.owner != nil)
            }
            state.withLock { $0.devices[device.address] = managed }
            return managed
        } catch {
            madeDomain?.destroy()
            if isNew { _ = state.withLock { $0.groups.removeValue(forKey: group.key) } }
            throw error
        }
    }

    /// Direct regions are identity-mapped before the device is attached, so
    /// firmware-initiated DMA keeps working across the switch to translation.
    private func mapDirectRegions(_ regions: [ReservedRegion], into domain: IOMMUDomain) throws(IOMMUError) {
        guard domain.kind.translates else { return }
        let granule = domain.pageSizes.smallest
        for region in regions where region.kind.isDirect {
            let first = region.range.lowerBound & ~(granule - 1)
            let last = region.range.upperBound | (granule - 1)
            var address = first
            // Map granule by granule, skipping what an earlier device of the group already mapped.
            while true {
                if domain.lookup(address) == nil {
                    try domain.map(iova: IOVirtualAddress(address), physical: PhysicalAddress(address), size: granule,
                                   permissions: region.permissions.isEmpty ? .readWrite : region.permissions)
                }
                if address >= last - (granule - 1) { break }
                address += granule
            }
        }
    }

    /// Removes a device: its hardware entry is cleared; the group goes away
    /// with its last device.
    /// - Throws: ``IOMMUError/deviceNotManaged(_:)``.
    public func removeDevice(_ address: PCIAddress) throws(IOMMUError) {
        guard let managed = state.withLock({ $0.devices.removeValue(forKey: address) }) else {
            throw .deviceNotManaged(address)
        }
        // First: a DMA handle that outlives the device must not reach the domain destroyed below.
        managed.dmaLayerGate.set(DMALayerGate.removed, true)
        managed.group.driver.release(managed.device)
        let empty = managed.group.state.withLock { groupState -> Bool in
            groupState.devices.removeAll { $0 == address }
            groupState.gates.removeAll { $0 === managed.dmaLayerGate }
            return groupState.devices.isEmpty
        }
        if empty {
            _ = state.withLock { $0.groups.removeValue(forKey: managed.group.key) }
            // An unmanaged domain belongs to its user; only the default domain dies with the group.
            managed.group.state.withLock { $0.defaultDomain }?.destroy()
        }
    }

    /// Makes a domain for a caller that manages its own mappings (a
    /// VFIO-like user), suited to `device`'s IOMMU.
    /// - Throws: ``IOMMUError/deviceNotManaged(_:)``, ``IOMMUError/unsupportedDomainKind(_:driver:)``.
    public func makeDomain(_ kind: DomainKind, for address: PCIAddress) throws(IOMMUError) -> IOMMUDomain {
        guard let managed = device(at: address) else { throw .deviceNotManaged(address) }
        return try managed.group.driver.makeDomain(kind, for: managed.device)
    }

    /// Moves a whole group to `domain` on behalf of `owner`; the DMA layer
    /// refuses the group's devices until it is given back.
    /// - Throws: ``IOMMUError/groupOwned(group:by:)`` when someone else owns it; attach errors.
    public func attach(_ group: IOMMUGroup, to domain: IOMMUDomain, owner: String) throws(IOMMUError) {
        try group.state.withLock { (groupState) throws(IOMMUError) in
            if let current = groupState.owner, current != owner { throw .groupOwned(group: group.identifier, by: current) }
        }
        try move(group, to: domain, owner: owner)
    }

    /// Gives a claimed group back to its default domain.
    /// - Throws: ``IOMMUError/groupOwned(group:by:)`` when `owner` does not own it; attach errors.
    public func release(_ group: IOMMUGroup, owner: String) throws(IOMMUError) {
        let (current, defaultDomain) = group.state.withLock { ($0.owner, $0.defaultDomain) }
        guard current == owner, let defaultDomain else { throw .groupOwned(group: group.identifier, by: current ?? "nobody") }
        try move(group, to: defaultDomain, owner: nil)
    }

    /// Points every device of `group` at `domain` and records who owns the group now.
    private func move(_ group: IOMMUGroup, to domain: IOMMUDomain, owner: String?) throws(IOMMUError) {
        for address in group.devices {
            guard let managed = device(at: address) else { continue }
            try group.driver.attach(domain, to: managed.device)
        }
        group.state.withLock {
            $0.domain = domain
            $0.owner = owner
            for gate in $0.gates { gate.set(DMALayerGate.claimed, owner != nil) }
        }
        group.claimed.store(owner != nil, ordering: .releasing)
        group.generation.add(1, ordering: .releasing)
    }

    func route(_ fault: IOMMUFault) {
        let targets = state.withLock { state in
            state.devices.values.filter { $0.device.busRequester == fault.requester }
        }
        var delivered = Set<ObjectIdentifier>()
        for target in targets {
            guard let domain = target.domain, delivered.insert(ObjectIdentifier(domain)).inserted else { continue }
            domain.deliver(fault)
        }
    }
}

/// Receives faults from drivers and routes them to domains.
final class FaultRouter: FaultSink, @unchecked Sendable {
    // Set once, right after init, before any driver can see the router.
    nonisolated(unsafe) weak var subsystem: IOMMUSubsystem?
    private let log = HostLock<(recent: [IOMMUFault], total: UInt64)>(([], 0))
    static let kept = 256

    var recent: [IOMMUFault] { log.withLock { $0.recent } }
    var total: UInt64 { log.withLock { $0.total } }

    func deliver(_ fault: IOMMUFault) {
        log.withLock { log in
            log.total += 1
            if log.recent.count == Self.kept { log.recent.removeFirst() }
            log.recent.append(fault)
        }
        subsystem?.route(fault)
    }
}
