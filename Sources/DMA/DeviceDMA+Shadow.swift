import Emulation
import IOMMUCore

extension DeviceDMA {
    /// Sets up the shadow pool of a device whose configuration asks for one and whose domain translates.
    /// - Throws: what ``ShadowPool`` setup throws.
    static func makeShadowPool(for device: PCIDevice, route: Route, configuration: DMAConfiguration,
                               pages: PhysicalPageAllocator, limit: UInt64,
                               prefers32BitAddresses: Bool) throws(DMAError) -> ShadowPool? {
        guard case let .shadowBuffers(granules) = configuration.streamingProtection,
              case let .translated(state) = route else { return nil }
        let preferred: UInt64? = prefers32BitAddresses && limit > 0xFFFF_FFFF ? 0xFFFF_FFFF : nil
        return try ShadowPool(device: device.address, granules: granules, state: state, pages: pages,
                              limit: limit, preferredLimit: preferred)
    }

    /// Whether streaming mappings of this device go through its shadow pool.
    public var usesShadowBuffers: Bool { shadow.map { !$0.isReleased } ?? false }

    /// Where the device's shadow pool lives (nil when it has none, or it was released at removal).
    public var shadowPoolLayout: ShadowPoolLayout? {
        guard let shadow, !shadow.isReleased else { return nil }
        return ShadowPoolLayout(busAddress: IOVirtualAddress(shadow.busBase), physical: shadow.physicalBase,
                                bytes: shadow.capacity, granule: shadow.granule)
    }

    /// What the shadow pool holds and has copied (nil when the device has none).
    public var shadowPoolStatistics: ShadowPoolStatistics? { shadow?.statistics }

    /// The streaming map of a shadow device: a copy into its pool, no page-table change.
    /// - Throws: ``DMAError/beyondMask(physical:size:mask:)`` when the mask was narrowed below the pool
    ///   after setup, and what ``ShadowPool/take(_:size:direction:)`` throws.
    func mapShadow(_ physical: PhysicalAddress, length: UInt64, direction: DMADirection,
                   pool: ShadowPool) throws(DMAError) -> IOVirtualAddress {
        let limit = streamingLimit.load(ordering: .relaxed)
        guard pool.lastBus <= limit else { throw .beyondMask(physical: physical.value, size: length, mask: limit) }
        return try pool.take(physical, size: length, direction: direction)
    }

    /// Ends a streaming mapping inside the shadow pool; false (doing nothing) when `bus` lies outside it.
    /// - Throws: what ``ShadowPool/give(back:size:)`` throws.
    func unmapShadow(_ bus: IOVirtualAddress, length: UInt64, pool: ShadowPool) throws(DMAError) -> Bool {
        guard pool.contains(bus.value) else { return false }
        try pool.give(back: bus.value, size: length)
        return true
    }

    /// Gives the shadow pool back (at removal, or when the handle goes). The domain is unmapped only
    /// while its group still has a device: an emptied group's default domain was destroyed with its tables.
    func releaseShadowPool(domainAlive: Bool) {
        shadow?.release(unmapping: domainAlive)
    }
}
