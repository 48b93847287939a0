import DMA
import Emulation
import IOMMUCore

/// The DMA-API half of the fuzzer: each call made, and its outcome checked
/// against what the model says the call must do.
extension FuzzSession {
    enum ExpectedRoute {
        case direct
        case translated(GroupModel)
        /// The DMA API must refuse the device (its group is claimed or blocked).
        case unavailable
    }

    func expectedRoute(_ device: FuzzDevice) -> ExpectedRoute {
        guard let group = groupModel(of: device) else { return .direct }
        if group.claimed { return .unavailable }
        switch group.defaultDomain.kind {
        case .identity: return .direct
        case .dma, .dmaLazy: return .translated(group)
        case .blocked, .unmanaged: return .unavailable
        }
    }

    func expectUnavailable(_ error: DMAError, _ what: String) throws(FuzzStop) {
        guard case .deviceUnavailable = error else { try fail("\(what): expected deviceUnavailable, got \(error)") }
        report.refusalsChecked += 1
    }

    /// A buffer in a pool the device can address directly when its route is direct.
    func chooseBuffer(for dma: DeviceDMA, route: ExpectedRoute) -> (physical: UInt64, size: Int) {
        var candidates = pools
        if case .direct = route { candidates = pools.filter { $0.base + $0.bytes - 1 <= dma.streamingMask } }
        let pool = pick(candidates) ?? pools[0]
        let size: Int
        switch Int.random(in: 0..<100, using: &generator) {
        case 0..<45: size = Int.random(in: 1...4096, using: &generator)
        case 45..<85: size = Int.random(in: 4097...65536, using: &generator)
        case 85..<97: size = Int(PageSize.size4K) * Int.random(in: 1...64, using: &generator)
        default: return (pool.base, Int(pool.bytes))
        }
        var offset = UInt64.random(in: 0...(pool.bytes - UInt64(size)), using: &generator)
        if size % 4096 == 0, Bool.random(using: &generator) { offset &= ~(PageSize.size4K - 1) }
        return (pool.base + offset, size)
    }

    /// Checks a translated mapping the DMA layer just made and enters it in the model.
    func enterMapping(bus: UInt64, physical: UInt64, size: UInt64, limit: UInt64, permissions: AccessPermissions,
                      group: GroupModel, what: String) throws(FuzzStop) {
        let domain = group.defaultDomain
        let granule = domain.domain.pageSizes.smallest
        let last = bus &+ (size - 1)
        try expect(bus & (granule - 1) == physical & (granule - 1), "\(what): bus \(hex(bus)) lost the offset of \(hex(physical))")
        try expect(domain.domain.geometry.aperture.contains(bus) && domain.domain.geometry.aperture.contains(last),
                   "\(what): bus \(hex(bus))-\(hex(last)) leaves the aperture")
        try expect(last <= limit, "\(what): bus \(hex(last)) beyond the mask \(hex(limit))")
        let iova = bus & ~(granule - 1)
        let bytes = ((last | (granule - 1)) &+ 1) &- iova
        try expect(!domain.overlapsLive(iova: iova, bytes: bytes), "\(what): bus \(hex(bus)) overlaps a live mapping")
        for member in group.group.devices {
            for region in platform.subsystem.device(at: member)?.reservedRegions ?? [] {
                try expect(region.range.upperBound < iova || region.range.lowerBound > iova &+ (bytes - 1),
                           "\(what): bus \(hex(iova)) +\(hex(bytes)) overlaps \(region) of \(member)")
            }
        }
        domain.add(iova: iova, physical: physical & ~(granule - 1), bytes: bytes, permissions: permissions, kind: .mapped)
    }

    func removeMapping(bus: UInt64, size: UInt64, group: GroupModel) {
        let domain = group.defaultDomain
        let granule = domain.domain.pageSizes.smallest
        let iova = bus & ~(granule - 1)
        let bytes = (((bus &+ (size - 1)) | (granule - 1)) &+ 1) &- iova
        domain.remove(iova: iova, bytes: bytes, deferred: domain.kind == .dmaLazy)
    }

    // MARK: Operations

    func mapStream(_ device: FuzzDevice) throws(FuzzStop) {
        guard let dma = device.dma, device.streams.count < 48 else { return }
        let route = expectedRoute(device)
        let (physical, size) = chooseBuffer(for: dma, route: route)
        let direction = DMADirection.allCases[Int.random(in: 0..<3, using: &generator)]
        let what = "\(device.device.name) map \(size) bytes at \(hex(physical)) \(direction)"
        report.dmaCalls += 1
        let bus: IOVirtualAddress
        do { bus = try dma.map(PhysicalAddress(physical), size: size, direction: direction) } catch {
            if case .unavailable = route { return try expectUnavailable(error, what) }
            if let layout = device.shadowPool {
                return try expectShadowExhaustion(error, device, layout: layout, physical: physical, size: size, what: what)
            }
            try fail("\(what): refused with \(error)")
        }
        let stream = FuzzDevice.Stream(bus: bus, physical: physical, size: size, direction: direction)
        switch route {
        case .unavailable: try fail("\(what): succeeded although the DMA API must refuse the device")
        case .direct: try expect(bus.value == physical, "\(what): a direct mapping gave bus \(hex(bus.value))")
        case let .translated(group):
            if let layout = device.shadowPool { try enterShadowMapping(device, layout: layout, stream: stream, what: what); break }
            try enterMapping(bus: bus.value, physical: physical, size: UInt64(size), limit: dma.streamingMask,
                             permissions: direction.devicePermissions, group: group, what: what)
        }
        device.streams.append(stream)
    }

    func unmapStream(_ device: FuzzDevice) throws(FuzzStop) {
        guard let dma = device.dma, !device.streams.isEmpty else { return }
        let index = Int.random(in: 0..<device.streams.count, using: &generator)
        let stream = device.streams[index]
        let route = expectedRoute(device)
        let what = "\(device.device.name) unmap \(stream.size) bytes at \(hex(stream.bus.value))"
        report.dmaCalls += 1
        do { try dma.unmap(stream.bus, size: stream.size, direction: stream.direction) } catch {
            if case .unavailable = route { return try expectUnavailable(error, what) }
            try fail("\(what): refused with \(error)")
        }
        if case .unavailable = route { try fail("\(what): succeeded although the DMA API must refuse the device") }
        try endStream(device, stream, route: route, what: what)
        device.streams.remove(at: index)
        device.remember(unmapped: stream.bus.value)
    }

    func allocateCoherent(_ device: FuzzDevice) throws(FuzzStop) {
        guard let dma = device.dma, device.coherent.count < 6 else { return }
        let size = Int.random(in: 1...32768, using: &generator)
        let route = expectedRoute(device)
        let what = "\(device.device.name) allocate \(size) coherent bytes"
        report.dmaCalls += 1
        let buffer: CoherentBuffer
        do { buffer = try dma.allocateCoherent(size: size) } catch {
            if case .unavailable = route { return try expectUnavailable(error, what) }
            try fail("\(what): refused with \(error)")
        }
        let bytes = (UInt64(size) + PageSize.size4K - 1) & ~(PageSize.size4K - 1)
        switch route {
        case .unavailable: try fail("\(what): succeeded although the DMA API must refuse the device")
        case .direct:
            try expect(buffer.busAddress.value == buffer.physical.value && buffer.physical.value + bytes - 1 <= dma.coherentMask,
                       "\(what): direct buffer at bus \(hex(buffer.busAddress.value)), physical \(hex(buffer.physical.value))")
        case let .translated(group):
            try enterMapping(bus: buffer.busAddress.value, physical: buffer.physical.value, size: bytes,
                             limit: dma.coherentMask, permissions: .readWrite, group: group, what: what)
        }
        do { try known.track(base: buffer.physical.value, count: bytes, filling: &generator) } catch {
            try fail("\(what): its memory at \(hex(buffer.physical.value)) is not addressable: \(error)")
        }
        device.coherent.append(buffer)
    }

    func freeCoherent(_ device: FuzzDevice) throws(FuzzStop) {
        guard let dma = device.dma, !device.coherent.isEmpty else { return }
        let index = Int.random(in: 0..<device.coherent.count, using: &generator)
        let buffer = device.coherent[index]
        let route = expectedRoute(device)
        let what = "\(device.device.name) free coherent buffer at \(hex(buffer.busAddress.value))"
        report.dmaCalls += 1
        do { try dma.freeCoherent(buffer) } catch {
            if case .unavailable = route { return try expectUnavailable(error, what) }
            try fail("\(what): refused with \(error)")
        }
        if case .unavailable = route { try fail("\(what): succeeded although the DMA API must refuse the device") }
        if case let .translated(group) = route { removeMapping(bus: buffer.busAddress.value, size: UInt64(buffer.size), group: group) }
        known.forget(base: buffer.physical.value)
        device.coherent.remove(at: index)
        device.remember(unmapped: buffer.busAddress.value)
    }

    func flushDeferred(_ device: FuzzDevice) throws(FuzzStop) {
        guard let dma = device.dma else { return }
        report.dmaCalls += 1
        dma.flushDeferred()
        if let group = groupModel(of: device), group.defaultDomain.kind == .dmaLazy { group.defaultDomain.stale.removeAll() }
    }

    /// The model's side of a successful streaming unmap: pages leave the domain, or shadow slots are copied back.
    func endStream(_ device: FuzzDevice, _ stream: FuzzDevice.Stream, route: ExpectedRoute, what: String) throws(FuzzStop) {
        guard case let .translated(group) = route else { return }
        if let layout = device.shadowPool { return try endShadowMapping(stream, layout: layout, what: what) }
        removeMapping(bus: stream.bus.value, size: UInt64(stream.size), group: group)
    }

    /// Unmapping twice is refused and changes nothing.
    func doubleUnmap(_ device: FuzzDevice) throws(FuzzStop) {
        if let dma = device.dma, let layout = device.shadowPool, case .translated = expectedRoute(device) {
            return try doubleUnmapShadow(device, dma: dma, layout: layout)
        }
        guard let dma = device.dma, let bus = pick(device.unmapped), case let .translated(group) = expectedRoute(device) else { return }
        let granule = group.defaultDomain.domain.pageSizes.smallest
        guard group.defaultDomain.live[(bus & ~(granule - 1)) >> 12] == nil else { return }
        report.dmaCalls += 1
        do throws(DMAError) {
            try dma.unmap(IOVirtualAddress(bus), size: 64, direction: .bidirectional)
        } catch {
            try expect(error == .notMapped(busAddress: bus), "\(device.device.name) second unmap of \(hex(bus)): \(error)")
            report.refusalsChecked += 1
            return
        }
        try fail("\(device.device.name) unmapped \(hex(bus)) twice without an error")
    }
}
