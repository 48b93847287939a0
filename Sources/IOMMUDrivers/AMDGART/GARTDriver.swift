import Emulation
import IOMMUCore
import IOPageTable

/// Which devices one GART translates: the devices behind its northbridge.
public struct GARTUnitScope: DeviceCoverage, Sendable {
    public var unit: GARTUnit
    /// Covers every device of its segment that no other unit lists.
    public var includesAll: Bool
    public var devices: Set<PCIAddress>
    public var segment: UInt16

    public init(unit: GARTUnit, includesAll: Bool, devices: Set<PCIAddress> = [], segment: UInt16 = 0) {
        self.unit = unit
        self.includesAll = includesAll
        self.devices = devices
        self.segment = segment
    }
}

/// The AMD GART driver (Linux's arch/x86/kernel/amd_gart_64.c, as an IOMMU
/// driver). Firmware has placed the aperture (F3x90/F3x94, as aperture_64.c
/// finds it); the driver points the GART at a domain's GATT, enables it and
/// flushes the GART TLB with InvGart.
///
/// The GART cannot tell devices apart: one GATT serves everything behind the
/// northbridge, so all of a unit's devices form one group sharing one
/// domain. It has no permission bits and no way to refuse an address outside
/// the aperture, so it cannot make a blocked domain.
public final class GARTDriver: IOMMUDriver, Sendable {
    public static let driverName = "amd-gart"
    public var name: String { Self.driverName }
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let units: [GARTUnitScope]
    let hardware: [ObjectIdentifier: UnitState]
    let directRegions: [PCIAddress: [ReservedRegion]]
    private let sink = HostLock<(any FaultSink)?>(nil)

    /// What the driver knows and has programmed about one GART.
    final class UnitState: Sendable {
        let unit: GARTUnit
        let apertureBase: UInt64
        let apertureSize: UInt64
        let sizeBits: UInt32
        struct Attachment {
            /// Weak, so that a freed domain never looks attached.
            weak var domain: GARTDomain?
            var devices: Set<PCIAddress> = []
        }
        let attachment = HostLock(Attachment())

        init(unit: GARTUnit, apertureBase: UInt64, apertureSize: UInt64, sizeBits: UInt32) {
            self.unit = unit
            self.apertureBase = apertureBase
            self.apertureSize = apertureSize
            self.sizeBits = sizeBits
        }

        var aperture: ClosedRange<UInt64> { apertureBase...(apertureBase + apertureSize - 1) }

        /// InvGart: the hardware forgets every GATT entry it cached.
        func invalidateTLB() { unit.writeRegister(GARTRegister.cacheControl, UInt64(GARTCacheControl.invalidate)) }
    }

    /// Takes over the units: reads the aperture firmware placed, checks it
    /// and leaves translation off (GartEn clear) until a domain is attached.
    /// - Throws: ``IOMMUError/hardware(_:)`` when an aperture is unusable (zero, not aligned to its size,
    ///   or reaching above 4 GiB, where Linux's aperture_valid refuses it too).
    public init(units: [GARTUnitScope], pages: PhysicalPageAllocator,
                directRegions: [PCIAddress: [ReservedRegion]] = [:]) throws(IOMMUError) {
        memory = pages.memory
        self.pages = pages
        self.units = units
        self.directRegions = directRegions
        var hardware: [ObjectIdentifier: UnitState] = [:]
        for scope in units {
            let unit = scope.unit
            let sizeBits = UInt32(unit.readRegister(GARTRegister.apertureControl)) & GARTControl.sizeMask
            let size = GARTApertureSize.bytes(forEncoding: sizeBits >> GARTControl.sizeShift)
            let base = (unit.readRegister(GARTRegister.apertureBase) & 0x7FFF) << 25
            guard base != 0, base & (size - 1) == 0, base + size <= 1 << 32 else {
                throw .hardware("\(unit.name): aperture \(hex(base)) of \(hex(size)) bytes is unusable "
                                + "(it must be non-zero, aligned to its size and end below 4 GiB)")
            }
            unit.writeRegister(GARTRegister.apertureControl, UInt64(sizeBits | GARTControl.disableTableWalkProbe))
            unit.writeRegister(GARTRegister.cacheControl, UInt64(GARTCacheControl.invalidate | GARTCacheControl.pteError))
            hardware[ObjectIdentifier(unit)] = UnitState(unit: unit, apertureBase: base, apertureSize: size, sizeBits: sizeBits)
        }
        self.hardware = hardware
        for scope in units {
            let unit = scope.unit
            unit.connectErrorInterrupt { [weak self, weak unit] in
                if let self, let unit { self.drainErrors(of: unit) }
            }
        }
    }

    public func connect(faultSink: any FaultSink) { sink.withLock { $0 = faultSink } }

    func scope(for device: PCIDevice) -> GARTUnitScope? { units.unit(covering: device) }

    func state(for device: PCIDevice) throws(IOMMUError) -> UnitState {
        guard let scope = scope(for: device), let state = hardware[ObjectIdentifier(scope.unit)] else {
            throw .deviceNotManaged(device.address)
        }
        return state
    }

    /// Every device behind one GART lands in the same group: the GATT is shared.
    public func probe(_ device: PCIDevice) -> IOMMUProbeResult? {
        guard let scope = scope(for: device) else { return nil }
        return IOMMUProbeResult(unitName: scope.unit.name, groupKey: scope.unit.name)
    }

    public func requiredDefaultDomainKind(for device: PCIDevice) -> DomainKind? { nil }

    /// Firmware direct regions inside the aperture must be mapped 1:1 there;
    /// those wholly outside it are already reached 1:1 (pass-through) and are
    /// left out, since mapping them would be refused as outside the aperture.
    /// The MSI window is listed only if the aperture covers it.
    public func reservedRegions(for device: PCIDevice) -> [ReservedRegion] {
        guard let state = try? state(for: device) else { return [] }
        let aperture = state.aperture
        var regions = (directRegions[device.address] ?? []).filter { $0.range.overlaps(aperture) }
        if ReservedRegion.x86MSIWindow.range.overlaps(aperture) { regions.append(.x86MSIWindow) }
        return regions
    }

    /// - Throws: ``IOMMUError/unsupportedDomainKind(_:driver:)`` for blocked (the GART passes every
    ///   address outside its aperture through), ``IOMMUError/deviceNotManaged(_:)``, ``IOMMUError/pageTable(_:)``.
    public func makeDomain(_ kind: DomainKind, for device: PCIDevice) throws(IOMMUError) -> IOMMUDomain {
        let state = try state(for: device)
        switch kind {
        case .blocked:
            throw .unsupportedDomainKind(kind, driver: name)
        case .identity:
            return GARTDomain(kind: kind, table: nil, hardware: state)
        case .dma, .dmaLazy, .unmanaged:
            do {
                let table = try GARTTable(memory: memory, pageAllocator: pages, apertureBase: state.apertureBase,
                                          apertureSize: state.apertureSize)
                return GARTDomain(kind: kind, table: table, hardware: state)
            } catch { throw .pageTable(error) }
        }
    }

    /// Points the GART at the domain's GATT and enables it (or, for
    /// identity, turns the aperture off), then flushes the GART TLB. The
    /// switch affects every device behind the GART: they are one group.
    /// - Throws: ``IOMMUError/hardware(_:)`` for a domain of another driver or unit, ``IOMMUError/deviceNotManaged(_:)``.
    public func attach(_ domain: IOMMUDomain, to device: PCIDevice) throws(IOMMUError) {
        let state = try state(for: device)
        guard let domain = domain as? GARTDomain, domain.hardware === state else {
            throw .hardware("\(domain) does not belong to \(state.unit.name)")
        }
        state.attachment.withLock { attachment in
            if attachment.domain !== domain {
                let unit = state.unit
                if let table = domain.table {
                    unit.writeRegister(GARTRegister.tableBase, UInt64(table.tableBaseRegister))
                    unit.writeRegister(GARTRegister.apertureControl,
                                       UInt64(state.sizeBits | GARTControl.enable | GARTControl.disableTableWalkProbe))
                } else {
                    unit.writeRegister(GARTRegister.apertureControl, UInt64(state.sizeBits | GARTControl.disableTableWalkProbe))
                }
                state.invalidateTLB()
                attachment.domain = domain
            }
            attachment.devices.insert(device.address)
        }
    }

    /// When the last device behind a GART goes, the GART is turned off so
    /// that it never walks a GATT its domain is about to free.
    public func release(_ device: PCIDevice) {
        guard let state = try? state(for: device) else { return }
        state.attachment.withLock { attachment in
            attachment.devices.remove(device.address)
            guard attachment.devices.isEmpty else { return }
            state.unit.writeRegister(GARTRegister.apertureControl, UInt64(state.sizeBits | GARTControl.disableTableWalkProbe))
            state.invalidateTLB()
            attachment.domain = nil
        }
    }

    /// The error handler: read every logged GART error, hand it to the core,
    /// clear it, then clear the overflow flag and GartPteErr.
    func drainErrors(of unit: GARTUnit) {
        let faultSink = sink.withLock { $0 }
        for slot in 0..<unit.errorLogCapacity {
            let high = unit.readRegister(GARTRegister.errorLogBase + slot * 16 + 8)
            guard high >> 63 == 1 else { continue }
            let low = unit.readRegister(GARTRegister.errorLogBase + slot * 16)
            if let record = GARTErrorRecord(low: low, high: high) {
                faultSink?.deliver(IOMMUFault(
                    requester: PCIAddress(segment: 0, requesterID: record.requester), address: record.address,
                    access: record.isWrite ? .write : .read, reason: record.kind.generic,
                    hardwareReason: "GART \(record.kind)", unit: unit.name))
            }
            unit.writeRegister(GARTRegister.errorLogBase + slot * 16 + 8, 1 << 63)
        }
        unit.writeRegister(GARTRegister.errorLogStatus, GARTErrorLogStatus.overflowed)
        unit.writeRegister(GARTRegister.cacheControl, UInt64(GARTCacheControl.pteError))
    }
}
