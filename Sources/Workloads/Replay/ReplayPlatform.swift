import DMA
import Emulation
import IOMMUCore

/// How to replay a trace: which driver, which policy, whose groups.
public struct ReplayConfiguration: Sendable {
    public enum Policy: String, Sendable, CaseIterable, Codable { case strict, lazy, passthrough }
    /// Who places IOVAs in the translated domains (the DMA layer's ``IOVAPlacement``).
    public enum Placement: String, Sendable, CaseIterable, Codable {
        /// Linux 6.12's rules, each call on its trace CPU at its trace time: bus addresses can match the trace's.
        case linux
        /// This system's own allocator (per-thread caches, the single-page fast path).
        case native
    }

    public var family: IOMMUFamily
    /// nil: the groups' own types when groups are given, else strict.
    public var policy: Policy?
    /// Linux's groups (from ``IOMMUGroupsDump``): group membership, default-domain kinds, reserved regions.
    public var groups: [LinuxIOMMUGroup]
    /// Compare bus addresses and IOMMU-API calls with the trace's.
    public var compare: Bool
    /// Replay only the first N events (tests in debug builds); nil: all.
    public var eventLimit: Int?
    /// Time every call (for the HTML report); costs two clock reads per call.
    public var recordsLatencies: Bool
    /// Run each trace CPU's calls on a thread of its own (handed over in order), so this system's
    /// per-thread IOVA caches act per CPU; false: every call on the calling thread.
    public var threadPerCPU: Bool = false
    /// PCI host-bridge memory windows (``PCIHostWindows``) kept out of every domain, by the DMA layer
    /// (``DMAConfiguration/hostBridgeWindows``) and by the Linux placement model.
    public var pciWindows: [ClosedRange<UInt64>] = []
    /// The DMA layer's IOVA placement; Linux's by default, so that a replay reproduces Linux's bus addresses.
    public var placement: Placement = .linux

    public init(family: IOMMUFamily = .intelVTd, policy: Policy? = nil, groups: [LinuxIOMMUGroup] = [],
                compare: Bool = false, eventLimit: Int? = nil, recordsLatencies: Bool = false) {
        self.recordsLatencies = recordsLatencies
        self.family = family
        self.policy = policy
        self.groups = groups
        self.compare = compare
        self.eventLimit = eventLimit
    }

    /// The policy in effect: explicit, else DMA-FQ groups mean lazy, identity-only groups pass-through, else strict.
    public var effectivePolicy: Policy {
        if let policy { return policy }
        let kinds = groups.compactMap(\.domainKind)
        if kinds.contains(.dmaLazy) { return .lazy }
        if !kinds.isEmpty, kinds.allSatisfy({ $0 == .identity }) { return .passthrough }
        return .strict
    }
}

extension PlatformSpecification {
    /// A platform whose devices are the trace's devices (named as in the trace,
    /// each behind one unit of `family`). Physical addresses from the trace are
    /// used as they are, so memory covers the highest one; the page allocator
    /// (page tables, coherent buffers) works only above it and above 4 GiB, so
    /// that nothing it hands out overlaps a buffer of the trace.
    /// - Throws: ``PlatformError/invalidSpecification(_:)`` for a device name that is not a PCI address.
    public static func replay(of trace: ParsedTrace, configuration: ReplayConfiguration) throws(PlatformError) -> PlatformSpecification {
        var highest: UInt64 = 0
        for event in trace.events where event.kind.isDMACall {
            highest = max(highest, event.physical &+ event.size, event.physicalSegments.max() ?? 0)
        }
        let floor = max(UInt64(1) << 32, (highest + (1 << 30) - 1) & ~((1 << 30) - 1))
        let memoryBytes = floor + (4 << 30)

        // The trace does not print a device's dma_parms; no segment Linux merged exceeds the real
        // maximum, so the largest one it shows (at least the PCI default of 64 KiB) merges the same.
        var largestSegment: [String: UInt64] = [:]
        var cpus = 1
        for event in trace.events {
            cpus = max(cpus, event.cpu + 1)
            guard event.kind == .dmaMapSG, event.device >= 0, event.device < trace.devices.count else { continue }
            largestSegment[trace.devices[event.device], default: 0] = max(largestSegment[trace.devices[event.device]] ?? 0,
                                                                          event.segmentSizes.max() ?? 0)
        }
        var names = trace.devices
        for group in configuration.groups { for device in group.devices where !names.contains(device) { names.append(device) } }
        var devices: [DeviceSpecification] = []
        var overrides: [PCIAddress: DomainKind] = [:]
        for name in names {
            let address: PCIAddress
            do { address = try PCIAddress(parsing: name) } catch {
                throw .invalidSpecification("trace device '\(name)' is not a PCI address: \(error)")
            }
            var device = DeviceSpecification(address: address, name: name, deviceClass: .other)
            device.dma = DMAConfiguration(maxSegmentSize: max(64 << 10, largestSegment[name] ?? 0),
                                          iovaPlacement: configuration.placement == .linux ? .linux(cpus: cpus) : .native,
                                          hostBridgeWindows: configuration.pciWindows)
            if let group = configuration.groups.first(where: { $0.devices.contains(name) }) {
                // Drivers add the MSI window themselves; every other kind goes in with its kind kept.
                device.directRegions = group.reservedRegions.filter { $0.kind != .msi && $0.kind != .softwareMSI }
                if group.devices.count > 1, let first = group.devices.first, first != name {
                    device.requesterAlias = try? PCIAddress(parsing: first)
                }
                if configuration.policy == nil, let kind = group.domainKind { overrides[address] = kind }
            }
            devices.append(device)
        }
        let policy: DefaultDomainPolicy
        switch configuration.effectivePolicy {
        case .strict: policy = DefaultDomainPolicy(invalidation: .strict, overrides: overrides)
        case .lazy: policy = DefaultDomainPolicy(invalidation: .lazy, overrides: overrides)
        case .passthrough: policy = DefaultDomainPolicy(passThrough: true, overrides: overrides)
        }
        return PlatformSpecification(
            name: "replay-\(configuration.family.rawValue)", memoryBytes: memoryBytes,
            usableMemory: [PhysicalAddress(floor)...PhysicalAddress(memoryBytes - 1)],
            units: [UnitSpecification(name: "\(configuration.family.unitPrefix)0", family: configuration.family, includesAll: true)],
            devices: devices, policy: policy)
    }
}
