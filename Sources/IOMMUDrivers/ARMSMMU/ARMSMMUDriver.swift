import Emulation
import IOMMUCore
import IOPageTable

/// Which devices one SMMU translates, as an IORT SMMUv3 node describes it,
/// and the translation granule its domains use.
public struct ARMSMMUUnitScope: DeviceCoverage, Sendable {
    public var unit: ARMSMMUUnit
    /// The segment's catch-all unit covers every device no other unit lists.
    public var includesAll: Bool
    public var devices: Set<PCIAddress>
    public var segment: UInt16
    public var granule: ARMTranslationGranule

    public init(unit: ARMSMMUUnit, includesAll: Bool, devices: Set<PCIAddress> = [], segment: UInt16 = 0,
                granule: ARMTranslationGranule = .size4K) {
        self.unit = unit
        self.includesAll = includesAll
        self.devices = devices
        self.segment = segment
        self.granule = granule
    }
}

/// The Arm SMMUv3 driver (Linux's drivers/iommu/arm/arm-smmu-v3). It programs
/// its units through their registers, a linear stream table, context
/// descriptors, AArch64 stage-1 tables and the command queue, and reads
/// faults from the event queue.
public final class ARMSMMUDriver: IOMMUDriver, Sendable {
    public static let driverName = "arm-smmu-v3"
    /// Where the DMA layer maps MSI doorbells on demand: Linux's MSI_IOVA_BASE and MSI_IOVA_LENGTH.
    public static let softwareMSIRegion = ReservedRegion(range: 0x0800_0000...0x080F_FFFF, kind: .softwareMSI,
                                                         permissions: .write, source: "SMMU software MSI doorbell")
    /// Input address bits of every translated domain (T0SZ = 16).
    public static let inputAddressBits = 48
    public var name: String { Self.driverName }
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let units: [ARMSMMUUnitScope]
    let hardware: [ObjectIdentifier: UnitState]
    /// Firmware direct regions per device (IORT RMR nodes).
    let directRegions: [PCIAddress: [ReservedRegion]]
    private let nextASID = HostLock<UInt16>(1)
    private let sink = HostLock<(any FaultSink)?>(nil)

    final class UnitState: Sendable {
        let unit: ARMSMMUUnit
        let granule: ARMTranslationGranule
        let streamTable: PhysicalAddress
        let streamIDBits: Int
        let outputAddressBits: Int
        let supportsRangeInvalidation: Bool
        let commands: ARMSMMUCommandQueue
        let events: ARMSMMUEventQueue

        init(scope: ARMSMMUUnitScope, pages: PhysicalPageAllocator) throws(IOMMUError) {
            unit = scope.unit
            granule = scope.granule
            let idr0 = unit.readRegister(ARMSMMURegister.idr0)
            let idr5 = unit.readRegister(ARMSMMURegister.idr5)
            guard idr0 & ARMSMMUIdentification.stage1 != 0, idr0 & (3 << 2) == ARMSMMUIdentification.aarch64Tables else {
                throw .hardware("\(unit.name) has no AArch64 stage-1 translation")
            }
            let granuleBit: UInt64 = switch scope.granule {
            case .size4K: ARMSMMUIdentification.granule4K
            case .size16K: ARMSMMUIdentification.granule16K
            case .size64K: ARMSMMUIdentification.granule64K
            }
            guard idr5 & granuleBit != 0 else { throw .hardware("\(unit.name) does not support the \(scope.granule) granule") }
            outputAddressBits = min(ARMSMMUIdentification.addressSize(encoding: idr5 & 7), 48)
            supportsRangeInvalidation = unit.readRegister(ARMSMMURegister.idr3) & ARMSMMUIdentification.rangeInvalidation != 0
            // A linear table indexed by the whole requester ID.
            streamIDBits = min(16, Int(unit.readRegister(ARMSMMURegister.idr1) & 0x3F))
            let tableBytes = max(PageSize.size4K, UInt64(1) << UInt64(streamIDBits) * ARMSMMUStreamTable.entryBytes)
            do {
                streamTable = try pages.allocate(pages: tableBytes >> 12, alignment: tableBytes)
                commands = try ARMSMMUCommandQueue(unit: unit, pages: pages)
                events = try ARMSMMUEventQueue(unit: unit, pages: pages)
            } catch { throw .hardware("\(unit.name): \(error)") }
        }

        func streamTableEntry(_ streamID: UInt32) -> PhysicalAddress {
            streamTable + UInt64(streamID) * ARMSMMUStreamTable.entryBytes
        }
    }

    /// Takes over the units: installs an empty stream table (every stream
    /// invalid until attached, so a stray device leaves C_BAD_STE events),
    /// enables the command queue, invalidates all cached configuration and
    /// translations, enables the event queue and its interrupt, then the SMMU.
    /// - Throws: ``IOMMUError/hardware(_:)`` when a unit lacks a required feature
    ///   or the chosen granule, or memory runs out.
    public init(units: [ARMSMMUUnitScope], pages: PhysicalPageAllocator,
                directRegions: [PCIAddress: [ReservedRegion]] = [:]) throws(IOMMUError) {
        memory = pages.memory
        self.pages = pages
        self.units = units
        self.directRegions = directRegions
        var hardware: [ObjectIdentifier: UnitState] = [:]
        for scope in units {
            let unit = scope.unit
            let state = try UnitState(scope: scope, pages: pages)
            unit.writeRegister(ARMSMMURegister.cr0, 0)
            unit.writeRegister(ARMSMMURegister.streamTableBase, state.streamTable.value)
            unit.writeRegister(ARMSMMURegister.streamTableConfig,
                               ARMSMMUStreamTable.linearFormat << ARMSMMUStreamTable.formatShift | UInt64(state.streamIDBits))
            unit.writeRegister(ARMSMMURegister.cr0, ARMSMMUControl.commandQueueEnable)
            do {
                try state.commands.submit { writer throws(MemoryError) in
                    try writer.add(ARMSMMUCommandQueue.invalidateAllConfiguration)
                    try writer.add(ARMSMMUCommandQueue.invalidateAllTLB)
                }
            } catch { throw .hardware("\(unit.name): \(error)") }
            unit.writeRegister(ARMSMMURegister.cr0, ARMSMMUControl.commandQueueEnable | ARMSMMUControl.eventQueueEnable)
            unit.writeRegister(ARMSMMURegister.irqControl,
                               ARMSMMUInterruptControl.eventQueueEnable | ARMSMMUInterruptControl.globalErrorEnable)
            let enabled = ARMSMMUControl.commandQueueEnable | ARMSMMUControl.eventQueueEnable | ARMSMMUControl.smmuEnable
            unit.writeRegister(ARMSMMURegister.cr0, enabled)
            guard unit.readRegister(ARMSMMURegister.cr0Ack) == enabled else {
                throw .hardware("\(unit.name) did not acknowledge CR0 \(hex(enabled))")
            }
            hardware[ObjectIdentifier(unit)] = state
        }
        self.hardware = hardware
        for key in hardware.keys {
            // Only weak references from the unit's interrupt line back to the driver: no cycle through the unit.
            hardware[key]?.unit.connectEventInterrupt { [weak self] in
                guard let self, let state = self.hardware[key] else { return }
                self.drainEvents(of: state)
            }
        }
    }

    public func connect(faultSink: any FaultSink) { sink.withLock { $0 = faultSink } }
    var sinkForDelivery: (any FaultSink)? { sink.withLock { $0 } }

    /// The unit covering `device`: an explicit scope first, then the segment's catch-all.
    func scope(for device: PCIDevice) -> ARMSMMUUnitScope? { units.unit(covering: device) }

    func unitState(for device: PCIDevice) throws(IOMMUError) -> UnitState {
        guard let scope = scope(for: device), let state = hardware[ObjectIdentifier(scope.unit)] else {
            throw .deviceNotManaged(device.address)
        }
        return state
    }

    public func probe(_ device: PCIDevice) -> IOMMUProbeResult? {
        guard let scope = scope(for: device) else { return nil }
        return IOMMUProbeResult(unitName: scope.unit.name, groupKey: "\(scope.unit.name)/\(device.busRequester)")
    }

    public func requiredDefaultDomainKind(for device: PCIDevice) -> DomainKind? { nil }

    /// Firmware direct regions and the software-MSI doorbell window; Arm has no hardware MSI window.
    public func reservedRegions(for device: PCIDevice) -> [ReservedRegion] {
        (directRegions[device.address] ?? []) + [Self.softwareMSIRegion]
    }

    /// - Throws: ``IOMMUError/deviceNotManaged(_:)``, ``IOMMUError/hardware(_:)`` when ASIDs run out,
    ///   ``IOMMUError/pageTable(_:)`` when the table or CD cannot be allocated.
    public func makeDomain(_ kind: DomainKind, for device: PCIDevice) throws(IOMMUError) -> IOMMUDomain {
        let state = try unitState(for: device)
        let pageSizes = PageSizeSet(state.granule.pageSizes)
        guard kind.translates else { return ARMSMMUDomain(kind: kind, context: nil, pageSizes: pageSizes) }
        let asid = try nextASID.withLock { (next) throws(IOMMUError) -> UInt16 in
            guard next < UInt16.max else { throw .hardware("out of SMMU ASIDs") }
            defer { next += 1 }
            return next
        }
        do {
            let context = try ARMSMMUDomain.Context(asid: asid, granule: state.granule,
                                                    outputAddressBits: state.outputAddressBits, pages: pages)
            return ARMSMMUDomain(kind: kind, context: context, pageSizes: pageSizes)
        } catch { throw .pageTable(error) }
    }
}
