import Emulation
import Synchronization

/// Bounce buffers (Linux's swiotlb): whole pages set aside where the device
/// can reach them, holding a copy of a buffer it cannot reach or must not
/// share a page with. Data is copied in on map and sync-for-device, and back
/// on unmap and sync-for-CPU, as the direction says. A bounced buffer keeps
/// its offset within its page, so the bus address does too.
final class BouncePool: Sendable {
    let base: PhysicalAddress
    let pageCount: UInt64
    let memory: PhysicalMemory

    struct Record: Sendable {
        var original: PhysicalAddress
        /// First bounce byte (slot page + the original's page offset).
        var bounce: PhysicalAddress
        var size: UInt64
        var direction: DMADirection
        var pages: UInt64
    }

    private struct State {
        var used: [Bool]
        /// By first slot page index.
        var records: [UInt64: Record] = [:]
        var bounced: UInt64 = 0
    }

    private let state: HostLock<State>

    /// - Throws: ``DMAError/bouncePoolExhausted(size:mask:)`` when no `pages` pages are free below `mask`.
    init(pages: UInt64, below mask: UInt64, allocator: PhysicalPageAllocator) throws(DMAError) {
        let zone: PhysicalPageAllocator.Zone = mask == .max ? .any : .below(PhysicalAddress(mask))
        do { base = try allocator.allocate(pages: pages, zone: zone) } catch {
            throw .bouncePoolExhausted(size: pages * PageSize.size4K, mask: mask)
        }
        pageCount = pages
        memory = allocator.memory
        state = HostLock(State(used: Array(repeating: false, count: Int(pages))))
    }

    var last: PhysicalAddress { base + (pageCount * PageSize.size4K - 1) }
    func contains(_ address: PhysicalAddress) -> Bool { address >= base && address <= last }
    var bouncedMappings: UInt64 { state.withLock { $0.bounced } }

    /// Copies `size` bytes at `original` into fresh bounce pages and returns the bounce address.
    /// Every direction copies in, so bytes the device does not write come back unchanged.
    /// - Throws: ``DMAError/bouncePoolExhausted(size:mask:)``, ``DMAError/memory(_:)``.
    func take(_ original: PhysicalAddress, size: UInt64, direction: DMADirection) throws(DMAError) -> PhysicalAddress {
        let offset = original.value & (PageSize.size4K - 1)
        let pages = (offset + size + PageSize.size4K - 1) / PageSize.size4K
        let first = try state.withLock { (state) throws(DMAError) -> UInt64 in
            var run: UInt64 = 0
            for index in 0..<UInt64(state.used.count) {
                run = state.used[Int(index)] ? 0 : run + 1
                if run == pages {
                    let first = index + 1 - pages
                    for page in first...index { state.used[Int(page)] = true }
                    return first
                }
            }
            throw .bouncePoolExhausted(size: size, mask: last.value)
        }
        let bounce = base + first * PageSize.size4K + offset
        do { try memory.copy(from: original, to: bounce, count: size) } catch {
            state.withLock { state in for page in first..<(first + pages) { state.used[Int(page)] = false } }
            throw .memory(error)
        }
        state.withLock { state in
            state.records[first] = Record(original: original, bounce: bounce, size: size, direction: direction, pages: pages)
            state.bounced += 1
        }
        return bounce
    }

    /// The live record whose bounce bytes contain `address`.
    func record(containing address: PhysicalAddress) -> Record? {
        guard contains(address) else { return nil }
        let page = (address - base) / PageSize.size4K
        return state.withLock { state in
            state.records.values.first { $0.bounce <= address && address.value < $0.bounce.value + $0.size }
                ?? state.records[page]
        }
    }

    /// Copies a device-written bounce buffer back as the direction says and frees its pages.
    /// - Throws: ``DMAError/notMapped(busAddress:)``, ``DMAError/sizeMismatch(busAddress:mapped:given:)``, ``DMAError/memory(_:)``.
    func release(_ bounce: PhysicalAddress, size: UInt64, direction: DMADirection) throws(DMAError) {
        let first = (bounce - base) / PageSize.size4K
        let record = try state.withLock { (state) throws(DMAError) -> Record in
            guard contains(bounce), let record = state.records[first], record.bounce == bounce else {
                throw .notMapped(busAddress: bounce.value)
            }
            guard record.size == size else {
                throw .sizeMismatch(busAddress: bounce.value, mapped: record.size, given: size)
            }
            state.records[first] = nil
            return record
        }
        defer { state.withLock { state in for page in first..<(first + record.pages) { state.used[Int(page)] = false } } }
        if record.direction != .toDevice {
            do { try memory.copy(from: bounce, to: record.original, count: size) } catch { throw .memory(error) }
        }
    }

    /// Copies part of a bounced buffer between the original and the bounce pages.
    /// - Throws: ``DMAError/syncOfUnmapped(busAddress:size:)``, ``DMAError/memory(_:)``.
    func sync(_ address: PhysicalAddress, size: UInt64, toDevice: Bool) throws(DMAError) {
        guard let record = record(containing: address),
              address.value + size <= record.bounce.value + record.size else {
            throw .syncOfUnmapped(busAddress: address.value, size: size)
        }
        let original = record.original + (address - record.bounce)
        do {
            if toDevice { try memory.copy(from: original, to: address, count: size) }
            else { try memory.copy(from: address, to: original, count: size) }
        } catch { throw .memory(error) }
    }
}

extension DeviceDMA {
    /// The device's bounce pool, set aside on first use below `mask`.
    func bouncePool(below mask: UInt64) throws(DMAError) -> BouncePool {
        try bounce.withLock { (pool) throws(DMAError) -> BouncePool in
            if let pool, pool.last.value <= mask { return pool }
            if pool != nil { throw .bouncePoolExhausted(size: 0, mask: mask) }
            let fresh = try BouncePool(pages: configuration.bouncePoolPages, below: mask, allocator: pages)
            pool = fresh
            return fresh
        }
    }

    var existingBouncePool: BouncePool? { bounce.withLock { $0 } }
}
