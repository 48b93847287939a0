import DMA
import Emulation
import IOMMUCore

/// One device as the fuzzer drives it: the bus function, its DMA-API
/// handle while it is present, and the buffers it holds.
final class FuzzDevice {
    struct Stream {
        var bus: IOVirtualAddress
        var physical: UInt64
        var size: Int
        var direction: DMADirection
    }

    let specification: DeviceSpecification
    var device: PCIDevice
    var dma: DeviceDMA?
    var streams: [Stream] = []
    var coherent: [CoherentBuffer] = []
    /// The device's shadow pool while it has one (shadow strategy, translated domain).
    var shadowPool: ShadowPoolLayout?
    /// Bus addresses of recent unmaps, the favourite target of a misbehaving device.
    var unmapped: [UInt64] = []

    init(specification: DeviceSpecification, device: PCIDevice, dma: DeviceDMA?) {
        self.specification = specification
        self.device = device
        self.dma = dma
    }

    var plugged: Bool { dma != nil }

    func remember(unmapped bus: UInt64) {
        if unmapped.count == 16 { unmapped.removeFirst() }
        unmapped.append(bus)
    }
}

/// A group as the model sees it: its default domain, the domain it is on now and who claimed it.
final class GroupModel {
    let group: IOMMUGroup
    let defaultDomain: DomainModel
    var current: DomainModel
    var claimed: Bool { current !== defaultDomain }
    /// Mappings an IOMMU-API user made in the claimed domain: IOVA and size.
    var userMappings: [(iova: UInt64, size: UInt64)] = []

    init(group: IOMMUGroup, defaultDomain: DomainModel) {
        self.group = group
        self.defaultDomain = defaultDomain
        current = defaultDomain
    }
}

struct FuzzStop: Error {}

/// The state of one fuzz run.
final class FuzzSession {
    static let owner = "protection-fuzzer"
    let configuration: ProtectionFuzzer.Configuration
    let platform: EmulatedPlatform
    let profile: FamilyProtectionProfile
    let model: ReachabilityModel
    let known: KnownMemory
    var generator: SplitMix64
    var devices: [FuzzDevice] = []
    var groups: [GroupModel] = []
    /// The two buffer pools: below 4 GiB (for 32-bit direct devices) and above it.
    var pools: [(base: UInt64, bytes: UInt64)] = []
    var report: ProtectionFuzzer.Report
    var operation = 0

    init(_ configuration: ProtectionFuzzer.Configuration) throws(PlatformError) {
        self.configuration = configuration
        let specification: PlatformSpecification
        do { specification = try .defaultPlatform(family: configuration.family, policy: configuration.strategy.policy) } catch {
            throw .invalidSpecification("\(error)")
        }
        platform = try EmulatedPlatform(specification, dmaConfiguration: configuration.strategy.dmaConfiguration)
        profile = FamilyProtectionProfile(configuration.family)
        model = ReachabilityModel(profile: profile, memorySize: platform.memory.size)
        known = KnownMemory(memory: platform.memory)
        generator = SplitMix64(seed: configuration.seed)
        report = ProtectionFuzzer.Report(family: configuration.family.rawValue, strategy: configuration.strategy.name,
                                         seed: configuration.seed, operations: 0)
        let poolBytes: UInt64 = 2 << 20
        for zone in [PhysicalPageAllocator.Zone.below(PhysicalAddress(0xFFFF_FFFF)), .above(PhysicalAddress(1 << 32))] {
            do {
                let base = try platform.pages.allocate(pages: poolBytes / PageSize.size4K, alignment: poolBytes, zone: zone)
                try known.track(base: base.value, count: poolBytes, filling: &generator)
                pools.append((base.value, poolBytes))
            } catch { throw .memory(error) }
        }
        for device in platform.devices {
            guard let spec = specification.devices.first(where: { $0.address == device.address }) else { continue }
            let entry = FuzzDevice(specification: spec, device: device, dma: platform.dma[device.address])
            devices.append(entry)
            adopt(entry)
            if let group = groupModel(of: entry), group.defaultDomain.kind.translates { try? adoptShadowPool(entry, group: group) }
        }
    }

    // MARK: The loop

    func run() {
        guard report.mismatch == nil else { return } // a shadow pool already disagreed at setup
        do {
            try checkGroups()
            while operation < configuration.operations {
                try step()
                operation += 1
                if operation % configuration.sweepInterval == 0 { try sweep() }
            }
            try sweep()
        } catch {
            // The mismatch is already in the report.
        }
        report.operations = operation
    }

    func step() throws(FuzzStop) {
        let device = devices[Int.random(in: 0..<devices.count, using: &generator)]
        let roll = Int.random(in: 0..<1000, using: &generator)
        switch roll {
        case 0..<200: try mapStream(device)
        case 200..<340: try unmapStream(device)
        case 340..<760: try access(device)
        case 760..<820: try allocateCoherent(device)
        case 820..<860: try freeCoherent(device)
        case 860..<890: try flushDeferred(device)
        case 890..<905: try doubleUnmap(device)
        case 905..<935: try claimOrRelease(device)
        case 935..<975: try userMapOrUnmap(device)
        case 975..<990: try removeDevice(device)
        default: try addDevice(device)
        }
    }

    /// Records a disagreement and stops the run.
    func fail(_ detail: String) throws(FuzzStop) -> Never {
        report.mismatch = ProtectionFuzzer.Mismatch(operation: operation, detail: detail,
                                                    replay: configuration.replayCommand)
        throw FuzzStop()
    }

    func expect(_ condition: Bool, _ detail: @autoclosure () -> String) throws(FuzzStop) {
        if !condition { try fail(detail()) }
    }

    /// Compares every tracked byte of memory with the model's shadow.
    func sweep() throws(FuzzStop) {
        report.memorySweeps += 1
        if let address = known.firstDifference() {
            try fail("memory at \(hex(address)) changed although no access the model allowed reached it")
        }
    }

    // MARK: Groups

    /// The model of `device`'s group, nil when no IOMMU manages it.
    func groupModel(of device: FuzzDevice) -> GroupModel? {
        guard let group = platform.subsystem.device(at: device.device.address)?.group else { return nil }
        return groups.first { $0.group === group }
    }

    /// Learns the group of a device that was just added and maps its direct regions in the model.
    func adopt(_ device: FuzzDevice) {
        guard let managed = platform.subsystem.device(at: device.device.address),
              let defaultDomain = managed.group.defaultDomain else { return }
        let model: GroupModel
        if let existing = groups.first(where: { $0.group === managed.group }) {
            model = existing
        } else {
            model = GroupModel(group: managed.group, defaultDomain: DomainModel(domain: defaultDomain))
            groups.append(model)
        }
        guard defaultDomain.kind.translates else { return }
        let granule = defaultDomain.pageSizes.smallest
        for region in managed.reservedRegions where region.kind.isDirect {
            let first = region.range.lowerBound & ~(granule - 1)
            let end = (region.range.upperBound | (granule - 1)) &+ 1
            var page = first
            while page != end {
                if model.defaultDomain.live[page >> 12] == nil {
                    model.defaultDomain.add(iova: page, physical: page, bytes: PageSize.size4K,
                                            permissions: region.permissions.isEmpty ? .readWrite : region.permissions,
                                            kind: .direct)
                }
                page += PageSize.size4K
            }
        }
    }

    /// Devices the family cannot tell apart share a group; the others do not.
    func checkGroups() throws(FuzzStop) {
        let present = devices.filter(\.plugged)
        for (index, first) in present.enumerated() {
            for second in present[(index + 1)...] {
                let sameKey = profile.isolationKey(of: first.device) == profile.isolationKey(of: second.device)
                let sameGroup = platform.subsystem.device(at: first.device.address)?.group
                    === platform.subsystem.device(at: second.device.address)?.group
                try expect(sameKey == sameGroup, "\(first.device) and \(second.device): "
                    + (sameKey ? "the \(profile.family) unit cannot tell them apart, yet they are in different groups"
                               : "they can be isolated, yet share a group"))
            }
        }
    }

    func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[Int.random(in: 0..<items.count, using: &generator)]
    }
}
