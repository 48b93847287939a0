import IOVA

/// Replays a trace's DMA calls through ``LinuxIOVAAllocator`` alone, with
/// dma-iommu.c's sizing (page-aligned length including the in-page offset,
/// one IOVA per scatter list, the PCI 32-bit-first try), one allocator per
/// device as each Linux device here has its own default domain, and each
/// call on the trace's CPU. It predicts the bus address Linux returned, so
/// the agreement measures the allocator rules, not the emulated hardware.
/// A lazy domain's frees go through ``LinuxFlushQueueModel``.
struct LinuxPlacementModel {
    static let granule: UInt64 = 4096
    private var allocators: [LinuxIOVAAllocator?]
    private var live: [Key: [Mapping]] = [:]
    private var scatterLists: [SGKey: [Mapping]] = [:]
    private(set) var compared = 0, identical = 0, coherentCompared = 0, coherentIdentical = 0
    private(set) var failures = 0
    private(set) var differences: [String] = []
    /// The model's bus address for each call it placed, by trace line.
    private var predictions: [Int: UInt64] = [:]
    private(set) var sameAsDMALayer = 0

    private struct Key: Hashable { var device: Int; var address: UInt64 }
    private struct SGKey: Hashable { var device: Int; var first: UInt64; var count: Int }
    private struct Mapping { var base: UInt64; var bytes: UInt64 }

    /// - Parameters:
    ///   - regions: per device, the IOVA ranges Linux reserves (its groups' reserved regions, the PCI windows).
    ///   - addressBits: the domain's input address width (aperture end).
    ///   - identity: per device, whether its domain is an identity one (bus address = physical address).
    ///   - lazy: per device, whether its domain defers frees to a flush queue (DMA-FQ).
    init(devices: Int, regions: [[ClosedRange<UInt64>]], identity: [Bool], lazy: [Bool] = [], addressBits: Int = 48,
         cpus: Int = 2) {
        self.identity = identity
        flushQueues = (0..<devices).map { index in index < lazy.count && lazy[index] ? LinuxFlushQueueModel(cpus: cpus) : nil }
        let top = addressBits >= 64 ? UInt64.max : (UInt64(1) << UInt64(addressBits)) - 1
        allocators = (0..<devices).map { index in
            guard let allocator = try? LinuxIOVAAllocator(granule: Self.granule, space: 0...top, cpus: cpus) else { return nil }
            for range in index < regions.count ? regions[index] : [] { try? allocator.reserve(range) }
            return allocator
        }
        self.top = top
    }

    private let top: UInt64
    private let identity: [Bool]
    private var flushQueues: [LinuxFlushQueueModel?]

    private mutating func allocate(_ device: Int, bytes: UInt64, cpu: Int) -> UInt64? {
        guard device >= 0, device < allocators.count, let allocator = allocators[device] else { return nil }
        return try? allocator.allocate(size: bytes, limit: top, preferredLimit: 0xFFFF_FFFF, cpu: cpu)
    }

    private mutating func free(_ device: Int, _ mapping: Mapping, cpu: Int, now: UInt64) {
        guard let allocator = allocators[device] else { return }
        if flushQueues[device] != nil {
            flushQueues[device]!.enqueue(address: mapping.base, bytes: mapping.bytes, cpu: cpu, now: now,
                                         allocator: allocator, failures: &failures)
            return
        }
        do { try allocator.free(address: mapping.base, size: mapping.bytes, cpu: cpu) } catch { failures += 1 }
    }

    private mutating func note(_ event: TraceEvent, linux: UInt64, predicted: UInt64?, coherent: Bool) {
        if let predicted { predictions[event.line] = predicted }
        let same = predicted == linux
        if coherent {
            coherentCompared += 1
            if same { coherentIdentical += 1 }
        } else {
            compared += 1
            if same { identical += 1 }
        }
        if !same, differences.count < 20 {
            let ours = predicted.map { "0x" + String($0, radix: 16) } ?? "none"
            differences.append("line \(event.line): \(event.kind.traceName) linux 0x\(String(linux, radix: 16)) model \(ours)")
        }
    }

    mutating func replay(_ event: TraceEvent) {
        let granule = Self.granule
        let key = Key(device: event.device, address: event.address)
        for index in flushQueues.indices where flushQueues[index] != nil {
            guard let allocator = allocators[index] else { continue }
            flushQueues[index]!.advance(to: event.timestampMicros, allocator: allocator, failures: &failures)
        }
        if event.device < identity.count, identity[event.device] {
            // dma-direct: nothing to allocate; a coherent buffer's physical address is not in the trace.
            switch event.kind {
            case .dmaMapPage, .dmaMapResource: note(event, linux: event.address, predicted: event.physical, coherent: false)
            case .dmaMapSG: note(event, linux: event.busSegments.first ?? 0, predicted: event.physicalSegments.first, coherent: false)
            default: break
            }
            return
        }
        switch event.kind {
        case .dmaMapPage, .dmaMapResource, .dmaAlloc:
            let offset = event.kind == .dmaAlloc ? 0 : event.physical & (granule - 1)
            let bytes = (offset + event.size + granule - 1) & ~(granule - 1)
            let base = allocate(event.device, bytes: bytes, cpu: event.cpu)
            if let base { live[key, default: []].append(Mapping(base: base, bytes: bytes)) } else { failures += 1 }
            note(event, linux: event.address, predicted: base.map { $0 + offset }, coherent: event.kind == .dmaAlloc)
        case .dmaUnmapPage, .dmaUnmapResource, .dmaFree:
            guard var stack = live[key], let mapping = stack.popLast() else { failures += 1; return }
            live[key] = stack.isEmpty ? nil : stack
            free(event.device, mapping, cpu: event.cpu, now: event.timestampMicros)
        case .dmaMapSG:
            let bytes = (event.size + granule - 1) & ~(granule - 1)
            let base = allocate(event.device, bytes: bytes, cpu: event.cpu)
            let sgKey = SGKey(device: event.device, first: event.physicalSegments.first ?? 0, count: event.physicalSegments.count)
            if let base { scatterLists[sgKey, default: []].append(Mapping(base: base, bytes: bytes)) } else { failures += 1 }
            note(event, linux: event.busSegments.first ?? 0, predicted: base, coherent: false)
        case .dmaUnmapSG:
            let sgKey = SGKey(device: event.device, first: event.physicalSegments.first ?? 0, count: event.physicalSegments.count)
            guard var stack = scatterLists[sgKey], let mapping = stack.popLast() else { failures += 1; return }
            scatterLists[sgKey] = stack.isEmpty ? nil : stack
            free(event.device, mapping, cpu: event.cpu, now: event.timestampMicros)
        default: break
        }
    }

    /// Counts the calls where the DMA layer (`ours`: first bus address by trace line) returned what the model predicted.
    mutating func compare(with ours: [Int: UInt64]) {
        sameAsDMALayer = ours.reduce(0) { count, entry in count + (predictions[entry.key] == entry.value ? 1 : 0) }
    }

    var report: LinuxModelComparison {
        LinuxModelComparison(compared: compared, identical: identical,
                             identicalPercent: compared == 0 ? 100 : Double(identical) * 100 / Double(compared),
                             coherentCompared: coherentCompared, coherentIdentical: coherentIdentical,
                             modelFailures: failures, firstDifferences: differences, sameAsDMALayer: sameAsDMALayer,
                             allocator: allocators.compactMap { $0?.statistics }.reduce(LinuxIOVAStatistics(), +))
    }
}

/// How well ``LinuxIOVAAllocator`` predicts Linux's bus addresses (dma_map_sg: the first DMA segment).
public struct LinuxModelComparison: Codable, Sendable {
    public var compared: Int
    public var identical: Int
    public var identicalPercent: Double
    public var coherentCompared: Int
    public var coherentIdentical: Int
    /// Calls the model could not place or free (should be 0).
    public var modelFailures: Int
    public var firstDifferences: [String]
    /// Compared calls (streaming and coherent) where the DMA layer returned the bus address this model
    /// predicted: with Linux placement, all of them, whatever the policy.
    public var sameAsDMALayer: Int
    /// The model allocators' counters summed over devices: per-CPU cache hits/misses, 32-bit-first hits/fallbacks.
    public var allocator: LinuxIOVAStatistics
}

/// The PCI host-bridge memory windows Linux reserves in every DMA domain, read from dmesg
/// (`pci_bus 0000:00: root bus resource [mem 0x40000000-0xafffffff window]`).
public enum PCIHostWindows {
    public static func parse(dmesg text: String) -> [ClosedRange<UInt64>] {
        var windows: [ClosedRange<UInt64>] = []
        for line in text.split(separator: "\n") where line.contains("root bus resource [mem ") {
            guard let open = line.range(of: "[mem ") else { continue }
            let rest = line[open.upperBound...].prefix { $0 != "]" && $0 != " " }
            let bounds = rest.split(separator: "-")
            guard bounds.count == 2, let lo = UInt64(bounds[0].dropFirst(2), radix: 16),
                  let hi = UInt64(bounds[1].dropFirst(2), radix: 16), lo <= hi else { continue }
            windows.append(lo...hi)
        }
        return windows
    }
}
