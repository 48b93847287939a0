import Emulation
import IOMMUCore
import IOPageTable

/// Which devices one VT-d unit translates, as a DMAR DRHD describes it.
public struct VTdUnitScope: DeviceCoverage, Sendable {
    public var unit: VTdUnit
    /// The segment's catch-all unit (DRHD INCLUDE_PCI_ALL) covers every device no other unit lists.
    public var includesAll: Bool
    public var devices: Set<PCIAddress>
    public var segment: UInt16

    public init(unit: VTdUnit, includesAll: Bool, devices: Set<PCIAddress> = [], segment: UInt16 = 0) {
        self.unit = unit
        self.includesAll = includesAll
        self.devices = devices
        self.segment = segment
    }
}

/// The Intel VT-d driver (Linux's drivers/iommu/intel). It programs its
/// units through their registers, root and context tables, second-level
/// page tables and invalidation queues, and nothing else.
public final class VTdDriver: IOMMUDriver, Sendable {
    public static let driverName = "intel-vtd"
    public var name: String { Self.driverName }
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let units: [VTdUnitScope]
    let hardware: [ObjectIdentifier: UnitState]
    /// RMRRs per device, from the platform description.
    let directRegions: [PCIAddress: [ReservedRegion]]
    let preferredWidth: VTdAddressWidth
    private let nextDomainID = HostLock<UInt16>(1)
    private let sink = HostLock<(any FaultSink)?>(nil)

    final class UnitState: Sendable {
        let unit: VTdUnit
        let rootTable: PhysicalAddress
        let queue: VTdInvalidationQueue
        let contextTables = HostLock<[UInt8: PhysicalAddress]>([:])
        let pageSizes: PageSizeSet
        let widths: Set<VTdAddressWidth>

        init(unit: VTdUnit, pages: PhysicalPageAllocator) throws(MemoryError) {
            self.unit = unit
            rootTable = try pages.allocate()
            queue = try VTdInvalidationQueue(unit: unit, pages: pages)
            let capability = unit.readRegister(VTdRegister.capability)
            let largePages = (capability >> 34) & 0xF
            pageSizes = PageSizeSet([PageSize.size4K, largePages & 1 != 0 ? PageSize.size2M : 0,
                                     largePages & 2 != 0 ? PageSize.size1G : 0])
            let sagaw = (capability >> 8) & 0x1F
            widths = Set(VTdAddressWidth.allCases.filter { sagaw >> UInt64($0.levels - 2) & 1 == 1 })
        }
    }

    /// Takes over the units: installs empty root tables, enables queued
    /// invalidation, then translation. Until a device is attached every
    /// access through a unit faults (context not present).
    /// - Throws: ``IOMMUError/hardware(_:)`` when a unit lacks a required feature or memory runs out.
    public init(units: [VTdUnitScope], pages: PhysicalPageAllocator, directRegions: [PCIAddress: [ReservedRegion]] = [:],
                preferredWidth: VTdAddressWidth = .bits48) throws(IOMMUError) {
        self.memory = pages.memory
        self.pages = pages
        self.units = units
        self.directRegions = directRegions
        self.preferredWidth = preferredWidth
        var hardware: [ObjectIdentifier: UnitState] = [:]
        for scope in units {
            let unit = scope.unit
            guard unit.readRegister(VTdRegister.extendedCapability) & 2 != 0 else {
                throw .hardware("\(unit.name) has no queued invalidation")
            }
            let state: UnitState
            do { state = try UnitState(unit: unit, pages: pages) } catch { throw .hardware("\(unit.name): \(error)") }
            guard !state.widths.isEmpty else { throw .hardware("\(unit.name) supports no second-level table depth") }
            unit.writeRegister(VTdRegister.rootTableAddress, state.rootTable.value)
            unit.writeRegister(VTdRegister.globalCommand, UInt64(VTdGlobal.setRootTablePointer))
            unit.writeRegister(VTdRegister.globalCommand, UInt64(VTdGlobal.queuedInvalidationEnable))
            do {
                try state.queue.submitAndWait(VTdInvalidationQueue.contextGlobal, VTdInvalidationQueue.iotlbGlobal)
            } catch { throw .hardware("\(unit.name): \(error)") }
            unit.writeRegister(VTdRegister.globalCommand,
                               UInt64(VTdGlobal.queuedInvalidationEnable | VTdGlobal.translationEnable))
            hardware[ObjectIdentifier(unit)] = state
        }
        self.hardware = hardware
        for scope in units {
            let unit = scope.unit
            unit.connectFaultInterrupt { [weak self, weak unit] in
                if let self, let unit { self.drainFaults(of: unit) }
            }
        }
    }

    public func connect(faultSink: any FaultSink) { sink.withLock { $0 = faultSink } }
    var sinkForDelivery: (any FaultSink)? { sink.withLock { $0 } }

    /// The unit covering `device`: an explicit scope first, then the segment's catch-all.
    func scope(for device: PCIDevice) -> VTdUnitScope? { units.unit(covering: device) }

    public func probe(_ device: PCIDevice) -> IOMMUProbeResult? {
        guard let scope = scope(for: device) else { return nil }
        return IOMMUProbeResult(unitName: scope.unit.name, groupKey: "\(scope.unit.name)/\(device.busRequester)")
    }

    public func requiredDefaultDomainKind(for device: PCIDevice) -> DomainKind? { nil }

    public func reservedRegions(for device: PCIDevice) -> [ReservedRegion] {
        (directRegions[device.address] ?? []) + [ReservedRegion.x86MSIWindow]
    }

    public func makeDomain(_ kind: DomainKind, for device: PCIDevice) throws(IOMMUError) -> IOMMUDomain {
        guard let scope = scope(for: device), let state = hardware[ObjectIdentifier(scope.unit)] else {
            throw .deviceNotManaged(device.address)
        }
        let domainID = try nextDomainID.withLock { (next) throws(IOMMUError) -> UInt16 in
            guard next < UInt16.max else { throw .hardware("out of VT-d domain IDs") }
            defer { next += 1 }
            return next
        }
        var table: VTdSecondLevelTable?
        if kind.translates {
            let width = state.widths.contains(preferredWidth) ? preferredWidth : state.widths.max { $0.rawValue < $1.rawValue }!
            do {
                table = try VTdSecondLevelTable(memory: memory, pageAllocator: pages, levels: width.levels,
                                                largePages: state.pageSizes.bitmap != PageSize.size4K,
                                                physicalAddressBits: scope.unit.configuration.hostAddressBits)
            } catch { throw .pageTable(error) }
        }
        return VTdDomain(kind: kind, domainID: domainID, table: table, pageSizes: state.pageSizes)
    }
}
