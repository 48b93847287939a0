/// Hands out 4 KiB page frames of emulated memory for page tables and buffers.
///
/// Free memory is kept as a sorted list of coalesced extents. That is enough
/// for an emulator: page-table pages are allocated only when a table level is
/// first needed, never per map of an already populated region.
public final class PhysicalPageAllocator: Sendable {
    /// Where in physical memory an allocation may come from.
    public enum Zone: Sendable, Hashable, CustomStringConvertible {
        case any
        /// The whole allocation lies at or below this last byte (legacy DMA zones).
        case below(PhysicalAddress)
        /// The whole allocation lies at or above this address (to place buffers
        /// out of reach of a narrow device on purpose).
        case above(PhysicalAddress)

        public var description: String {
            switch self {
            case .any: "any memory"
            case let .below(address): "memory at or below \(hex(address.value))"
            case let .above(address): "memory at or above \(hex(address.value))"
            }
        }
    }

    public let memory: PhysicalMemory
    /// The frames this allocator manages at all, sorted; frees outside them are wild.
    private let managed: [Range<UInt64>]
    private let state: HostLock<State>

    struct State {
        /// Free frames, sorted by start, never adjacent.
        var free: [Range<UInt64>]
        var allocatedPages: UInt64 = 0
    }

    /// Manages the given ranges of `memory`; everything else (firmware
    /// regions, MMIO holes) is never handed out.
    /// - Throws: ``MemoryError/outOfRange(address:count:memorySize:)`` for a range beyond memory.
    public init(memory: PhysicalMemory, usable: [ClosedRange<PhysicalAddress>]? = nil) throws(MemoryError) {
        self.memory = memory
        let ranges = usable ?? [PhysicalAddress(0)...PhysicalAddress(memory.size - 1)]
        var extents: [Range<UInt64>] = []
        for range in ranges {
            guard range.upperBound.value < memory.size else {
                throw .outOfRange(address: range.lowerBound.value, count: range.upperBound.value - range.lowerBound.value + 1,
                                  memorySize: memory.size)
            }
            let first = (range.lowerBound.value + PageSize.size4K - 1) >> 12
            let end = (range.upperBound.value + 1) >> 12
            if first < end { extents.append(first..<end) }
        }
        extents.sort { $0.lowerBound < $1.lowerBound }
        var merged: [Range<UInt64>] = []
        for extent in extents {
            if let last = merged.last, extent.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, extent.upperBound)
            } else {
                merged.append(extent)
            }
        }
        managed = merged
        state = HostLock(State(free: merged))
    }

    /// Pages currently handed out.
    public var allocatedPages: UInt64 { state.withLock { $0.allocatedPages } }
    /// Pages still free.
    public var freePages: UInt64 { state.withLock { $0.free.reduce(0) { $0 + UInt64($1.count) } } }

    /// Allocates `pages` contiguous frames aligned to `alignment` bytes
    /// (a power of two, at least 4 KiB), zeroed unless told otherwise.
    /// - Throws: ``MemoryError/invalidRequest(_:)`` for zero pages or a bad alignment,
    ///   ``MemoryError/outOfMemory(pages:zone:)`` when no such run is free in `zone`.
    public func allocate(pages: UInt64 = 1, alignment: UInt64 = PageSize.size4K, zone: Zone = .any,
                         zeroed: Bool = true) throws(MemoryError) -> PhysicalAddress {
        guard pages > 0, pages < 1 << 34 else { throw .invalidRequest("page count \(pages)") }
        guard alignment >= PageSize.size4K, alignment & (alignment - 1) == 0 else {
            throw .invalidRequest("alignment \(alignment) is not a power of two of at least 4 KiB")
        }
        let alignFrames = alignment >> 12
        let frame: UInt64? = state.withLock { state in
            for (index, extent) in state.free.enumerated() {
                var lowest = extent.lowerBound
                var highest = extent.upperBound
                switch zone {
                case .any: break
                case let .below(last): highest = min(highest, (last.value &+ 1) >> 12)
                case let .above(first): lowest = max(lowest, (first.value + PageSize.size4K - 1) >> 12)
                }
                let start = (lowest + alignFrames - 1) & ~(alignFrames - 1)
                guard start < highest, highest - start >= pages else { continue }
                state.free.remove(at: index)
                var insert = index
                if extent.lowerBound < start {
                    state.free.insert(extent.lowerBound..<start, at: insert)
                    insert += 1
                }
                if start + pages < extent.upperBound {
                    state.free.insert((start + pages)..<extent.upperBound, at: insert)
                }
                state.allocatedPages += pages
                return start
            }
            return nil
        }
        guard let frame else { throw .outOfMemory(pages: pages, zone: zone.description) }
        let address = PhysicalAddress(frame << 12)
        if zeroed { try memory.fill(address, count: pages << 12) }
        return address
    }

    /// Returns frames to the allocator. Freeing frames that are not
    /// allocated (double or wild free) throws and changes nothing.
    /// - Throws: ``MemoryError/misaligned(address:alignment:)``, ``MemoryError/notAllocated(address:pages:)``.
    public func free(_ address: PhysicalAddress, pages: UInt64 = 1) throws(MemoryError) {
        guard address.value % PageSize.size4K == 0 else { throw .misaligned(address: address.value, alignment: PageSize.size4K) }
        guard pages > 0, pages < 1 << 34 else { throw .invalidRequest("page count \(pages)") }
        let first = address.value >> 12
        let end = first + pages
        guard managed.contains(where: { $0.lowerBound <= first && end <= $0.upperBound }) else {
            throw .notAllocated(address: address.value, pages: pages)
        }
        let accepted = state.withLock { state -> Bool in
            // Index of the first extent starting after `first`.
            var low = 0, high = state.free.count
            while low < high {
                let mid = (low + high) / 2
                if state.free[mid].lowerBound <= first { low = mid + 1 } else { high = mid }
            }
            if low > 0, state.free[low - 1].upperBound > first { return false }
            if low < state.free.count, state.free[low].lowerBound < end { return false }
            var merged = first..<end
            var insertAt = low
            if low < state.free.count, state.free[low].lowerBound == end {
                merged = merged.lowerBound..<state.free[low].upperBound
                state.free.remove(at: low)
            }
            if low > 0, state.free[low - 1].upperBound == first {
                merged = state.free[low - 1].lowerBound..<merged.upperBound
                state.free.remove(at: low - 1)
                insertAt -= 1
            }
            state.free.insert(merged, at: insertAt)
            state.allocatedPages -= pages
            return true
        }
        guard accepted else { throw .notAllocated(address: address.value, pages: pages) }
    }
}
