import Emulation
import IOMMUCore
import IOVA
import Synchronization

/// The DMA API for one device: the single implementation that serves every
/// IOMMU family (Linux's dma-iommu.c plus dma-direct and swiotlb).
///
/// It reads only what the IOMMU-API reports: the device's default domain,
/// that domain's aperture and page sizes, and the device's reserved regions.
/// A translated domain gets an IOVA allocator over its aperture (minus the
/// reserved regions) and mappings made with the domain's map/unmap; an
/// identity domain or a device behind no IOMMU gets bus address = physical
/// address, through a bounce pool below the mask when the buffer lies beyond it.
///
/// Once the device has been removed from the IOMMU-API every call that would reach its
/// domain throws ``DMAError/deviceUnavailable(_:reason:)``: the removal may have destroyed the
/// domain and handed its page-table pages to someone else. A call that races with the removal
/// itself is the driver's bug, as in Linux, whose remove() must stop DMA before it returns.
public final class DeviceDMA: Sendable {
    public let device: PCIDevice
    public let pages: PhysicalPageAllocator
    /// The IOMMU-API's view of the device; nil when no IOMMU covers it.
    public let managed: IOMMUDevice?
    public let configuration: DMAConfiguration
    /// Try below 4 GiB first for wide-mask PCI devices, as Linux does, to keep
    /// 32-bit-friendly translations (single-address-cycle) the common case.
    public let prefers32BitAddresses: Bool
    let route: Route
    /// The translated domain when the one-page fast path applies (trusted, no debug checking).
    let fastState: DMADomainState?
    /// The same, unretained: `route` keeps it alive, and the hot path borrows
    /// it through `_withUnsafeGuaranteedRef` instead of paying a retain/release.
    let fastStateReference: Unmanaged<DMADomainState>?
    /// The shadow pool when its own fast path applies (no debug checking), unretained (`shadow` keeps it).
    let fastShadowReference: Unmanaged<ShadowPool>?
    /// The device's gate, unretained (`managed` keeps it alive): the hot path checks it
    /// (group claimed, device removed) without a retain.
    let gate: Unmanaged<DMALayerGate>?
    /// Whether partial-page mappings are bounced: untrusted devices behind a translating IOMMU.
    let bouncesPartialPages: Bool
    let debug: DMADebugTracker?
    let slots: ThreadSlotRegistry
    private let masks = HostLock<(streaming: UInt64, coherent: UInt64)>((0, 0))
    /// The streaming mask and the highest usable IOVA under it, read with plain loads on every map.
    let streamingMaskValue: Atomic<UInt64>
    let streamingLimit: Atomic<UInt64>
    let coherentMaskValue: Atomic<UInt64>
    let bounce = HostLock<BouncePool?>(nil)
    /// The shadow pool streaming mappings go through (``StreamingProtection/shadowBuffers(granules:)``).
    let shadow: ShadowPool?

    enum Route: Sendable {
        case direct
        case translated(DMADomainState)
        case unusable(String)
    }

    /// Sets the device up for DMA through the IOMMU-API.
    /// - Throws: ``DMAError/allocator(_:)`` when the default domain's geometry cannot host an
    ///   IOVA allocator, or when a reserved region cannot be punched out.
    public init(device: PCIDevice, subsystem: IOMMUSubsystem?, pages: PhysicalPageAllocator,
                prefers32BitAddresses: Bool = true, configuration: DMAConfiguration = .init()) throws(DMAError) {
        self.device = device
        self.pages = pages
        self.prefers32BitAddresses = prefers32BitAddresses
        self.configuration = configuration
        let mask = Self.mask(device.addressBits)
        streamingMaskValue = Atomic(mask)
        coherentMaskValue = Atomic(mask)
        managed = subsystem?.device(at: device.address)
        debug = configuration.debugChecks ? DMADebugTracker(device: device.address) : nil
        var route = Route.direct
        if let managed, let domain = managed.group.defaultDomain {
            switch domain.kind {
            case .identity: route = .direct
            case .dma, .dmaLazy:
                let state = try DMADomainState.attached(to: domain, configuration: configuration)
                try state.reserveRegions(of: managed, hostBridgeWindows: configuration.hostBridgeWindows)
                route = .translated(state)
            case .blocked: route = .unusable("its default domain blocks all DMA")
            case .unmanaged: route = .unusable("its default domain is unmanaged")
            }
        }
        self.route = route
        var translatedState: DMADomainState?
        if case let .translated(state) = route { translatedState = state }
        bouncesPartialPages = translatedState != nil && device.isUntrusted
        let streamingLimit = min(mask, translatedState?.domain.geometry.aperture.upperBound ?? mask)
        shadow = try Self.makeShadowPool(for: device, route: route, configuration: configuration, pages: pages,
                                         limit: streamingLimit, prefers32BitAddresses: prefers32BitAddresses)
        // Linux-placed domains and shadow-buffer devices keep every call on the general path,
        // where the placement is dispatched and the pool is used.
        fastState = configuration.debugChecks || device.isUntrusted || shadow != nil
            || translatedState?.linuxPlacement != nil ? nil : translatedState
        fastStateReference = fastState.map { Unmanaged.passUnretained($0) }
        fastShadowReference = configuration.debugChecks ? nil : shadow.map { Unmanaged.passUnretained($0) }
        gate = managed.map { Unmanaged.passUnretained($0.dmaLayerGate) }
        self.streamingLimit = Atomic(streamingLimit)
        slots = ThreadSlotRegistry(queueCapacity: configuration.flushQueueThreshold) { [translatedState] slot in
            translatedState?.adopt(slot)
        }
    }

    deinit {
        releaseShadowPool(domainAlive: defaultDomainAlive)
        if case let .translated(state) = route { state.forget(slots.all) }
    }

    /// Whether the default domain still exists: removing a group's last device destroys it.
    var defaultDomainAlive: Bool { managed.map { !$0.isRemoved || !$0.group.devices.isEmpty } ?? false }

    /// The kind of the domain the DMA layer works with for this device (nil without an IOMMU).
    public var domainKind: DomainKind? { managed?.group.defaultDomain?.kind }

    /// Whether device accesses go through IOMMU translation (else bus address = physical address).
    public var isTranslated: Bool {
        if case .translated = route { return true }
        return false
    }

    // MARK: Masks

    /// The widest bus address streaming mappings may use.
    public var streamingMask: UInt64 { streamingMaskValue.load(ordering: .relaxed) }
    /// The widest bus address coherent buffers may use.
    public var coherentMask: UInt64 { coherentMaskValue.load(ordering: .relaxed) }

    static func mask(_ bits: Int) -> UInt64 { bits >= 64 ? .max : (1 << UInt64(bits)) - 1 }

    /// Sets the streaming and coherent masks (dma_set_mask_and_coherent); every
    /// later bus address, translated, direct or bounced, fits them.
    /// - Throws: ``DMAError/invalidMask(bits:)`` for fewer than 12 or more than 64 bits, or more than the device drives.
    public func setMasks(streamingBits: Int, coherentBits: Int? = nil) throws(DMAError) {
        let coherent = coherentBits ?? streamingBits
        for bits in [streamingBits, coherent] where !(12...min(64, device.addressBits)).contains(bits) {
            throw .invalidMask(bits: bits)
        }
        let streaming = Self.mask(streamingBits)
        var limit = streaming
        if case let .translated(state) = route { limit = min(limit, state.domain.geometry.aperture.upperBound) }
        masks.withLock { _ in
            streamingMaskValue.store(streaming, ordering: .relaxed)
            streamingLimit.store(limit, ordering: .relaxed)
            coherentMaskValue.store(Self.mask(coherent), ordering: .relaxed)
        }
    }

    @inline(__always)
    func preferredLimit(under limit: UInt64) -> UInt64? {
        prefers32BitAddresses && limit > 0xFFFF_FFFF ? 0xFFFF_FFFF : nil
    }

    /// Whether the device's default domain is off limits now (its group is owned by another
    /// user, or the device was removed): one atomic load, no retain.
    @inline(__always)
    var isBlocked: Bool { gate?._withUnsafeGuaranteedRef { $0.isClosed } ?? false }

    /// The route every call takes, checked first.
    /// - Throws: ``DMAError/deviceUnavailable(_:reason:)`` when the device was removed from its
    ///   IOMMU, its group is claimed, or its default domain gives no usable route.
    func checkUsable() throws(DMAError) -> Route {
        if let managed, managed.isRemoved {
            throw .deviceUnavailable(device.address, reason: "it was removed from its IOMMU")
        }
        if let managed, managed.group.isClaimed {
            throw .deviceUnavailable(device.address, reason: "its group is owned by \(managed.group.owner ?? "another user")")
        }
        if case let .unusable(reason) = route { throw .deviceUnavailable(device.address, reason: reason) }
        return route
    }

    // MARK: Lazy invalidation

    /// Completes every deferred invalidation of the device's lazy domain now.
    public func flushDeferred() {
        guard case let .translated(state) = route, state.isLazy else { return }
        state.flushDeferred()
    }

    /// Unmapped ranges still waiting for a lazy flush (in the device's whole domain).
    public var deferredUnmaps: Int {
        guard case let .translated(state) = route, state.isLazy else { return 0 }
        return state.pendingCount
    }

    /// The measured lazy window of the device's domain (all zero for a strict or direct device).
    public var lazyWindow: LazyWindowStatistics {
        guard case let .translated(state) = route else { return LazyWindowStatistics() }
        return state.window.snapshot
    }

    // MARK: Statistics

    /// What the DMA layer did for this device, summed over every thread.
    public var statistics: DeviceDMAStatistics {
        var result = DeviceDMAStatistics(mappings: 0, unmappings: 0, bytesMapped: 0, coherentBytesLive: 0)
        for slot in slots.all {
            result.mappings += slot.pointee.maps.load(ordering: .relaxed)
            result.unmappings += slot.pointee.unmaps.load(ordering: .relaxed)
            result.bytesMapped += slot.pointee.bytes.load(ordering: .relaxed)
        }
        result.coherentBytesLive = coherentLive.load(ordering: .relaxed)
        result.bounced = bounce.withLock { $0?.bouncedMappings ?? 0 }
        return result
    }

    let coherentLive = Atomic<UInt64>(0)
}

/// What the DMA layer did for one device; see ``DeviceDMA/statistics``.
public struct DeviceDMAStatistics: Sendable, Hashable, Codable {
    public var mappings: UInt64
    public var unmappings: UInt64
    public var bytesMapped: UInt64
    public var coherentBytesLive: UInt64
    /// Mappings that went through the bounce pool.
    public var bounced: UInt64 = 0
}
