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
/// One byte per granule in a lazily built two-level radix table (a directory
/// of at most 2^20 leaves of 2^leafShift bytes, 64 KiB up to 2^36 granules):
/// 0 = no mapping starts here, 1...254 = a live mapping of that many granules,
/// ``largeMarker`` = a live mapping whose size sits in ``largeSizes``.
/// Map publishes the byte with a release store (the IOVA is private to the
/// mapping thread until it returns); unmap clears it with one
/// compare-and-swap, so of two racing unmaps exactly one wins — except on the
/// single-page path, where clearing the page-table entry is that arbiter.
final class MappingLedger: Sendable {
    static let largeMarker: UInt8 = 0xFF
    private let shift: UInt64
    private let firstPfn: UInt64
    private let leafShift: UInt64
    private let directoryEntries: UInt64
    nonisolated(unsafe) private let directory: UnsafeMutablePointer<UInt64>
    private let growth = HostLock<[UnsafeMutableRawPointer]>([])
    private let largeSizes = HostLock<[UInt64: UInt64]>([:])

    init(granule: UInt64, space: ClosedRange<UInt64>) {
        shift = UInt64(granule.trailingZeroBitCount)
        firstPfn = space.lowerBound >> shift
        let granules = (space.upperBound >> shift) - firstPfn  // count minus one
        let bits = UInt64(64 - granules.leadingZeroBitCount)
        leafShift = max(16, bits > 20 ? bits - 20 : 0)
        directoryEntries = (granules >> leafShift) + 1
        directory = calloc(Int(directoryEntries), 8)!.bindMemory(to: UInt64.self, capacity: Int(directoryEntries))
    }

    deinit {
        for block in growth.withLock({ $0 }) { free(block) }
        free(directory)
    }

    @inline(__always)
    private func byte(_ pfn: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>>? {
        let relative = pfn &- firstPfn
        let index = relative &>> leafShift
        guard index < directoryEntries else { return nil }
        let leaf = csupport_load64_acquire(directory + Int(truncatingIfNeeded: index))
        guard leaf != 0 else { return nil }
        let offset = relative & ((1 &<< leafShift) &- 1)
        // Granules up to 1024 apart get bytes on different cache lines: threads map neighbouring
        // IOVAs, and their unmaps would otherwise fight over one line.
        let low = UInt16(truncatingIfNeeded: offset)
        let spread = (offset & ~0xFFFF) | UInt64((low &<< 6) | (low &>> 10))
        return UnsafeMutablePointer<Atomic<UInt8>>(bitPattern: UInt(leaf)).unsafelyUnwrapped + Int(truncatingIfNeeded: spread)
    }

    @inline(never)
    private func makeByte(_ pfn: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>>? {
        growth.withLock { blocks in
            if let existing = byte(pfn) { return existing }
            let relative = pfn &- firstPfn
            let index = relative >> leafShift
            guard index < directoryEntries else { return nil }
            // Leaves beyond 64 KiB (spaces over 2^36 granules) come from calloc's fresh
            // mappings: only the pages holding live mappings' bytes cost memory.
            guard let leaf = calloc(1 << Int(leafShift), 1) else { return nil }
            blocks.append(leaf)
            csupport_store64_release(directory + Int(index), UInt64(UInt(bitPattern: leaf)))
            return byte(pfn)
        }
    }

    /// The ledger byte of a live single-granule mapping starting at `iova`, nil for anything else.
    @inline(__always)
    func singleGranuleEntry(iova: UInt64) -> UnsafeMutablePointer<Atomic<UInt8>>? {
        guard let entry = byte(iova >> shift), entry.pointee.load(ordering: .relaxed) == 1 else { return nil }
        return entry
    }

    /// Ends a single-granule mapping whose page-table entry the caller has just cleared (that
    /// clearing decided which of two racing unmaps won).
    @inline(__always)
    func clear(_ entry: UnsafeMutablePointer<Atomic<UInt8>>) { entry.pointee.store(0, ordering: .releasing) }

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
