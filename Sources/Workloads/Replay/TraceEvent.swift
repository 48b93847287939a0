import DMA

/// The ftrace events the replay understands, named as the trace prints them.
public enum TraceEventKind: UInt8, Sendable, Hashable, CaseIterable, Codable {
    case dmaMapPage, dmaUnmapPage, dmaMapResource, dmaUnmapResource, dmaMapSG, dmaUnmapSG
    case dmaAlloc, dmaFree, dmaSyncSingleForCPU, dmaSyncSingleForDevice, dmaSyncSGForCPU, dmaSyncSGForDevice
    case iommuMap, iommuUnmap, addDeviceToGroup, attachDeviceToDomain, removeDeviceFromGroup, ioPageFault
    case tracingMarkWrite
    /// Any other event (scheduler, irq, ...): counted, never replayed.
    case other

    /// The event's name as ftrace prints it after the timestamp (without the colon).
    public var traceName: String {
        switch self {
        case .dmaMapPage: "dma_map_page"
        case .dmaUnmapPage: "dma_unmap_page"
        case .dmaMapResource: "dma_map_resource"
        case .dmaUnmapResource: "dma_unmap_resource"
        case .dmaMapSG: "dma_map_sg"
        case .dmaUnmapSG: "dma_unmap_sg"
        case .dmaAlloc: "dma_alloc"
        case .dmaFree: "dma_free"
        case .dmaSyncSingleForCPU: "dma_sync_single_for_cpu"
        case .dmaSyncSingleForDevice: "dma_sync_single_for_device"
        case .dmaSyncSGForCPU: "dma_sync_sg_for_cpu"
        case .dmaSyncSGForDevice: "dma_sync_sg_for_device"
        case .iommuMap: "map"
        case .iommuUnmap: "unmap"
        case .addDeviceToGroup: "add_device_to_group"
        case .attachDeviceToDomain: "attach_device_to_domain"
        case .removeDeviceFromGroup: "remove_device_from_group"
        case .ioPageFault: "io_page_fault"
        case .tracingMarkWrite: "tracing_mark_write"
        case .other: "other"
        }
    }

    static let byName: [String: TraceEventKind] = Dictionary(
        uniqueKeysWithValues: allCases.filter { $0 != .other }.map { ($0.traceName, $0) })

    /// Whether the event is a DMA-API call this system replays.
    public var isDMACall: Bool {
        switch self {
        case .dmaMapPage, .dmaUnmapPage, .dmaMapResource, .dmaUnmapResource, .dmaMapSG, .dmaUnmapSG, .dmaAlloc, .dmaFree:
            true
        default: false
        }
    }
}

/// One parsed trace line. Fields an event does not print stay zero/empty.
public struct TraceEvent: Sendable, Hashable {
    public var kind: TraceEventKind
    /// 1-based line number in the trace file.
    public var line: Int
    public var cpu: Int
    public var pid: Int
    /// Trace clock in microseconds.
    public var timestampMicros: UInt64
    /// Index into ``ParsedTrace/devices``; -1 when the event names no device.
    public var device: Int = -1
    public var direction: DMADirection = .bidirectional
    /// dma_addr / map and unmap iova.
    public var address: UInt64 = 0
    /// size in bytes (map/unmap: size; sg: the sum of the DMA segment sizes).
    public var size: UInt64 = 0
    /// phys_addr / map paddr / unmap unmapped_size.
    public var physical: UInt64 = 0
    /// dma_map_sg: dma_addrs; dma_sync_sg_*: dma_addrs.
    public var busSegments: [UInt64] = []
    /// dma_map_sg: sizes; dma_sync_sg_*: sizes.
    public var segmentSizes: [UInt64] = []
    /// dma_map_sg / dma_unmap_sg: phys_addrs.
    public var physicalSegments: [UInt64] = []
    /// dma_map_sg printed [TRUNCATED]: the lists hold only the first 128 entries.
    public var truncated: Bool = false
    /// add_device_to_group: the group number.
    public var group: Int = -1
}

/// A line the parser could not read.
public struct MalformedTraceLine: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public var description: String { "line \(line): \(reason)" }

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }
}

/// A parsed trace: its events in file order, the devices they name, and per-name line counts.
public struct ParsedTrace: Sendable {
    public var events: [TraceEvent] = []
    /// Device names in first-seen order (as the trace prints them, e.g. 0000:00:02.0).
    public var devices: [String] = []
    /// Event name as printed → number of lines (every event, replayed or not).
    public var eventCounts: [String: Int] = [:]
    public var malformed: [MalformedTraceLine] = []
    /// Lines read, headers included.
    public var lineCount: Int = 0
}

/// Thrown by ``TraceParser`` in strict mode, and for unreadable files.
public enum TraceParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(MalformedTraceLine)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .malformed(line): "malformed trace \(line)"
        case let .unreadable(path, reason): "cannot read trace '\(path)': \(reason)"
        }
    }
}
