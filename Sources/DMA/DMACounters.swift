import Synchronization

/// What the DMA layer did for one device; see ``DeviceDMA/statistics``.
public struct DeviceDMAStatistics: Sendable, Hashable, Codable {
    public var mappings: UInt64
    public var unmappings: UInt64
    public var bytesMapped: UInt64
    public var coherentBytesLive: UInt64
}

final class DMACounters: Sendable {
    private let maps = Atomic<UInt64>(0)
    private let unmaps = Atomic<UInt64>(0)
    private let bytes = Atomic<UInt64>(0)
    private let coherent = Atomic<UInt64>(0)

    @inline(__always) func mapped(_ length: UInt64) {
        maps.add(1, ordering: .relaxed)
        bytes.add(length, ordering: .relaxed)
    }

    @inline(__always) func unmapped(_ length: UInt64) { unmaps.add(1, ordering: .relaxed) }
    func coherentAllocated(_ length: UInt64) { coherent.add(length, ordering: .relaxed) }
    func coherentFreed(_ length: UInt64) { coherent.subtract(length, ordering: .relaxed) }

    var snapshot: DeviceDMAStatistics {
        DeviceDMAStatistics(mappings: maps.load(ordering: .relaxed), unmappings: unmaps.load(ordering: .relaxed),
                            bytesMapped: bytes.load(ordering: .relaxed), coherentBytesLive: coherent.load(ordering: .relaxed))
    }
}

extension DeviceDMA {
    public var statistics: DeviceDMAStatistics { counters.snapshot }
}
