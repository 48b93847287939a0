import DMA
import Emulation
import IOMMUCore

/// The machine the attack scenarios run on: the default platform of the
/// family under the strategy's policy, plus an untrusted device (behind an
/// external port) on bus 0, and helpers to plant secrets.
struct AttackPlatform {
    static let untrustedAddress = PCIAddress(requesterID: 0x00E0) // 00:1c.0
    let platform: EmulatedPlatform
    let context: AttackContext

    init(_ context: AttackContext) throws(PlatformError) {
        self.context = context
        var specification: PlatformSpecification
        do { specification = try .defaultPlatform(family: context.family, policy: context.strategy.policy) } catch {
            throw .invalidSpecification("\(error)")
        }
        specification.devices.append(DeviceSpecification(address: Self.untrustedAddress, name: "thunderbolt-dev",
                                                          deviceClass: .other, isUntrusted: true))
        platform = try EmulatedPlatform(specification, dmaConfiguration: context.strategy.dmaConfiguration)
    }

    func dma(_ name: String) throws(PlatformError) -> DeviceDMA {
        guard let handle = platform.dma(for: name) else { throw .invalidSpecification("no device named \(name)") }
        return handle
    }

    /// Fills `pages` fresh pages (above 4 GiB, where a 32-bit device cannot reach them 1:1) with a recognisable secret.
    func secret(pages: UInt64 = 1, below4G: Bool = false) throws(PlatformError) -> PhysicalAddress {
        do {
            let zone: PhysicalPageAllocator.Zone = below4G ? .below(PhysicalAddress(0xFFFF_FFFF)) : .above(PhysicalAddress(1 << 32))
            let base = try platform.pages.allocate(pages: pages, zone: zone)
            let pattern = (0..<Int(pages * PageSize.size4K)).map { UInt8(truncatingIfNeeded: 0xA5 ^ ($0 &* 31)) }
            try platform.memory.write(base, bytes: pattern)
            return base
        } catch { throw .memory(error) }
    }

    func map(_ dma: DeviceDMA, _ physical: PhysicalAddress, size: Int, _ direction: DMADirection) throws(PlatformError) -> IOVirtualAddress {
        do { return try dma.map(physical, size: size, direction: direction) } catch { throw .dma(device: dma.device.address, error) }
    }

    func unmap(_ dma: DeviceDMA, _ bus: IOVirtualAddress, size: Int, _ direction: DMADirection) throws(PlatformError) {
        do { try dma.unmap(bus, size: size, direction: direction) } catch { throw .dma(device: dma.device.address, error) }
    }

    /// The device's default domain geometry, nil for an identity or unmanaged device.
    func geometry(of dma: DeviceDMA) -> DomainGeometry? {
        guard let domain = dma.managed?.domain, domain.kind.translates else { return nil }
        return domain.geometry
    }

    /// The window that explains reaching bus address `address` outside any mapping of the device, if one does.
    func passThroughWindow(_ dma: DeviceDMA, _ address: UInt64) -> ExposureWindow? {
        guard let geometry = geometry(of: dma), geometry.outside == .passThrough,
              !geometry.aperture.contains(address) else { return nil }
        return .gartPassThrough
    }

    /// Whether two devices share a group (and so a domain).
    func shareGroup(_ first: DeviceDMA, _ second: DeviceDMA) -> Bool {
        guard let one = first.managed?.group, let two = second.managed?.group else { return false }
        return one === two
    }
}
