import CSupport
import Emulation

/// The physical addresses of a DMA domain's level-1 page tables, indexed by
/// IOVA, so that mapping or unmapping a page of up to 1 MiB finds its entry
/// with one load instead of a walk from the root (the optimisation Linux's
/// AMD driver made for its DMA domains with per-aperture-range `pte_pages`).
///
/// It covers two windows of the aperture, because that is where the DMA
/// layer's allocator hands addresses out: top-down below 4 GiB first (it
/// prefers 32-bit addresses, as Linux's dma-iommu does), then top-down from
/// the aperture's end. The array is allocated once (4096 slots, 32 KiB per
/// domain); the leaf tables themselves are created on first use, as Linux
/// grew its aperture range by range, rather than 16 MiB of tables up front.
/// A slot of zero means "not known yet": the caller walks and records.
///
/// A value type over one allocation, so the hot path reads it without
/// reference counting; the domain that made it calls ``deallocate()`` once.
struct AMDViLeafArray: @unchecked Sendable {
    static let windowBytes: UInt64 = 1 << 32
    static let slotShift: UInt64 = 21

    private let slots: UnsafeMutablePointer<UInt64>
    private let lowSlots: UInt64
    /// First IOVA of the high window, or UInt64.max when it would overlap the low one.
    private let highFirst: UInt64
    let count: Int

    init(aperture: ClosedRange<UInt64>) {
        let lowLast = min(aperture.upperBound, Self.windowBytes - 1)
        lowSlots = (lowLast >> Self.slotShift) + 1
        if aperture.upperBound >= 2 * Self.windowBytes {
            highFirst = (aperture.upperBound - Self.windowBytes + 1) & ~((1 << Self.slotShift) - 1)
        } else {
            highFirst = .max
        }
        let highSlots = highFirst == .max ? 0 : ((aperture.upperBound - highFirst) >> Self.slotShift) + 1
        count = Int(lowSlots + highSlots)
        slots = .allocate(capacity: count)
        slots.initialize(repeating: 0, count: count)
    }

    func deallocate() { slots.deallocate() }

    @inline(__always)
    private func index(_ iova: UInt64) -> Int? {
        let slot = iova >> Self.slotShift
        if slot < lowSlots { return Int(slot) }
        if iova >= highFirst { return Int(lowSlots + ((iova - highFirst) >> Self.slotShift)) }
        return nil
    }

    /// Whether `iova` lies in a window the array covers.
    @inline(__always)
    func covers(_ iova: UInt64) -> Bool { index(iova) != nil }

    /// The recorded level-1 table covering `iova`, if any.
    @inline(__always)
    func leaf(for iova: UInt64) -> PhysicalAddress? {
        guard let slot = index(iova) else { return nil }
        let value = csupport_load64_acquire(slots + slot)
        return value == 0 ? nil : PhysicalAddress(value)
    }

    @inline(__always)
    func record(_ table: PhysicalAddress, for iova: UInt64) {
        guard let slot = index(iova) else { return }
        csupport_store64_release(slots + slot, table.value)
    }

    /// Drops the slots of `first...last` before a larger page may replace their (empty) tables.
    func forget(_ first: UInt64, _ last: UInt64) {
        let lowLast = (lowSlots << Self.slotShift) - 1
        if first <= lowLast { clear(first, min(last, lowLast)) }
        if highFirst != .max, last >= highFirst { clear(max(first, highFirst), last) }
    }

    private func clear(_ first: UInt64, _ last: UInt64) {
        guard let from = index(first), let through = index(last) else { return }
        for slot in from...through { csupport_store64_release(slots + slot, 0) }
    }

    /// Slots that currently hold a table.
    var recorded: Int { (0..<count).reduce(0) { $0 + (csupport_load64_acquire(slots + $1) != 0 ? 1 : 0) } }
}
