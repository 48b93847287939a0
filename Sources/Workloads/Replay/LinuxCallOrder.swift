/// The order in which Linux's IOVA allocator actually saw the trace's calls.
///
/// A dma_map_* line is printed after its IOVA was allocated and mapped, and
/// an interrupt on the same CPU can run (and free IOVAs) in between; so the
/// allocation is placed at its `map:` event (same CPU, same IOVA, before the
/// line). dma_unmap_page is printed after the free, at its `unmap:`; but
/// dma_unmap_sg is printed before its `unmap:` and the free follows that
/// `unmap:`. Calls with no matching iommu event (identity domains) keep their place.
enum LinuxCallOrder {
    private struct Key: Hashable { var cpu: Int; var iova: UInt64 }

    static func order(_ events: [TraceEvent]) -> [TraceEvent] {
        var maps: [Key: [Int]] = [:], unmaps: [Key: [Int]] = [:]
        for (index, event) in events.enumerated() {
            if event.kind == .iommuMap { maps[Key(cpu: event.cpu, iova: event.address), default: []].append(index) }
            if event.kind == .iommuUnmap { unmaps[Key(cpu: event.cpu, iova: event.address), default: []].append(index) }
        }
        struct SGKey: Hashable { var device: Int; var first: UInt64; var count: Int }
        var scatterIOVA: [SGKey: [UInt64]] = [:]
        var keyed: [(key: Int, index: Int)] = []
        keyed.reserveCapacity(events.count / 2)
        for (index, event) in events.enumerated() where event.kind.isDMACall {
            var key = index
            switch event.kind {
            case .dmaMapPage, .dmaMapResource, .dmaAlloc:
                key = last(in: maps[Key(cpu: event.cpu, iova: event.address & ~0xFFF)], before: index) ?? index
            case .dmaMapSG:
                let iova = event.busSegments.first ?? 0
                scatterIOVA[SGKey(device: event.device, first: event.physicalSegments.first ?? 0,
                                  count: event.physicalSegments.count), default: []].append(iova)
                key = last(in: maps[Key(cpu: event.cpu, iova: iova & ~0xFFF)], before: index) ?? index
            case .dmaUnmapPage, .dmaUnmapResource, .dmaFree:
                key = last(in: unmaps[Key(cpu: event.cpu, iova: event.address & ~0xFFF)], before: index) ?? index
            case .dmaUnmapSG:
                let sg = SGKey(device: event.device, first: event.physicalSegments.first ?? 0, count: event.physicalSegments.count)
                if let iova = scatterIOVA[sg]?.popLast() {
                    key = first(in: unmaps[Key(cpu: event.cpu, iova: iova & ~0xFFF)], after: index) ?? index
                }
            default: break
            }
            keyed.append((key, index))
        }
        keyed.sort { ($0.key, $0.index) < ($1.key, $1.index) }
        return keyed.map { events[$0.index] }
    }

    private static func last(in list: [Int]?, before index: Int) -> Int? {
        guard let list else { return nil }
        var low = 0, high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle] < index { low = middle + 1 } else { high = middle }
        }
        return low > 0 ? list[low - 1] : nil
    }

    private static func first(in list: [Int]?, after index: Int) -> Int? {
        guard let list else { return nil }
        var low = 0, high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle] <= index { low = middle + 1 } else { high = middle }
        }
        return low < list.count ? list[low] : nil
    }
}
