import Emulation
import IOMMUCore
import IOVA

/// Shadow buffers: granules of physical memory mapped read+write into one
/// device's domain once, when the device's DMA handle is set up, and never
/// unmapped while the device lives. A streaming mapping copies the caller's
/// buffer into free slots and hands out the slots' bus address; its unmap
/// copies the slots back (for from-device and bidirectional transfers) and
/// frees them. The streaming path never changes a page table, so it never
/// waits for an IOTLB invalidation, and no mapped page ever holds a byte of
/// memory the caller did not hand to this device.
///
/// What a slot may hold besides the buffer it serves now: zeros (the pool
/// starts zeroed) or bytes of this device's own earlier buffers, and what
/// the device wrote itself: never another device's or the CPU's data. Slots
/// are not cleared on reuse, which would cost a page of stores per map and
/// protect nothing the device did not already hold.
///
/// A buffer keeps its offset within its granule, so a slot run covers
/// `offset + size` rounded up to granules. Every direction copies in, as
/// swiotlb does, so that bytes the device does not write come back unchanged.
final class ShadowPool: Sendable {
    /// What one live slot run serves.
    struct Record: Sendable {
        var original: UInt64 = 0
        var size: UInt64 = 0
        var offset: UInt64 = 0
        var granules: Int = 0
        var direction: DMADirection = .bidirectional
        var live = false
    }

    /// Slot bookkeeping, all preallocated: a map or unmap allocates nothing.
    struct Slots {
        /// One bit per granule, set while taken.
        var taken: [UInt64]
        /// By first granule of a run.
        var records: [Record]
        /// For each taken granule, the first granule of its run (for syncs inside a mapping); -1 when free.
        var owner: [Int32]
        /// Where the next search starts (next fit), so a freed slot is not the very next one reused.
        var hint = 0
        var free: Int
        var released = false
        var statistics = ShadowPoolStatistics()
    }

    let device: PCIAddress
    let busBase: UInt64
    let physicalBase: PhysicalAddress
    let granule: UInt64
    let granuleShift: UInt64
    let granuleCount: Int
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let state: DMADomainState
    /// Held for a few bitmap words and one record, never across a copy: a spin lock's one
    /// compare-and-swap is cheaper than a mutex for that.
    private let slots: SpinLock<Slots>

    var capacity: UInt64 { UInt64(granuleCount) << granuleShift }
    var lastBus: UInt64 { busBase + (capacity - 1) }

    /// Allocates zeroed, granule-aligned memory for `granules` slots, takes IOVA space for it under
    /// `limit` (below 4 GiB first when `preferredLimit` says so) and maps it read+write, all or nothing.
    /// - Throws: ``DMAError/memory(_:)`` when no such physical run is free, ``DMAError/addressSpaceExhausted(_:)``,
    ///   ``DMAError/iommu(_:)``.
    init(device: PCIAddress, granules: Int, state: DMADomainState, pages: PhysicalPageAllocator,
         limit: UInt64, preferredLimit: UInt64?) throws(DMAError) {
        self.device = device
        self.state = state
        self.pages = pages
        memory = pages.memory
        granule = state.granule
        granuleShift = UInt64(state.granule.trailingZeroBitCount)
        granuleCount = max(1, granules)
        let bytes = UInt64(granuleCount) << granuleShift
        do { physicalBase = try pages.allocate(pages: bytes / PageSize.size4K, alignment: max(granule, PageSize.size4K)) }
        catch { throw .memory(error) }
        let iova: UInt64
        do { iova = try state.allocateIOVA(size: bytes, limit: limit, preferredLimit: preferredLimit) } catch {
            try? pages.free(physicalBase, pages: bytes / PageSize.size4K)
            throw .addressSpaceExhausted(error)
        }
        do { try state.domain.map(iova: IOVirtualAddress(iova), physical: physicalBase, size: bytes, permissions: .readWrite) }
        catch {
            state.abandonIOVA(iova, size: bytes)
            try? pages.free(physicalBase, pages: bytes / PageSize.size4K)
            throw .iommu(error)
        }
        busBase = iova
        slots = SpinLock(Slots(taken: [UInt64](repeating: 0, count: (granuleCount + 63) / 64),
                               records: [Record](repeating: Record(), count: granuleCount),
                               owner: [Int32](repeating: -1, count: granuleCount), free: granuleCount))
    }

    @inline(__always)
    func contains(_ bus: UInt64) -> Bool { bus >= busBase && bus <= lastBus }

    // MARK: Streaming

    /// Copies `size` bytes at `original` into a free slot run; returns the run's bus address plus the buffer's offset.
    /// - Throws: ``DMAError/shadowPoolExhausted(size:granulesFree:)`` when no run of free slots is long enough,
    ///   ``DMAError/deviceUnavailable(_:reason:)`` after ``release(unmapping:)``, ``DMAError/memory(_:)`` when
    ///   `original` is not memory (nothing stays taken then).
    func take(_ original: PhysicalAddress, size: UInt64, direction: DMADirection) throws(DMAError) -> IOVirtualAddress {
        let offset = original.value & (granule - 1)
        let fits = size <= capacity - offset
        let runLength = fits ? Int((offset + size + granule - 1) >> granuleShift) : granuleCount + 1
        let first = try slots.withLock { (slots) throws(DMAError) -> Int in
            guard !slots.released else { throw .deviceUnavailable(device, reason: "its shadow pool was released at removal") }
            guard runLength <= slots.free, let first = Self.findRun(runLength, in: &slots) else {
                throw .shadowPoolExhausted(size: size, granulesFree: UInt64(slots.free))
            }
            Self.mark(first, runLength, taken: true, in: &slots)
            slots.records[first] = Record(original: original.value, size: size, offset: offset, granules: runLength,
                                          direction: direction, live: true)
            slots.hint = first + runLength == granuleCount ? 0 : first + runLength
            slots.statistics.mappings += 1
            slots.statistics.bytesCopiedIn += size
            return first
        }
        let slot = busBase + (UInt64(first) << granuleShift)
        do { try memory.copy(from: original, to: physical(ofBus: slot + offset), count: size) } catch {
            slots.withLock { slots in
                slots.records[first].live = false
                Self.mark(first, runLength, taken: false, in: &slots)
                slots.statistics.mappings -= 1
                slots.statistics.bytesCopiedIn -= size
            }
            throw .memory(error)
        }
        return IOVirtualAddress(slot + offset)
    }

    /// Ends the mapping at `bus`: copies the slots back to the caller's buffer unless it went to the device, then frees them.
    /// - Throws: ``DMAError/notMapped(busAddress:)`` when no live mapping starts at `bus` (a second unmap included),
    ///   ``DMAError/sizeMismatch(busAddress:mapped:given:)`` (changing nothing), ``DMAError/memory(_:)``.
    func give(back bus: UInt64, size: UInt64) throws(DMAError) {
        let first = Int((bus - busBase) >> granuleShift)
        let record = try slots.withLock { (slots) throws(DMAError) -> Record in
            let record = slots.records[first]
            guard !slots.released, record.live, record.offset == bus & (granule - 1) else { throw .notMapped(busAddress: bus) }
            guard record.size == size else { throw .sizeMismatch(busAddress: bus, mapped: record.size, given: size) }
            // The slots stay taken until the copy-back is done, so no map can hand them out meanwhile.
            slots.records[first].live = false
            return record
        }
        defer {
            slots.withLock { slots in
                Self.mark(first, record.granules, taken: false, in: &slots)
                slots.statistics.unmappings += 1
                if record.direction != .toDevice { slots.statistics.bytesCopiedOut += record.size }
            }
        }
        if record.direction != .toDevice {
            do { try memory.copy(from: physical(ofBus: bus), to: PhysicalAddress(record.original), count: size) }
            catch { throw .memory(error) }
        }
    }

    /// Copies `size` bytes at `bus`, inside one live mapping, between its slots and the caller's buffer
    /// (when `copying`: the direction asks for it; the range is checked either way).
    /// - Throws: ``DMAError/syncOfUnmapped(busAddress:size:)``, ``DMAError/memory(_:)``.
    func sync(_ bus: UInt64, size: UInt64, toDevice: Bool, copying: Bool) throws(DMAError) {
        let index = Int((bus - busBase) >> granuleShift)
        let found = slots.withLock { slots -> (first: Int, record: Record)? in
            let first = Int(slots.owner[index])
            guard first >= 0, slots.records[first].live else { return nil }
            return (first, slots.records[first])
        }
        guard let (first, record) = found else { throw .syncOfUnmapped(busAddress: bus, size: size) }
        let start = busBase + (UInt64(first) << granuleShift) + record.offset
        guard bus >= start, size <= record.size - (bus - start) else { throw .syncOfUnmapped(busAddress: bus, size: size) }
        guard copying else { return }
        let original = PhysicalAddress(record.original + (bus - start))
        do {
            if toDevice { try memory.copy(from: original, to: physical(ofBus: bus), count: size) }
            else { try memory.copy(from: physical(ofBus: bus), to: original, count: size) }
        } catch { throw .memory(error) }
    }

    @inline(__always)
    func physical(ofBus bus: UInt64) -> PhysicalAddress { physicalBase + (bus - busBase) }

    // MARK: Removal

    /// Gives the pool back when its device goes: unmaps it with an immediate invalidation (when the domain
    /// still has tables: `unmapping`), frees its IOVA space and its memory. Later calls do nothing; live
    /// mappings are dropped without a copy-back (the driver leaked them).
    func release(unmapping: Bool) {
        let first = slots.withLock { slots -> Bool in
            defer { slots.released = true }
            return !slots.released
        }
        guard first else { return }
        if unmapping {
            var gather = IOTLBGather()
            _ = try? state.domain.unmap(iova: IOVirtualAddress(busBase), size: capacity, gather: &gather)
            state.domain.flush(gather)
        }
        state.abandonIOVA(busBase, size: capacity)
        try? pages.free(physicalBase, pages: capacity / PageSize.size4K)
    }

    var isReleased: Bool { slots.withLock { $0.released } }
    var statistics: ShadowPoolStatistics {
        slots.withLock { slots in
            var result = slots.statistics
            result.granules = UInt64(granuleCount)
            result.granulesFree = UInt64(slots.free)
            result.liveMappings = UInt64(slots.records.lazy.filter(\.live).count)
            return result
        }
    }

    // MARK: Slot search

    /// The first granule of `length` free granules, searching from the hint and wrapping once.
    /// (`inout` only so that the slot arrays are borrowed, not retained, on every map.)
    static func findRun(_ length: Int, in slots: inout Slots) -> Int? {
        let count = slots.records.count
        guard length <= count else { return nil }
        if length == 1 {
            let words = slots.taken.count
            let startWord = slots.hint >> 6
            for step in 0...words {
                let word = (startWord + step) % words
                var free = ~slots.taken[word]
                if step == 0 { free &= ~((1 << UInt64(slots.hint & 63)) &- 1) } // below the hint: on the wrap
                if word == words - 1, count & 63 != 0 { free &= (1 << UInt64(count & 63)) &- 1 }
                if free != 0 { return word << 6 | free.trailingZeroBitCount }
            }
            return nil
        }
        var run = 0
        var position = slots.hint
        for _ in 0..<(count + length) {
            if position == count { position = 0; run = 0 }
            run = isTaken(position, slots) ? 0 : run + 1
            if run == length { return position + 1 - length }
            position += 1
        }
        return nil
    }

    @inline(__always)
    static func isTaken(_ index: Int, _ slots: borrowing Slots) -> Bool { slots.taken[index >> 6] & (1 << UInt64(index & 63)) != 0 }

    static func mark(_ first: Int, _ length: Int, taken: Bool, in slots: inout Slots) {
        for index in first..<(first + length) {
            if taken { slots.taken[index >> 6] |= 1 << UInt64(index & 63) } else { slots.taken[index >> 6] &= ~(1 << UInt64(index & 63)) }
            slots.owner[index] = taken ? Int32(first) : -1
        }
        slots.free += taken ? -length : length
    }
}

/// What a device's shadow pool holds and has done; see ``DeviceDMA/shadowPoolStatistics``.
public struct ShadowPoolStatistics: Sendable, Hashable, Codable {
    /// Slots in the pool (each one granule of the domain) and how many are free now.
    public var granules: UInt64 = 0
    public var granulesFree: UInt64 = 0
    public var liveMappings: UInt64 = 0
    public var mappings: UInt64 = 0
    public var unmappings: UInt64 = 0
    /// Bytes copied into slots by maps, and back to callers' buffers by unmaps.
    public var bytesCopiedIn: UInt64 = 0
    public var bytesCopiedOut: UInt64 = 0
}

/// Where a device's shadow pool lives: its bus range in the device's domain and the memory behind it.
public struct ShadowPoolLayout: Sendable, Hashable {
    public var busAddress: IOVirtualAddress
    public var physical: PhysicalAddress
    public var bytes: UInt64
    /// The slot size: the domain's smallest page.
    public var granule: UInt64
}
