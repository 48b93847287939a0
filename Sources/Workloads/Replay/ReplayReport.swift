import DMA

/// What a replay did, as `iommu-sim replay --json` prints it. Key names are stable.
public struct ReplayReport: Codable, Sendable {
    public var trace: String
    public var driver: String
    public var policy: String
    public var lines: Int
    /// Event name as the trace prints it → number of lines.
    public var events: [String: Int]
    public var malformedLines: Int
    /// The first malformed lines, "line N: why".
    public var malformed: [String]
    /// DMA-API calls replayed (map, unmap, sg, alloc, free).
    public var replayedCalls: Int
    public var replayErrors: Int
    /// The first replay errors, "line N: why".
    public var errors: [String]
    public var peakLiveMappings: Int
    public var peakLiveIovaBytes: UInt64
    public var liveAtEnd: LiveAtEnd
    public var devices: [DeviceReplayReport]
    public var units: [UnitReport]
    public var comparison: ReplayComparison?
    /// Seconds spent parsing and replaying, and replayed trace events per second (parse + replay).
    public var parseSeconds: Double
    public var replaySeconds: Double
    public var eventsPerSecond: Double
    /// CPU time of the parsing and replaying thread, and events per CPU second: stable on a shared machine,
    /// where wall time includes waiting for a core (0 when the caller did not measure it).
    public var cpuSeconds: Double = 0
    public var eventsPerCPUSecond: Double = 0
    /// One thread, or one thread per trace CPU (`--thread-per-cpu`); either way calls run one at a time in timestamp order.
    public var threading: String
    /// Who placed IOVAs in the DMA layer's translated domains: `linux` or `native`.
    public var placement: String
    /// The DMA layer's IOVA allocators, summed over the translated domains (nil when none is translated):
    /// 32-bit-first hits and fallbacks, cache hits, misses and hit rate.
    public var allocator: DMAAllocatorStatistics?

    public struct LiveAtEnd: Codable, Sendable {
        public var streaming: Int
        public var scatterLists: Int
        public var coherent: Int
    }
}

public struct DeviceReplayReport: Codable, Sendable {
    public var name: String
    public var domain: String
    public var calls: Int
    public var statistics: DeviceDMAStatistics
    /// The device's domain's IOVA allocator (shared with the other devices in the domain); nil when not translated.
    public var allocator: DMAAllocatorStatistics?
}

/// Agreement with Linux, call by call.
public struct ReplayComparison: Codable, Sendable {
    /// Streaming map calls compared (dma_map_page/resource: dma_addr; dma_map_sg: the whole dma_addrs list).
    public var compared: Int
    public var identical: Int
    public var identicalPercent: Double
    public var coherentCompared: Int
    public var coherentIdentical: Int
    /// The trace's `map:`/`unmap:` events and their byte totals.
    public var linuxMapCalls: Int
    public var linuxMapBytes: UInt64
    public var linuxUnmapCalls: Int
    public var linuxUnmapBytes: UInt64
    /// IOMMU-API calls this system's DMA layer issued (see ``method``).
    public var ourMapCalls: UInt64
    public var ourMapBytes: UInt64
    public var ourUnmapCalls: UInt64
    public var ourUnmapBytes: UInt64
    public var method: String
    /// The first differing calls: "line N: linux 0x… ours 0x…".
    public var firstDifferences: [String]
    /// The same calls placed by ``LinuxIOVAAllocator`` (Linux 6.12's rules) instead of this system's allocator.
    public var linuxModel: LinuxModelComparison
}

extension ReplayReport {
    /// The human-readable report.
    public var text: String {
        var out = "Replay of \(trace) on \(driver) (\(policy)): \(lines) lines, \(malformedLines) malformed, "
        out += "\(replayedCalls) DMA calls replayed, \(replayErrors) replay errors\n"
        out += "Events:\n"
        for (name, count) in events.sorted(by: { $0.key < $1.key }) { out += "  \(name): \(count)\n" }
        for line in malformed { out += "  malformed \(line)\n" }
        for line in errors { out += "  error \(line)\n" }
        out += "Peak live mappings: \(peakLiveMappings), peak live IOVA bytes: \(peakLiveIovaBytes)\n"
        out += "Live at end (reported, not errors): \(liveAtEnd.streaming) streaming, \(liveAtEnd.scatterLists) scatter lists, "
        out += "\(liveAtEnd.coherent) coherent\n"
        for device in devices {
            out += "  \(device.name) [\(device.domain)]: \(device.calls) calls, \(device.statistics.mappings) maps, "
            out += "\(device.statistics.unmappings) unmaps, \(device.statistics.bytesMapped) bytes mapped\n"
        }
        if let allocator {
            out += "IOVA allocator (\(placement) placement): 32-bit-first hits \(allocator.preferredHits) fallbacks "
            out += "\(allocator.preferredFallbacks); cache hits \(allocator.cacheHits) misses \(allocator.cacheMisses) "
            out += "(hit rate \(String(format2: allocator.cacheHitRate * 100))%), cache drains \(allocator.cacheDrains)\n"
        }
        for unit in units {
            out += "  unit \(unit.name): IOTLB hits \(unit.iotlbHits) misses \(unit.iotlbMisses); invalidations page "
            out += "\(unit.pageInvalidations) domain \(unit.domainInvalidations) global \(unit.globalInvalidations)\n"
        }
        if let comparison {
            out += "Comparison with Linux: \(comparison.identical)/\(comparison.compared) identical bus addresses "
            out += "(\(String(format2: comparison.identicalPercent))%), coherent \(comparison.coherentIdentical)/\(comparison.coherentCompared)\n"
            out += "  IOMMU map calls: Linux \(comparison.linuxMapCalls) (\(comparison.linuxMapBytes) bytes), ours "
            out += "\(comparison.ourMapCalls) (\(comparison.ourMapBytes) bytes); unmap calls: Linux \(comparison.linuxUnmapCalls) "
            out += "(\(comparison.linuxUnmapBytes) bytes), ours \(comparison.ourUnmapCalls) (\(comparison.ourUnmapBytes) bytes)\n"
            for line in comparison.firstDifferences.prefix(5) { out += "  differs \(line)\n" }
            let model = comparison.linuxModel
            out += "Linux placement model (LinuxIOVAAllocator): \(model.identical)/\(model.compared) identical "
            out += "(\(String(format2: model.identicalPercent))%), coherent \(model.coherentIdentical)/\(model.coherentCompared), "
            out += "\(model.modelFailures) model failures\n"
            let stats = model.allocator
            out += "  model allocator: cache hits \(stats.cacheHits) misses \(stats.cacheMisses), 32-bit-first hits "
            out += "\(stats.preferredHits) fallbacks \(stats.preferredFallbacks), tree allocations \(stats.treeAllocations)\n"
            for line in model.firstDifferences.prefix(10) { out += "  model differs \(line)\n" }
        }
        out += "Speed: parse \(String(format2: parseSeconds * 1000)) ms, replay \(String(format2: replaySeconds * 1000)) ms, "
        out += "\(Int(eventsPerSecond)) events/s"
        out += cpuSeconds > 0 ? ", \(Int(eventsPerCPUSecond)) events per CPU second\n" : "\n"
        return out
    }
}

extension String {
    /// Two decimals without Foundation's formatter.
    init(format2 value: Double) {
        let scaled = (value * 100).rounded()
        guard scaled.isFinite, abs(scaled) < 1e17 else { self = "\(value)"; return }
        let whole = Int64(scaled) / 100, fraction = abs(Int64(scaled) % 100)
        self = "\(scaled < 0 && whole == 0 ? "-" : "")\(whole).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
