import Emulation
#if canImport(Glibc)
import Glibc
#endif
import CSupport
import Synchronization

/// The size of every live translated mapping, by first IOVA granule: what
/// lets unmap refuse an unknown address, a wrong size or a second unmap
/// without a lock or a page-table walk.
///
/// One byte per granule in a lazily built three-level radix table: 0 = no
/// mapping starts here, 1...254 = a live mapping of that many granules,
/// ``largeMarker`` = a live mapping whose size sits in ``largeSizes``.
/// Map publishes the byte with a release store (the IOVA is private to the
/// mapping thread until it returns); unmap clears it with one
/// compare-and-swap, so of two racing unmaps exactly one wins.
final class MappingLedger: Sendable {
    static let largeMarker: UInt8 = 0xFF
    private let shift: UInt64
    private let firstPfn: UInt64
    private let topEntries: Int
    nonisolated(unsafe) private let top: UnsafeMutableRawPointer
    private let growth = HostLock<[UnsafeMutableRawPointer]>([])
    private let largeSizes = HostLock<[UInt64: UInt64]>([:])

    init(granule: UInt64, space: ClosedRange<UInt64>) {
        shift = UInt64(granule.trailingZeroBitCount)
        firstPfn = space.lowerBound >> shift
        let granules = (space.upperBound >> shift) - firstPfn
        topEntries = Int((granules >> 32) + 1)
        top = calloc(topEntries, 8)!
    }

    deinit {
        for block in growth.withLock({ $0 }) { free(block) }
        free(top)
    }

    @inline(__always)
    private func byte(_ pfn: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>>? {
        let relative = pfn &- firstPfn
        let index = Int(truncatingIfNeeded: relative >> 32)
        guard index < topEntries else { return nil }
        let middle = csupport_load64_acquire(top + index * 8)
        guard middle != 0, let middlePointer = UnsafeMutableRawPointer(bitPattern: UInt(middle)) else { return nil }
        let leaf = csupport_load64_acquire(middlePointer + Int((relative >> 16) & 0xFFFF) * 8)
        guard leaf != 0, let leafPointer = UnsafeMutablePointer<Atomic<UInt8>>(bitPattern: UInt(leaf)) else { return nil }
        return leafPointer + Int(relative & 0xFFFF)
    }

    @inline(never)
    private func makeByte(_ pfn: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>>? {
        growth.withLock { blocks in
            if let existing = byte(pfn) { return existing }
            let relative = pfn &- firstPfn
            let index = Int(truncatingIfNeeded: relative >> 32)
            guard index < topEntries else { return nil }
            var middle = csupport_load64_acquire(top + index * 8)
            if middle == 0 {
                guard let fresh = calloc(1 << 16, 8) else { return nil }
                blocks.append(fresh)
                middle = UInt64(UInt(bitPattern: fresh))
                csupport_store64_release(top + index * 8, middle)
            }
            guard let middlePointer = UnsafeMutableRawPointer(bitPattern: UInt(middle)),
                  let leaf = calloc(1 << 16, 1) else { return nil }
            blocks.append(leaf)
            csupport_store64_release(middlePointer + Int((relative >> 16) & 0xFFFF) * 8, UInt64(UInt(bitPattern: leaf)))
            return leaf.bindMemory(to: Atomic<UInt8>.self, capacity: 1 << 16) + Int(relative & 0xFFFF)
        }
    }

    /// Records a fresh mapping of `granules` granules at `iova`.
    @inline(__always)
    func record(iova: UInt64, granules: UInt64) {
        let pfn = iova >> shift
        guard let slot = byte(pfn) ?? makeByte(pfn) else { return }
        if granules < UInt64(Self.largeMarker) {
            slot.pointee.store(UInt8(truncatingIfNeeded: granules), ordering: .releasing)
        } else {
            largeSizes.withLock { $0[iova] = granules }
            slot.pointee.store(Self.largeMarker, ordering: .releasing)
        }
    }

    enum Release { case released, notMapped, mismatch(mappedGranules: UInt64) }

    /// Ends the mapping at `iova` if it has exactly `granules` granules;
    /// changes nothing otherwise.
    @inline(__always)
    func release(iova: UInt64, granules: UInt64) -> Release {
        guard let slot = byte(iova >> shift) else { return .notMapped }
        var state = slot.pointee.load(ordering: .relaxed)
        while state != 0 {
            if state == Self.largeMarker { return releaseLarge(iova: iova, granules: granules, slot: slot) }
            guard UInt64(state) == granules else { return .mismatch(mappedGranules: UInt64(state)) }
            let (won, found) = slot.pointee.compareExchange(expected: state, desired: 0, ordering: .acquiringAndReleasing)
            if won { return .released }
            state = found
        }
        return .notMapped
    }

    @inline(never)
    private func releaseLarge(iova: UInt64, granules: UInt64, slot: UnsafeMutablePointer<Atomic<UInt8>>) -> Release {
        largeSizes.withLock { sizes in
            guard let mapped = sizes[iova], slot.pointee.load(ordering: .acquiring) == Self.largeMarker else {
                return .notMapped
            }
            guard mapped == granules else { return .mismatch(mappedGranules: mapped) }
            sizes[iova] = nil
            slot.pointee.store(0, ordering: .releasing)
            return .released
        }
    }

    /// Granules of the live mapping starting at `iova`, 0 when none does.
    func granules(at iova: UInt64) -> UInt64 {
        guard let slot = byte(iova >> shift) else { return 0 }
        let state = slot.pointee.load(ordering: .acquiring)
        if state == Self.largeMarker { return largeSizes.withLock { $0[iova] ?? 0 } }
        return UInt64(state)
    }
}
