import Emulation
import IOMMUCore
import IOVA

extension DeviceDMA {
    /// Maps `size` bytes of physically contiguous memory at `physical` for one
    /// transfer in `direction`; returns the bus address the device must use,
    /// which keeps the buffer's offset within its page. The direction becomes
    /// the device's permission. Behind no IOMMU a buffer beyond the streaming
    /// mask is bounced below it; an untrusted device's partial pages are bounced. A shadow-buffer device's
    /// buffer is copied into its pool (``StreamingProtection/shadowBuffers(granules:)``).
    /// - Throws: ``DMAError/zeroSize``, ``DMAError/negativeSize(_:)``, ``DMAError/beyondMask(physical:size:mask:)``,
    ///   ``DMAError/bouncePoolExhausted(size:mask:)``, ``DMAError/shadowPoolExhausted(size:granulesFree:)``,
    ///   ``DMAError/addressSpaceExhausted(_:)``,
    ///   ``DMAError/deviceUnavailable(_:reason:)``, ``DMAError/iommu(_:)``, ``DMAError/memory(_:)``.
    @inline(__always)
    public func map(_ physical: PhysicalAddress, size: Int, direction: DMADirection) throws(DMAError) -> IOVirtualAddress {
        guard size > 0 else { throw Self.sizeError(size) }
        if let reference = fastStateReference, !isBlocked,
           let bus = reference._withUnsafeGuaranteedRef({ mapOnePage(physical, size: UInt64(size), direction: direction, state: $0) }) {
            return IOVirtualAddress(bus)
        }
        if let pool = fastShadowReference, !isBlocked {
            let outcome = pool._withUnsafeGuaranteedRef { pool in
                Result { () throws(DMAError) in try mapShadow(physical, length: UInt64(size), direction: direction, pool: pool) }
            }
            let bus = try outcome.get()
            countMap(bytes: UInt64(size))
            return bus
        }
        return try mapGeneral(physical, size: UInt64(size), direction: direction, call: "map")
    }

    @inline(__always)
    func countMap(bytes: UInt64) {
        let slot = slots.current
        slot.pointee.bump(slot.pointee.maps, by: 1)
        slot.pointee.bump(slot.pointee.bytes, by: bytes)
    }

    /// The hot path: a buffer within one granule of a trusted device's translated domain, with
    /// an IOVA from the thread's cache. Returns the bus address, or nil with nothing changed —
    /// not such a buffer, an empty cache, a refused mapping — and the general path then does
    /// the work again and reports what went wrong, so no error travels through here.
    @inline(__always)
    func mapOnePage(_ physical: PhysicalAddress, size: UInt64, direction: DMADirection, state: DMADomainState) -> UInt64? {
        let offset = physical.value & state.granuleMask
        guard offset &+ size <= state.granule else { return nil }
        let limit = streamingLimit.load(ordering: .relaxed)
        guard let iova = state.allocator.allocateFromCache(size: state.granule, limit: limit,
                                                            preferredLimit: preferredLimit(under: limit)) else { return nil }
        let mapped = state.domainReference._withUnsafeGuaranteedRef { domain -> Bool in
            do throws(IOMMUError) {
                try domain.mapOwnedGranule(iova: iova, physical: physical.value &- offset, permissions: direction.devicePermissions)
            } catch { return false }
            return true
        }
        guard mapped else {
            try? state.allocator.freeExclusively(address: iova, size: state.granule)
            return nil
        }
        state.ledger.record(iova: iova, granules: 1)
        let slot = slots.current
        slot.pointee.bump(slot.pointee.maps, by: 1)
        slot.pointee.bump(slot.pointee.bytes, by: size)
        return iova &+ offset
    }

    @inline(never)
    func mapGeneral(_ physical: PhysicalAddress, size length: UInt64, direction: DMADirection,
                    call: StaticString) throws(DMAError) -> IOVirtualAddress {
        let bus: IOVirtualAddress
        switch try checkUsable() {
        case .direct:
            let mask = streamingMask
            if physical.value <= mask, length - 1 <= mask - physical.value {
                bus = IOVirtualAddress(physical.value)
            } else {
                bus = IOVirtualAddress(try bouncePool(below: mask).take(physical, size: length, direction: direction).value)
            }
        case let .translated(state):
            if let shadow { bus = try mapShadow(physical, length: length, direction: direction, pool: shadow); break }
            var source = physical
            let offset = physical.value & state.granuleMask
            if bouncesPartialPages && (offset != 0 || length & state.granuleMask != 0) {
                // The device must not reach whatever else shares these pages.
                source = try bouncePool(below: .max).take(physical, size: length, direction: direction)
            }
            do {
                bus = try mapTranslated(source, length: length, permissions: direction.devicePermissions,
                                        limit: streamingLimit.load(ordering: .relaxed), in: state)
            } catch {
                if source != physical { _ = try? bouncePool(below: .max).release(source, size: length, direction: direction) }
                throw error
            }
        case .unusable: throw .deviceUnavailable(device.address, reason: "unusable")
        }
        debug?.mapped(bus: bus.value, size: length, direction: direction, call: call)
        countMap(bytes: length)
        return bus
    }

    /// Allocates IOVA space under `limit` and maps `length` bytes from `physical` there.
    func mapTranslated(_ physical: PhysicalAddress, length: UInt64, permissions: AccessPermissions, limit: UInt64,
                       in state: DMADomainState) throws(DMAError) -> IOVirtualAddress {
        let granule = state.granule
        let offset = physical.value & state.granuleMask
        guard length <= UInt64.max - offset - granule else { throw .beyondMask(physical: physical.value, size: length, mask: limit) }
        let span = (offset + length + state.granuleMask) & ~state.granuleMask
        let iova: UInt64
        do { iova = try state.allocateIOVA(size: span, limit: limit, preferredLimit: preferredLimit(under: limit)) }
        catch { throw .addressSpaceExhausted(error) }
        do {
            if span == granule {
                try state.domain.mapOwnedGranule(iova: iova, physical: physical.value - offset, permissions: permissions)
            } else if state.onlyGranulesFit(span) {
                try mapGranules(iova: iova, physical: physical.value - offset, span: span, permissions: permissions, in: state)
            } else {
                try state.domain.map(iova: IOVirtualAddress(iova), physical: PhysicalAddress(physical.value - offset),
                                     size: span, permissions: permissions)
            }
        } catch {
            state.abandonIOVA(iova, size: span)
            throw .iommu(error)
        }
        state.ledger.record(iova: iova, granules: span / granule)
        return IOVirtualAddress(iova + offset)
    }

    /// Maps a few pages one granule at a time through the driver's single-page
    /// path, which for spans no larger page fits is what the general split
    /// would do anyway, minus its per-page bookkeeping. All or nothing.
    func mapGranules(iova: UInt64, physical: UInt64, span: UInt64, permissions: AccessPermissions,
                     in state: DMADomainState) throws(IOMMUError) {
        var done: UInt64 = 0
        do {
            while done < span {
                try state.domain.mapOwnedGranule(iova: iova + done, physical: physical + done, permissions: permissions)
                done += state.granule
            }
        } catch {
            var gather = IOTLBGather()
            var undone: UInt64 = 0
            while undone < done {
                _ = state.domain.unmapGranule(iova: iova + undone, gather: &gather)
                undone += state.granule
            }
            state.domain.flush(gather)
            throw error
        }
    }

    /// Ends a streaming mapping. In a strict domain the IOTLB no longer holds
    /// it when this returns; in a lazy domain it waits in the flush queue.
    /// Bounced data is copied back for ``DMADirection/fromDevice`` and ``DMADirection/bidirectional``.
    /// - Throws: ``DMAError/notMapped(busAddress:)``, ``DMAError/sizeMismatch(busAddress:mapped:given:)``,
    ///   ``DMAError/zeroSize``, ``DMAError/negativeSize(_:)``, ``DMAError/deviceUnavailable(_:reason:)``; with debug
    ///   checking also ``DMAError/alreadyUnmapped(busAddress:)`` and ``DMAError/directionMismatch(busAddress:mapped:given:)``.
    @inline(__always)
    public func unmap(_ busAddress: IOVirtualAddress, size: Int, direction: DMADirection) throws(DMAError) {
        guard size > 0 else { throw Self.sizeError(size) }
        if let reference = fastStateReference, !isBlocked,
           reference._withUnsafeGuaranteedRef({ unmapOnePage(busAddress, size: UInt64(size), state: $0) }) {
            return
        }
        if let pool = fastShadowReference, !isBlocked {
            let outcome = pool._withUnsafeGuaranteedRef { pool in
                Result { () throws(DMAError) in try unmapShadow(busAddress, length: UInt64(size), pool: pool) }
            }
            if try outcome.get() {
                let slot = slots.current
                slot.pointee.bump(slot.pointee.unmaps, by: 1)
                return
            }
        }
        try unmapGeneral(busAddress, size: UInt64(size), direction: direction, call: "unmap")
    }

    /// The hot path: a live single-granule mapping. Returns false with nothing changed when the
    /// ledger or the page table does not show one; the general path then decides and reports.
    @inline(__always)
    func unmapOnePage(_ busAddress: IOVirtualAddress, size: UInt64, state: DMADomainState) -> Bool {
        guard busAddress.value & state.granuleMask &+ size <= state.granule else { return false }
        let iova = busAddress.value & ~state.granuleMask
        guard let entry = state.ledger.singleGranuleEntry(iova: iova) else { return false }
        var gather = IOTLBGather()
        let domain = state.domainReference
        // Clearing the page-table entry is atomic: of two racing unmaps, one finds it gone.
        guard domain._withUnsafeGuaranteedRef({ $0.unmapGranule(iova: iova, gather: &gather) }) != nil else { return false }
        state.ledger.clear(entry)
        let slot = slots.current
        slot.pointee.bump(slot.pointee.unmaps, by: 1)
        if state.isLazy {
            state.deferUnmap(iova: iova, size: state.granule, slot: slot, capacity: slots.queueCapacity)
        } else {
            domain._withUnsafeGuaranteedRef { $0.flush(gather) }
            // This unmap cleared the page-table entry, so it alone frees the range: the free
            // cannot be refused (the deferred frees of lazy domains rely on the same).
            try? state.allocator.freeExclusively(address: iova, size: state.granule)
        }
        return true
    }

    @inline(never)
    func unmapGeneral(_ busAddress: IOVirtualAddress, size length: UInt64, direction: DMADirection,
                      call: StaticString) throws(DMAError) {
        let route = try checkUsable()
        try debug?.unmapping(bus: busAddress.value, size: length, direction: direction, call: call)
        switch route {
        case .direct:
            if let pool = existingBouncePool, pool.contains(PhysicalAddress(busAddress.value)) {
                try pool.release(PhysicalAddress(busAddress.value), size: length, direction: direction)
            }
        case let .translated(state):
            if let shadow, try unmapShadow(busAddress, length: length, pool: shadow) { break }
            let source = try unmapTranslated(busAddress, length: length, in: state)
            if bouncesPartialPages, let pool = existingBouncePool, pool.contains(source) {
                try pool.release(source, size: length, direction: direction)
            }
        case .unusable: break
        }
        let slot = slots.current
        slot.pointee.bump(slot.pointee.unmaps, by: 1)
    }

    /// Unmaps a translated range; returns the physical address the bus address translated to.
    @discardableResult
    func unmapTranslated(_ busAddress: IOVirtualAddress, length: UInt64, in state: DMADomainState,
                         forceStrict: Bool = false) throws(DMAError) -> PhysicalAddress {
        let granule = state.granule
        let offset = busAddress.value & state.granuleMask
        let iova = busAddress.value - offset
        guard length <= UInt64.max - offset - granule else { throw .notMapped(busAddress: busAddress.value) }
        let span = (offset + length + state.granuleMask) & ~state.granuleMask
        switch state.ledger.release(iova: iova, granules: span / granule) {
        case .released: break
        case .notMapped: throw .notMapped(busAddress: busAddress.value)
        case let .mismatch(mapped):
            throw .sizeMismatch(busAddress: busAddress.value, mapped: mapped * granule, given: length)
        }
        var gather = IOTLBGather()
        let physical: PhysicalAddress
        if state.onlyGranulesFit(span), let first = state.domain.unmapGranule(iova: iova, gather: &gather) {
            physical = first + offset
            var done = granule
            while done < span {
                _ = state.domain.unmapGranule(iova: iova + done, gather: &gather)
                done += granule
            }
        } else {
            physical = PhysicalAddress((state.domain.translate(IOVirtualAddress(iova))?.value ?? 0) + offset)
            do { try state.domain.unmap(iova: IOVirtualAddress(iova), size: span, gather: &gather) } catch {
                throw .iommu(error)
            }
        }
        // An untrusted device that joined a lazy group is still strict: it never gets a window.
        do {
            try state.releaseIOVA(iova, size: span, gather: gather, deferred: state.isLazy && !device.isUntrusted,
                                  flushNow: forceStrict, slot: slots.current, capacity: slots.queueCapacity)
        } catch { throw .allocator(error) }
        return physical
    }

    static func sizeError(_ size: Int) -> DMAError { size == 0 ? .zeroSize : .negativeSize(size) }
}
