import DMA
import Emulation
import IOMMUCore

/// Replays every DMA-API call of a parsed Linux trace, per device and in
/// timestamp order, through this system's generic DMA API on an emulated
/// platform whose devices are the trace's devices.
///
/// All calls run on the calling thread unless ``ReplayConfiguration/threadPerCPU``
/// hands each CPU's calls to a thread of its own. Mappings still live at the end are reported, not errors.
public final class TraceReplayer {
    public let trace: ParsedTrace
    public let configuration: ReplayConfiguration
    public let platform: EmulatedPlatform
    private var handles: [ReplayDMA?]

    private struct Key: Hashable { var device: Int; var address: UInt64 }
    private struct SGKey: Hashable { var device: Int; var first: UInt64; var count: Int }
    private struct Streaming { var bus: UInt64; var size: UInt64 }
    /// Live streaming mappings by Linux's dma_addr. Identity domains can hold the same address twice at
    /// once; the later ones wait in `streamingShadowed` (no array per mapping on the common path).
    private var streaming: [Key: Streaming] = [:]
    private var streamingShadowed: [Key: [Streaming]] = [:]
    private var scatterLists: [SGKey: [MappedScatterList]] = [:]
    private var coherent: [Key: [CoherentBuffer]] = [:]
    private var liveMappings = 0, liveBytes: UInt64 = 0
    private var peakMappings = 0, peakBytes: UInt64 = 0
    private var errors: [String] = [], errorCount = 0
    private var callsPerDevice: [Int]
    private var compared = 0, identical = 0, coherentCompared = 0, coherentIdentical = 0
    private var differences: [String] = []
    /// The first bus address this system returned for each compared call, by trace line (checked against the model).
    private var oursByLine: [Int: UInt64] = [:]
    private var linuxMaps = 0, linuxMapBytes: UInt64 = 0, linuxUnmaps = 0, linuxUnmapBytes: UInt64 = 0
    private var replayed = 0
    /// Per-call latencies and a timeline, kept only when ``ReplayConfiguration/recordsLatencies``.
    var latencies = LatencyRecorder()
    var timeline: [TimelineSample] = []
    private let clock = ContinuousClock()
    private var model: LinuxPlacementModel

    /// Builds the platform for `trace`.
    /// - Throws: ``PlatformError`` when the platform cannot be built (e.g. a device name that is not a PCI address,
    ///   or a group's direct region the driver cannot map).
    public init(trace: ParsedTrace, configuration: ReplayConfiguration) throws(PlatformError) {
        self.trace = trace
        self.configuration = configuration
        let built = try EmulatedPlatform(PlatformSpecification.replay(of: trace, configuration: configuration))
        platform = built
        handles = trace.devices.map { name in
            (try? PCIAddress(parsing: name)).flatMap { built.dma[$0] }.map(ReplayDMA.init)
        }
        callsPerDevice = Array(repeating: 0, count: trace.devices.count)
        let regions = trace.devices.map { name -> [ClosedRange<UInt64>] in
            let group = configuration.groups.first { $0.devices.contains(name) }
            let reserved = (group?.reservedRegions ?? [ReservedRegion.x86MSIWindow]).filter { $0.kind != .softwareMSI }
            return reserved.map(\.range) + configuration.pciWindows
        }
        // An explicit --policy decides for every device; otherwise each group's own type (Linux's view).
        let identity = trace.devices.map { name -> Bool in
            if let policy = configuration.policy { return policy == .passthrough }
            if let kind = configuration.groups.first(where: { $0.devices.contains(name) })?.domainKind { return kind == .identity }
            return configuration.effectivePolicy == .passthrough
        }
        let lazy = trace.devices.map { name -> Bool in
            if let policy = configuration.policy { return policy == .lazy }
            if let kind = configuration.groups.first(where: { $0.devices.contains(name) })?.domainKind { return kind == .dmaLazy }
            return configuration.effectivePolicy == .lazy
        }
        model = LinuxPlacementModel(devices: trace.devices.count, regions: regions, identity: identity, lazy: lazy)
    }

    /// Runs the replay once.
    public func run(traceName: String = "trace", parseSeconds: Double = 0) -> ReplayReport {
        let clock = ContinuousClock()
        let start = clock.now
        var order = trace.events
        if let limit = configuration.eventLimit, order.count > limit { order.removeSubrange(limit...) }
        // ftrace merges the per-CPU buffers by timestamp; sort only if a file was edited or concatenated.
        let unordered = order.withUnsafeBufferPointer { events in
            events.indices.dropFirst().contains { events[$0 - 1].timestampMicros > events[$0].timestampMicros }
        }
        if unordered {
            order = order.enumerated().sorted {
                ($0.element.timestampMicros, $0.offset) < ($1.element.timestampMicros, $1.offset)
            }.map(\.element)
        }
        // Replay in the order Linux's allocator saw the calls (each at its map:/unmap: event), not in the order
        // the dma_* lines were printed: an interrupt can free IOVAs between an allocation and its line.
        let calls = LinuxCallOrder.order(order)
        let sampleEvery = max(1, calls.count / 100)
        let cpuThreads = configuration.threadPerCPU ? CPUThreads(count: (order.map(\.cpu).max() ?? 0) + 1) : nil
        for event in order where event.kind == .iommuMap || event.kind == .iommuUnmap {
            if event.kind == .iommuMap {
                linuxMaps += 1
                linuxMapBytes += event.size
            } else {
                linuxUnmaps += 1
                linuxUnmapBytes += event.physical
            }
        }
        for (index, event) in calls.enumerated() {
            if let cpuThreads, event.kind.isDMACall {
                cpuThreads.run(on: event.cpu) { self.replay(event) }
            } else if configuration.recordsLatencies {
                let before = clock.now
                replay(event)
                let spent = clock.now - before
                let nanoseconds = UInt64(spent.components.attoseconds / 1_000_000_000) + UInt64(spent.components.seconds) * 1_000_000_000
                switch event.kind {
                case .dmaMapPage, .dmaMapResource, .dmaMapSG, .dmaAlloc: latencies.recordMap(nanoseconds)
                case .dmaUnmapPage, .dmaUnmapResource, .dmaUnmapSG, .dmaFree: latencies.recordUnmap(nanoseconds)
                default: break
                }
                if index % sampleEvery == 0 { sample(since: start, operations: UInt64(replayed)) }
            } else {
                replay(event)
            }
        }
        cpuThreads?.stop()
        // What is still queued is flushed at the trace's last moment, as if the replay ended there.
        let end = DMACallContext(cpu: 0, nanoseconds: (calls.map(\.timestampMicros).max() ?? 0) &* 1000)
        end.run { for handle in handles { handle?.flushDeferred() } }
        if configuration.compare {
            for event in calls where event.device >= 0 { model.replay(event) }
            model.compare(with: oursByLine)
        }
        let seconds = Double((clock.now - start).components.attoseconds) / 1e18 + Double((clock.now - start).components.seconds)
        return report(traceName: traceName, events: order.count, parseSeconds: parseSeconds, replaySeconds: seconds)
    }

    private func sample(since start: ContinuousClock.Instant, operations: UInt64) {
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let units = platform.units.map(\.unitReport)
        let hits = units.reduce(0) { $0 + $1.iotlbHits }, misses = units.reduce(0) { $0 + $1.iotlbMisses }
        timeline.append(TimelineSample(elapsedSeconds: seconds, operations: operations, iovaBytesInUse: liveBytes,
                                       iotlbHitRate: hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses),
                                       faults: units.reduce(0) { $0 + $1.faultsRecorded }))
    }

    private func fail(_ event: TraceEvent, _ why: String) {
        errorCount += 1
        if errors.count < 20 { errors.append("line \(event.line): \(event.kind.traceName): \(why)") }
    }

    private func live(_ mappings: Int, _ bytes: Int64) {
        liveMappings += mappings
        liveBytes = UInt64(Int64(liveBytes) + bytes)
        peakMappings = max(peakMappings, liveMappings)
        peakBytes = max(peakBytes, liveBytes)
    }

    private func note(_ event: TraceEvent, linux: [UInt64], ours: [UInt64], coherent isCoherent: Bool = false) {
        guard configuration.compare else { return }
        oursByLine[event.line] = ours.first
        let same = linux == ours
        if isCoherent {
            coherentCompared += 1
            if same { coherentIdentical += 1 }
        } else {
            compared += 1
            if same { identical += 1 }
        }
        if !same, differences.count < 20 {
            let show = { (list: [UInt64]) in list.prefix(4).map { "0x" + String($0, radix: 16) }.joined(separator: ",") }
            differences.append("line \(event.line): \(event.kind.traceName) linux \(show(linux)) ours \(show(ours))")
        }
    }

    private func replay(_ event: TraceEvent) {
        guard event.kind.isDMACall else { return }
        guard event.device >= 0, event.device < handles.count, var dma = handles[event.device] else {
            fail(event, "device \(event.device < 0 ? "?" : trace.devices[event.device]) has no DMA handle")
            return
        }
        replayed += 1
        callsPerDevice[event.device] += 1
        defer { handles[event.device] = dma }
        // The call runs as the trace's CPU at the trace's time: Linux placement picks that CPU's
        // IOVA cache and runs its flush-queue timer on the trace's clock.
        let context = DMACallContext(cpu: event.cpu, nanoseconds: event.timestampMicros &* 1000)
        context.run { perform(event, on: &dma) }
    }

    private func perform(_ event: TraceEvent, on dma: inout ReplayDMA) {
        let key = Key(device: event.device, address: event.address)
        do throws(DMAError) {
            switch event.kind {
            case .dmaMapPage, .dmaMapResource:
                let bus = try dma.map(event.physical, size: event.size, direction: event.direction)
                if let earlier = streaming.updateValue(Streaming(bus: bus, size: event.size), forKey: key) {
                    streamingShadowed[key, default: []].append(earlier)
                }
                live(1, Int64(event.size))
                note(event, linux: [event.address], ours: [bus])
            case .dmaUnmapPage, .dmaUnmapResource:
                guard let mapping = streaming.removeValue(forKey: key) else {
                    return fail(event, "no live mapping at dma_addr 0x\(String(event.address, radix: 16))")
                }
                if var shadowed = streamingShadowed[key], let earlier = shadowed.popLast() {
                    streaming[key] = earlier
                    streamingShadowed[key] = shadowed.isEmpty ? nil : shadowed
                }
                live(-1, -Int64(mapping.size))
                try dma.unmap(mapping.bus, size: event.size, direction: event.direction)
            case .dmaMapSG:
                let mapped = try dma.mapScatterList(Self.elements(of: event), direction: event.direction)
                let sgKey = SGKey(device: event.device, first: event.physicalSegments.first ?? 0, count: event.physicalSegments.count)
                scatterLists[sgKey, default: []].append(mapped)
                live(1, Int64(event.size))
                note(event, linux: event.busSegments, ours: mapped.segments.map(\.busAddress.value))
            case .dmaUnmapSG:
                let sgKey = SGKey(device: event.device, first: event.physicalSegments.first ?? 0, count: event.physicalSegments.count)
                guard var stack = scatterLists[sgKey], let mapped = stack.popLast() else {
                    return fail(event, "no live scatter list with these phys_addrs")
                }
                scatterLists[sgKey] = stack.isEmpty ? nil : stack
                live(-1, -Int64(mapped.segments.reduce(0) { $0 + $1.length }))
                try dma.unmapScatterList(mapped)
            case .dmaAlloc:
                let buffer = try dma.allocateCoherent(size: event.size)
                coherent[key, default: []].append(buffer)
                live(1, Int64(event.size))
                note(event, linux: [event.address], ours: [buffer.busAddress.value], coherent: true)
            case .dmaFree:
                guard var stack = coherent[key], let buffer = stack.popLast() else {
                    return fail(event, "no live coherent buffer at dma_addr 0x\(String(event.address, radix: 16))")
                }
                coherent[key] = stack.isEmpty ? nil : stack
                live(-1, -Int64(buffer.size))
                try dma.freeCoherent(buffer)
            default: break
            }
        } catch {
            fail(event, "\(error)")
        }
    }

    /// The physical elements of a dma_map_sg. The trace prints each element's
    /// physical address but not its length, only the DMA segment sizes: when
    /// no segments were merged (as many as elements) those are the elements'
    /// lengths; otherwise each element is taken to be one page and the last one
    /// gets the rest (the total, which sizes the IOVA range, is exact).
    static func elements(of event: TraceEvent) -> [ReplaySegment] {
        let count = event.physicalSegments.count
        guard count > 0 else { return [] }
        if event.segmentSizes.count == count, !event.segmentSizes.contains(0) {
            return zip(event.physicalSegments, event.segmentSizes).map { ReplaySegment(bus: $0, length: $1) }
        }
        let page: UInt64 = 4096
        let total = max(event.size, UInt64(count))
        let each = total >= page * UInt64(count) ? page : total / UInt64(count)
        return event.physicalSegments.enumerated().map { index, physical in
            ReplaySegment(bus: physical, length: index == count - 1 ? total - each * UInt64(count - 1) : each)
        }
    }

    private func report(traceName: String, events: Int, parseSeconds: Double, replaySeconds: Double) -> ReplayReport {
        let devices = trace.devices.indices.compactMap { index -> DeviceReplayReport? in
            guard let dma = handles[index] else { return nil }
            return DeviceReplayReport(name: trace.devices[index], domain: dma.handle.domainKind.map { "\($0)" } ?? "none",
                                      calls: callsPerDevice[index], statistics: dma.handle.statistics,
                                      allocator: dma.handle.allocatorStatistics)
        }
        // Devices that share a domain share its allocator: count each domain once.
        var domainsSeen = Set<ObjectIdentifier>()
        var allocator: DMAAllocatorStatistics?
        for handle in platform.dma.values.sorted(by: { $0.device.address < $1.device.address }) {
            guard let domain = handle.translatedDomain, domainsSeen.insert(ObjectIdentifier(domain)).inserted,
                  let statistics = handle.allocatorStatistics else { continue }
            allocator = allocator.map { $0 + statistics } ?? statistics
        }
        var comparison: ReplayComparison?
        if configuration.compare {
            let ours = handles.compactMap { $0 }
            comparison = ReplayComparison(
                compared: compared, identical: identical,
                identicalPercent: compared == 0 ? 100 : Double(identical) * 100 / Double(compared),
                coherentCompared: coherentCompared, coherentIdentical: coherentIdentical,
                linuxMapCalls: linuxMaps, linuxMapBytes: linuxMapBytes, linuxUnmapCalls: linuxUnmaps, linuxUnmapBytes: linuxUnmapBytes,
                ourMapCalls: ours.reduce(0) { $0 + $1.iommuMapCalls }, ourMapBytes: ours.reduce(0) { $0 + $1.iommuMapBytes },
                ourUnmapCalls: ours.reduce(0) { $0 + $1.iommuUnmapCalls }, ourUnmapBytes: ours.reduce(0) { $0 + $1.iommuUnmapBytes },
                method: "counted at the DMA adapter: one IOMMU-API map per streaming map and per physically contiguous "
                    + "run of a scatter list or coherent buffer in a translated domain, one unmap per unmap; direct regions "
                    + "mapped at attach are not counted",
                firstDifferences: differences, linuxModel: model.report)
        }
        let total = parseSeconds + replaySeconds
        return ReplayReport(
            trace: traceName, driver: configuration.family.rawValue, policy: configuration.effectivePolicy.rawValue,
            lines: trace.lineCount, events: trace.eventCounts, malformedLines: trace.malformed.count,
            malformed: trace.malformed.prefix(20).map(\.description), replayedCalls: replayed, replayErrors: errorCount,
            errors: errors, peakLiveMappings: peakMappings, peakLiveIovaBytes: peakBytes,
            liveAtEnd: .init(streaming: streaming.count + streamingShadowed.values.reduce(0) { $0 + $1.count },
                             scatterLists: scatterLists.values.reduce(0) { $0 + $1.count },
                             coherent: coherent.values.reduce(0) { $0 + $1.count }),
            devices: devices, units: platform.units.map(\.unitReport), comparison: comparison,
            parseSeconds: parseSeconds, replaySeconds: replaySeconds,
            eventsPerSecond: total > 0 ? Double(events) / total : 0,
            threading: configuration.threadPerCPU ? "one thread per trace CPU, calls handed over in timestamp order" : "one thread, all CPUs' calls in timestamp order",
            placement: configuration.placement.rawValue, allocator: allocator)
    }
}
