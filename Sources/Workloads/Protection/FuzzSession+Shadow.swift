import DMA
import Emulation
import IOMMUCore

/// The shadow-buffer half of the model. A shadow device's pool is mapped
/// read+write in its default domain for the device's whole life, so the
/// model enters it once, as pages of kind ``ReachKind/shadow``, and tracks
/// its contents byte for byte (it starts zeroed). A streaming map is then
/// no page-table change but a copy of the caller's bytes into free slots, an
/// unmap a copy back for from-device and bidirectional transfers: the model
/// makes the same copies in its shadow of memory, so every sweep checks
/// that the DMA layer copied exactly those bytes, and that a device's writes
/// into its pool reach the caller's memory only through an unmap.
extension FuzzSession {
    /// Enters the pool of a freshly set-up shadow device in its group's model.
    func adoptShadowPool(_ device: FuzzDevice, group: GroupModel) throws(FuzzStop) {
        guard let layout = device.dma?.shadowPoolLayout else { return }
        let what = "\(device.device.name)'s shadow pool at bus \(hex(layout.busAddress.value))"
        let domain = group.defaultDomain
        let aperture = domain.domain.geometry.aperture
        let last = layout.busAddress.value &+ (layout.bytes - 1)
        try expect(aperture.contains(layout.busAddress.value) && aperture.contains(last), "\(what) leaves the aperture")
        try expect(!domain.overlapsLive(iova: layout.busAddress.value, bytes: layout.bytes), "\(what) overlaps a live mapping")
        for member in group.group.devices {
            for region in platform.subsystem.device(at: member)?.reservedRegions ?? [] {
                try expect(region.range.upperBound < layout.busAddress.value || region.range.lowerBound > last,
                           "\(what) overlaps \(region) of \(member)")
            }
        }
        let zeroed: Bool
        do { zeroed = try known.trackZeroed(base: layout.physical.value, count: layout.bytes) } catch {
            try fail("\(what): its memory is not addressable: \(error)")
        }
        try expect(zeroed, "\(what) does not start zeroed")
        domain.add(iova: layout.busAddress.value, physical: layout.physical.value, bytes: layout.bytes,
                   permissions: .readWrite, kind: .shadow)
        device.shadowPool = layout
    }

    /// The pool's slots a live stream of `device` holds, as a granule range.
    func slots(of stream: FuzzDevice.Stream, in layout: ShadowPoolLayout) -> Range<Int> {
        let offset = stream.bus.value & (layout.granule - 1)
        let first = Int((stream.bus.value - layout.busAddress.value) / layout.granule)
        return first..<(first + Int((offset + UInt64(stream.size) + layout.granule - 1) / layout.granule))
    }

    /// Checks a shadow map's bus address against the pool and the device's other live streams, and copies in.
    func enterShadowMapping(_ device: FuzzDevice, layout: ShadowPoolLayout, stream: FuzzDevice.Stream,
                            what: String) throws(FuzzStop) {
        let bus = stream.bus.value
        try expect(bus & (layout.granule - 1) == stream.physical & (layout.granule - 1),
                   "\(what): shadow bus \(hex(bus)) lost the offset of \(hex(stream.physical))")
        try expect(bus >= layout.busAddress.value && UInt64(stream.size) <= layout.bytes - (bus - layout.busAddress.value),
                   "\(what): shadow bus \(hex(bus)) +\(stream.size) leaves the pool at \(hex(layout.busAddress.value))")
        let taken = slots(of: stream, in: layout)
        for other in device.streams where slots(of: other, in: layout).overlaps(taken) {
            try fail("\(what): shadow slots \(taken) overlap the live mapping at \(hex(other.bus.value))")
        }
        try expect(known.copy(from: stream.physical, to: layout.physical.value + (bus - layout.busAddress.value),
                              count: UInt64(stream.size)), "\(what): the model cannot copy into its slots")
    }

    /// A refused shadow map: it must be exhaustion, exactly when no run of free slots is long enough.
    func expectShadowExhaustion(_ error: DMAError, _ device: FuzzDevice, layout: ShadowPoolLayout,
                                physical: UInt64, size: Int, what: String) throws(FuzzStop) {
        let count = Int(layout.bytes / layout.granule)
        var taken = [Bool](repeating: false, count: count)
        for stream in device.streams { for slot in slots(of: stream, in: layout) { taken[slot] = true } }
        let free = taken.filter { !$0 }.count
        try expect(error == .shadowPoolExhausted(size: UInt64(size), granulesFree: UInt64(free)),
                   "\(what): refused with \(error), expected shadowPoolExhausted with \(free) free slots")
        let needed = Int(((physical & (layout.granule - 1)) + UInt64(size) + layout.granule - 1) / layout.granule)
        var run = 0
        for slot in taken {
            run = slot ? 0 : run + 1
            if run >= needed { try fail("\(what): refused although \(needed) consecutive slots are free") }
        }
        report.refusalsChecked += 1
    }

    /// A shadow unmap: the slots' bytes go back to the caller's buffer unless the transfer went to the device.
    func endShadowMapping(_ stream: FuzzDevice.Stream, layout: ShadowPoolLayout, what: String) throws(FuzzStop) {
        guard stream.direction != .toDevice else { return }
        try expect(known.copy(from: layout.physical.value + (stream.bus.value - layout.busAddress.value), to: stream.physical,
                              count: UInt64(stream.size)), "\(what): the model cannot copy back from its slots")
    }

    /// After the driver's remove path the pool is gone: unmapped at once and its memory returned.
    func forgetShadowPool(_ device: FuzzDevice, group: GroupModel) {
        guard let layout = device.shadowPool else { return }
        group.defaultDomain.remove(iova: layout.busAddress.value, bytes: layout.bytes, deferred: false)
        known.forget(base: layout.physical.value)
        device.shadowPool = nil
    }

    /// Unmapping twice is refused with notMapped, unless a live stream took the slot again.
    func doubleUnmapShadow(_ device: FuzzDevice, dma: DeviceDMA, layout: ShadowPoolLayout) throws(FuzzStop) {
        guard let bus = pick(device.unmapped), bus >= layout.busAddress.value,
              bus - layout.busAddress.value < layout.bytes else { return }
        let slot = Int((bus - layout.busAddress.value) / layout.granule)
        guard !device.streams.contains(where: { slots(of: $0, in: layout).contains(slot) }) else { return }
        report.dmaCalls += 1
        do throws(DMAError) {
            try dma.unmap(IOVirtualAddress(bus), size: 64, direction: .bidirectional)
        } catch {
            try expect(error == .notMapped(busAddress: bus), "\(device.device.name) second shadow unmap of \(hex(bus)): \(error)")
            report.refusalsChecked += 1
            return
        }
        try fail("\(device.device.name) unmapped shadow bus \(hex(bus)) twice without an error")
    }
}
