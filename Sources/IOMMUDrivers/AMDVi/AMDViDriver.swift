import Emulation
import IOMMUCore
import IOPageTable

/// A range that an IVMD with the exclusion flag describes: DMA of the
/// devices it names (or of every device) bypasses translation there.
public struct AMDViExclusionRange: Sendable, Hashable {
    public var range: ClosedRange<UInt64>
    /// nil: every device behind the unit (the Allow bit).
    public var devices: Set<PCIAddress>?

    public init(range: ClosedRange<UInt64>, devices: Set<PCIAddress>? = nil) {
        self.range = range
        self.devices = devices
    }

    func applies(to device: PCIDevice) -> Bool {
        guard let devices else { return true }
        return devices.contains(device.address) || devices.contains(device.busRequester)
    }
}

/// Which devices one AMD-Vi unit translates, as an IVRS IVHD describes it,
/// and the exclusion ranges firmware gives it.
public struct AMDViUnitScope: DeviceCoverage, Sendable {
    public var unit: AMDViUnit
    /// The segment's catch-all unit covers every device no other unit lists.
    public var includesAll: Bool
    public var devices: Set<PCIAddress>
    public var segment: UInt16
    public var exclusionRanges: [AMDViExclusionRange]

    public init(unit: AMDViUnit, includesAll: Bool, devices: Set<PCIAddress> = [], segment: UInt16 = 0,
                exclusionRanges: [AMDViExclusionRange] = []) {
        self.unit = unit
        self.includesAll = includesAll
        self.devices = devices
        self.segment = segment
        self.exclusionRanges = exclusionRanges
    }
}

/// Driver choices that are not hardware properties.
public struct AMDViDriverOptions: Sendable, Hashable {
    /// Keep a leaf-page array in DMA domains (map/unmap without a walk).
    public var leafArray: Bool
    /// Use the deepest table the unit supports (6 levels, 64-bit aperture) instead of 3 (39 bits).
    public var widestAddressSpace: Bool

    public init(leafArray: Bool = true, widestAddressSpace: Bool = false) {
        self.leafArray = leafArray
        self.widestAddressSpace = widestAddressSpace
    }
}

/// The AMD-Vi driver (Linux's drivers/iommu/amd). It programs its units
/// through their MMIO registers, device tables, v1 page tables, command
/// buffers and event logs, and nothing else.
public final class AMDViDriver: IOMMUDriver, Sendable {
    public static let driverName = "amd-vi"
    /// Table depth for default domains: 3 levels, a 39-bit aperture, as Linux's default.
    public static let defaultLevels = 3
    /// The HyperTransport window AMD platforms reserve in every device's bus address space.
    public static let hyperTransportHole = ReservedRegion(range: 0xFD_0000_0000...0xFF_FFFF_FFFF, kind: .reserved,
                                                          permissions: [], source: "HyperTransport")
    public var name: String { Self.driverName }
    public let options: AMDViDriverOptions
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let units: [AMDViUnitScope]
    let hardware: [ObjectIdentifier: UnitState]
    /// IVMD unity-mapped ranges per device.
    let unityRanges: [PCIAddress: [ReservedRegion]]
    private let nextDomainID = HostLock<UInt16>(1)
    private let sink = HostLock<(any FaultSink)?>(nil)
    /// Device IDs attached to blocked domains, per unit, so their faults read as "blocked".
    let blockedDevices = HostLock<Set<String>>([])

    final class UnitState: Sendable {
        let unit: AMDViUnit
        let deviceTable: PhysicalAddress
        let eventLog: PhysicalAddress
        let eventLogBytes: UInt64 = 4096
        let queue: AMDViCommandQueue
        let maximumLevels: Int
        /// The exclusion range programmed into the unit's registers, if any.
        let hardwareExclusion: AMDViExclusionRange?
        /// Held while the event log is drained, so two interrupts never deliver one event twice.
        let draining = HostLock<Void>(())

        init(scope: AMDViUnitScope, pages: PhysicalPageAllocator) throws(MemoryError) {
            unit = scope.unit
            let memory = pages.memory
            // 65536 entries of 32 bytes: every device ID; all start blocked (V=1, TV=1, no permission).
            deviceTable = try pages.allocate(pages: 512)
            for deviceID in 0..<UInt64(65536) {
                try memory.store64(deviceTable + deviceID * AMDViDTE.bytes, AMDViDTE.valid | AMDViDTE.translationValid)
            }
            eventLog = try pages.allocate()
            queue = try AMDViCommandQueue(unit: unit, pages: pages)
            let features = unit.readRegister(AMDViRegister.extendedFeatures)
            maximumLevels = 4 + Int((features >> AMDViFeature.hostAddressTranslationSizeShift) & 3)
            hardwareExclusion = scope.exclusionRanges.first
        }
    }

    /// Takes over the units: installs device tables with every device
    /// blocked, starts the command buffers and event logs, programs the
    /// exclusion range, invalidates everything, then enables translation.
    /// - Throws: ``IOMMUError/hardware(_:)`` when memory runs out or a unit does not complete a command.
    public init(units: [AMDViUnitScope], pages: PhysicalPageAllocator, unityRanges: [PCIAddress: [ReservedRegion]] = [:],
                options: AMDViDriverOptions = .init()) throws(IOMMUError) {
        memory = pages.memory
        self.pages = pages
        self.units = units
        self.unityRanges = unityRanges
        self.options = options
        var hardware: [ObjectIdentifier: UnitState] = [:]
        for scope in units {
            let unit = scope.unit
            let state: UnitState
            do { state = try UnitState(scope: scope, pages: pages) } catch { throw .hardware("\(unit.name): \(error)") }
            unit.writeRegister(AMDViRegister.deviceTableBase, state.deviceTable.value | 511)
            unit.writeRegister(AMDViRegister.eventLogBase, state.eventLog.value | 8 << 56)
            if let exclusion = state.hardwareExclusion {
                let allow = exclusion.devices == nil ? AMDViExclusion.allowAll : 0
                unit.writeRegister(AMDViRegister.exclusionBase,
                                   (exclusion.range.lowerBound & AMDViExclusion.addressMask) | AMDViExclusion.enable | allow)
                unit.writeRegister(AMDViRegister.exclusionLimit, exclusion.range.upperBound & AMDViExclusion.addressMask)
            }
            unit.writeRegister(AMDViRegister.control, AMDViControl.commandBufferEnable | AMDViControl.eventLogEnable
                               | AMDViControl.eventInterruptEnable)
            do {
                try state.queue.submitAndWait(AMDViCommandQueue.invalidateAll)
            } catch { throw .hardware("\(unit.name): \(error)") }
            unit.writeRegister(AMDViRegister.control, AMDViControl.commandBufferEnable | AMDViControl.eventLogEnable
                               | AMDViControl.eventInterruptEnable | AMDViControl.iommuEnable)
            hardware[ObjectIdentifier(unit)] = state
        }
        self.hardware = hardware
        for scope in units {
            let unit = scope.unit
            unit.connectEventInterrupt { [weak self, weak unit] in
                if let self, let unit { self.drainEvents(of: unit) }
            }
        }
    }

    public func connect(faultSink: any FaultSink) { sink.withLock { $0 = faultSink } }
    var sinkForDelivery: (any FaultSink)? { sink.withLock { $0 } }

    /// The unit covering `device`: an explicit scope first, then the segment's catch-all.
    func scope(for device: PCIDevice) -> AMDViUnitScope? { units.unit(covering: device) }

    public func probe(_ device: PCIDevice) -> IOMMUProbeResult? {
        guard let scope = scope(for: device) else { return nil }
        return IOMMUProbeResult(unitName: scope.unit.name, groupKey: "\(scope.unit.name)/\(device.busRequester)")
    }

    public func requiredDefaultDomainKind(for device: PCIDevice) -> DomainKind? { nil }

    /// IVMD unity ranges (direct), the exclusion range the unit applies to
    /// the device in hardware (reserved: DMA there bypasses the tables, so
    /// the allocator must not use it and nothing is mapped), further
    /// exclusion ranges the single hardware range cannot hold (direct-relaxable:
    /// mapped 1:1 instead, as Linux now treats them), the MSI window and the
    /// HyperTransport hole.
    public func reservedRegions(for device: PCIDevice) -> [ReservedRegion] {
        var regions = unityRanges[device.address] ?? []
        if let scope = scope(for: device) {
            for (index, exclusion) in scope.exclusionRanges.enumerated() where exclusion.applies(to: device) {
                regions.append(ReservedRegion(range: exclusion.range, kind: index == 0 ? .reserved : .directRelaxable,
                                              permissions: index == 0 ? [] : .readWrite,
                                              source: index == 0 ? "IVMD exclusion range" : "IVMD exclusion range (unity-mapped)"))
            }
        }
        return regions + [ReservedRegion.x86MSIWindow, Self.hyperTransportHole]
    }

    /// A domain for `device`'s unit: 3 levels (39-bit aperture) unless the options ask for the widest the
    /// unit supports; translating kinds get an empty table, DMA kinds the leaf-page array when enabled.
    /// - Throws: ``IOMMUError/deviceNotManaged(_:)``, ``IOMMUError/hardware(_:)`` when domain IDs run out,
    ///   ``IOMMUError/pageTable(_:)`` when no page is free for the table.
    public func makeDomain(_ kind: DomainKind, for device: PCIDevice) throws(IOMMUError) -> IOMMUDomain {
        guard let scope = scope(for: device), let state = hardware[ObjectIdentifier(scope.unit)] else {
            throw .deviceNotManaged(device.address)
        }
        let domainID = try nextDomainID.withLock { (next) throws(IOMMUError) -> UInt16 in
            guard next < UInt16.max else { throw .hardware("out of AMD-Vi domain IDs") }
            defer { next += 1 }
            return next
        }
        let levels = options.widestAddressSpace ? state.maximumLevels : min(Self.defaultLevels, state.maximumLevels)
        // Every power of two the depth can encode (Linux's AMD_IOMMU_PGSIZES): next-level-7 entries make
        // 8 KiB...1 MiB and 4 MiB...512 MiB pages native, so a 64 KiB buffer is one map call and one IOTLB
        // entry instead of sixteen.
        let pageSizes = PageSizeSet(bitmap: AMDViPageTableEncoding.pageSizes(levels: levels))
        var table: AMDViPageTable?
        if kind.translates {
            do {
                table = try AMDViPageTable(memory: memory, pageAllocator: pages, levels: levels,
                                           physicalAddressBits: scope.unit.configuration.physicalAddressBits)
            } catch { throw .pageTable(error) }
        }
        return AMDViDomain(kind: kind, domainID: domainID, table: table, pageSizes: pageSizes, leafArray: options.leafArray)
    }
}
