import DMA
import Emulation
import IOMMUCore

/// The IOMMU-API half of the fuzzer: a user claiming a group for a domain of
/// its own (unmanaged, blocked or identity) and mapping into it, giving it
/// back, and devices leaving and rejoining the platform.
extension FuzzSession {
    func claimOrRelease(_ device: FuzzDevice) throws(FuzzStop) {
        guard device.plugged, let group = groupModel(of: device) else { return }
        report.iommuCalls += 1
        if group.claimed {
            do { try platform.subsystem.release(group.group, owner: Self.owner) } catch {
                try fail("releasing \(group.group) failed: \(error)")
            }
            let user = group.current
            var gather = IOTLBGather()
            for mapping in group.userMappings {
                _ = try? user.domain.unmap(iova: IOVirtualAddress(mapping.iova), size: mapping.size, gather: &gather)
            }
            user.domain.flush(gather)
            user.domain.destroy()
            group.userMappings.removeAll()
            group.current = group.defaultDomain
            return
        }
        let kinds: [DomainKind] = [.unmanaged, .unmanaged, .blocked, .identity]
        let kind = kinds[Int.random(in: 0..<kinds.count, using: &generator)]
        let domain: IOMMUDomain
        do { domain = try platform.subsystem.makeDomain(kind, for: device.device.address) } catch {
            try expect(kind == .blocked && !profile.supportsBlockedDomains && error == .unsupportedDomainKind(.blocked, driver: group.group.driver.name),
                       "making a \(kind) domain for \(device.device) failed: \(error)")
            report.refusalsChecked += 1
            return
        }
        try expect(kind != .blocked || profile.supportsBlockedDomains, "the \(profile.family) driver made a blocked domain it cannot enforce")
        do { try platform.subsystem.attach(group.group, to: domain, owner: Self.owner) } catch {
            try fail("attaching \(group.group) to a \(kind) domain failed: \(error)")
        }
        group.current = DomainModel(domain: domain)
    }

    /// Maps or unmaps in a claimed unmanaged domain, as a VFIO-like user does.
    func userMapOrUnmap(_ device: FuzzDevice) throws(FuzzStop) {
        guard device.plugged, let group = groupModel(of: device), group.claimed, group.current.kind == .unmanaged else { return }
        let user = group.current
        report.iommuCalls += 1
        if !group.userMappings.isEmpty, Bool.random(using: &generator) {
            let index = Int.random(in: 0..<group.userMappings.count, using: &generator)
            let mapping = group.userMappings.remove(at: index)
            do {
                let unmapped = try user.domain.unmap(iova: IOVirtualAddress(mapping.iova), size: mapping.size)
                try expect(unmapped == mapping.size, "user unmap of \(hex(mapping.iova)) unmapped \(unmapped) of \(mapping.size) bytes")
            } catch { try fail("user unmap of \(hex(mapping.iova)) failed: \(error)") }
            user.remove(iova: mapping.iova, bytes: mapping.size, deferred: false)
            return
        }
        guard group.userMappings.count < 32, let pool = pick(pools) else { return }
        let granule = user.domain.pageSizes.smallest
        let size = granule * UInt64.random(in: 1...4, using: &generator)
        let aperture = user.domain.geometry.aperture
        let top = min(aperture.upperBound, aperture.lowerBound &+ (1 << 32))
        guard top - aperture.lowerBound > size else { return }
        let iova = UInt64.random(in: aperture.lowerBound...(top - size), using: &generator) & ~(granule - 1)
        guard iova >= aperture.lowerBound, !user.overlapsLive(iova: iova, bytes: size) else { return }
        let physical = pool.base + (UInt64.random(in: 0...(pool.bytes - size), using: &generator) & ~(granule - 1))
        let permissions = [AccessPermissions.read, .write, .readWrite][Int.random(in: 0..<3, using: &generator)]
        do {
            try user.domain.map(iova: IOVirtualAddress(iova), physical: PhysicalAddress(physical), size: size, permissions: permissions)
        } catch { try fail("user map of \(hex(size)) bytes at \(hex(iova)) failed: \(error)") }
        user.add(iova: iova, physical: physical, bytes: size, permissions: permissions, kind: .mapped)
        group.userMappings.append((iova, size))
    }

    /// Hot-unplug: the driver ends every mapping first, as a real remove() does.
    func removeDevice(_ device: FuzzDevice) throws(FuzzStop) {
        guard let dma = device.dma, let group = groupModel(of: device), !group.claimed else { return }
        for stream in device.streams {
            do { try dma.unmap(stream.bus, size: stream.size, direction: stream.direction) } catch {
                try fail("\(device.device.name) unmap before removal failed: \(error)")
            }
            try endStream(device, stream, route: expectedRoute(device), what: "\(device.device.name) unmap before removal")
        }
        for buffer in device.coherent {
            do { try dma.freeCoherent(buffer) } catch { try fail("\(device.device.name) free before removal failed: \(error)") }
            if case let .translated(group) = expectedRoute(device) {
                removeMapping(bus: buffer.busAddress.value, size: UInt64(buffer.size), group: group)
            }
            known.forget(base: buffer.physical.value)
        }
        try flushDeferred(device)
        // The driver's remove(): the DMA layer gives the shadow pool back while the device is still known.
        do { try dma.deviceRemoved() } catch { try fail("\(device.device.name) DMA removal failed: \(error)") }
        forgetShadowPool(device, group: group)
        device.streams.removeAll()
        device.coherent.removeAll()
        device.unmapped.removeAll()
        report.iommuCalls += 1
        do { try platform.subsystem.removeDevice(device.device.address) } catch {
            try fail("removing \(device.device) failed: \(error)")
        }
        do { try platform.bus.unplug(device.device.address) } catch { try fail("unplugging \(device.device) failed: \(error)") }
        device.dma = nil
        if group.group.devices.isEmpty { groups.removeAll { $0 === group } }
    }

    /// Hot-plug: a new function at the same address joins the IOMMU-API and gets a DMA handle.
    func addDevice(_ device: FuzzDevice) throws(FuzzStop) {
        guard !device.plugged else { return }
        let spec = device.specification
        // A device joining a claimed group would be attached to the default domain behind its owner's back.
        if groups.contains(where: { $0.claimed && profile.isolationKey(of: device.device) == profile.isolationKey(of: $0.group.driverDevice(in: platform)) }) {
            return
        }
        let fresh = PCIDevice(address: spec.address, name: spec.name, deviceClass: spec.deviceClass, addressBits: spec.addressBits,
                              isUntrusted: spec.isUntrusted, requesterAlias: spec.requesterAlias, memory: platform.memory)
        let unitName = platform.specification.unit(for: spec)?.name
        let unit = platform.units.first { $0.name == unitName }
        report.iommuCalls += 1
        do { try platform.bus.plug(fresh, behind: unit) } catch { try fail("plugging \(fresh) back failed: \(error)") }
        do { try platform.subsystem.addDevice(fresh) } catch { try fail("adding \(fresh) back failed: \(error)") }
        let dma: DeviceDMA
        do { dma = try DeviceDMA(device: fresh, subsystem: platform.subsystem, pages: platform.pages,
                                  configuration: platform.dmaConfiguration(for: fresh.address)) } catch {
            try fail("a DMA handle for \(fresh) failed: \(error)")
        }
        device.device = fresh
        device.dma = dma
        adopt(device)
        if let group = groupModel(of: device), group.defaultDomain.kind.translates { try adoptShadowPool(device, group: group) }
        try checkGroups()
    }
}

extension IOMMUGroup {
    /// Any present device of the group, for its isolation key.
    fileprivate func driverDevice(in platform: EmulatedPlatform) -> PCIDevice {
        devices.first.flatMap { platform.subsystem.device(at: $0)?.device } ?? platform.devices[0]
    }
}
