import Emulation
import IOMMUCore
import IOPageTable

/// Which devices one Calgary chip translates.
public struct CalgaryUnitScope: Sendable {
    public var unit: CalgaryUnit
    public var includesAll: Bool
    public var devices: Set<PCIAddress>
    public var segment: UInt16
    /// The DMA window [0, windowBytes) translated domains on this chip get: a power of two from 32 MiB to 4 GiB.
    public var windowBytes: UInt64

    public init(unit: CalgaryUnit, includesAll: Bool, devices: Set<PCIAddress> = [], segment: UInt16 = 0,
                windowBytes: UInt64 = 2 << 30) {
        self.unit = unit
        self.includesAll = includesAll
        self.devices = devices
        self.segment = segment
        self.windowBytes = windowBytes
    }
}

/// The IBM Calgary driver (Linux's pci-calgary_64.c, as an IOMMU driver).
///
/// Each PHB translates its buses through one TCE table, so all devices on a
/// PHB share a group and a domain. Attaching a domain writes the PHB's TAR
/// (table base and size code) and sets TCE enable with DAC disabled, so the
/// window [0, size) is all the bus can reach; an identity domain clears TCE
/// enable instead (Linux's "translation disabled" bus). Invalidation is a
/// rewrite of the TAR, which drops the PHB's whole TCE cache.
public final class CalgaryDriver: IOMMUDriver, Sendable {
    public static let driverName = "ibm-calgary"
    public var name: String { Self.driverName }
    /// Linux never hands out 640K-1M on Calgary: its driver notes that the
    /// chip does not translate that legacy VGA/BIOS range. The emulated chip
    /// translates it like any other page; the reservation keeps the DMA
    /// layer where the real one is safe.
    public static let legacyHole = ReservedRegion(range: 0xA_0000...0xF_FFFF, kind: .reserved, permissions: [],
                                                  source: "640K-1M legacy range (Linux never maps it on Calgary)")
    let memory: PhysicalMemory
    let pages: PhysicalPageAllocator
    let units: [CalgaryUnitScope]
    let phbStates: [ObjectIdentifier: [PHBState]]
    let directRegions: [PCIAddress: [ReservedRegion]]
    private let sink = HostLock<(any FaultSink)?>(nil)

    /// One PHB as the driver programs it.
    final class PHBState: Sendable {
        let unit: CalgaryUnit
        let index: Int
        let buses: ClosedRange<UInt8>
        let windowBytes: UInt64
        struct Attachment {
            /// Weak: the domain holds the PHB, and a freed domain must never look attached.
            weak var domain: CalgaryDomain?
            var devices: Set<PCIAddress> = []
        }
        let attachment = HostLock(Attachment())

        init(unit: CalgaryUnit, index: Int, buses: ClosedRange<UInt8>, windowBytes: UInt64) {
            self.unit = unit
            self.index = index
            self.buses = buses
            self.windowBytes = windowBytes
        }

        /// Writing the TAR, even with the value it holds, invalidates the PHB's TCE cache.
        func writeTableAddress(_ value: UInt64) { unit.writeRegister(CalgaryRegister.tableAddress(phb: index), value) }

        func setTranslation(enabled: Bool) {
            let offset = CalgaryRegister.phbConfiguration(phb: index)
            let bits = CalgaryPHBConfiguration.tceEnable | CalgaryPHBConfiguration.dacDisable | CalgaryPHBConfiguration.mcsrEnable
            let current = UInt32(truncatingIfNeeded: unit.readRegister(offset))
            unit.writeRegister(offset, UInt64(enabled ? current | bits : current & ~bits))
        }
    }

    /// Takes over the chips: learns which buses each PHB decodes from its
    /// bus-range register. Translation stays as firmware left it (off) until
    /// a domain is attached.
    /// - Throws: ``IOMMUError/hardware(_:)`` when a scope's window is not a power of two from 32 MiB to 4 GiB.
    public init(units: [CalgaryUnitScope], pages: PhysicalPageAllocator,
                directRegions: [PCIAddress: [ReservedRegion]] = [:]) throws(IOMMUError) {
        memory = pages.memory
        self.pages = pages
        self.units = units
        self.directRegions = directRegions
        var states: [ObjectIdentifier: [PHBState]] = [:]
        for scope in units {
            let unit = scope.unit
            guard CalgaryTableAddress.sizeCode(windowBytes: scope.windowBytes) != nil else {
                throw .hardware("\(unit.name): a DMA window of \(hex(scope.windowBytes)) bytes cannot be encoded "
                                + "(a power of two from 32 MiB to 4 GiB)")
            }
            states[ObjectIdentifier(unit)] = (0..<CalgaryRegister.phbCount).compactMap { phb in
                CalgaryBusRange.decode(unit.readRegister(CalgaryRegister.busRange(phb: phb)))
                    .map { PHBState(unit: unit, index: phb, buses: $0, windowBytes: scope.windowBytes) }
            }
        }
        phbStates = states
        for scope in units {
            let unit = scope.unit
            unit.connectErrorInterrupt { [weak self, weak unit] in
                if let self, let unit { self.drainErrors(of: unit) }
            }
        }
    }

    public func connect(faultSink: any FaultSink) { sink.withLock { $0 = faultSink } }

    func phb(for device: PCIDevice) -> PHBState? {
        let requester = device.busRequester
        let scope = units.first { $0.devices.contains(device.address) || $0.devices.contains(requester) }
            ?? units.first { $0.includesAll && $0.segment == device.address.segment }
        guard let scope else { return nil }
        return phbStates[ObjectIdentifier(scope.unit)]?.first { $0.buses.contains(requester.bus) }
    }

    /// Devices on one PHB share its TCE table, hence one group per PHB.
    public func probe(_ device: PCIDevice) -> IOMMUProbeResult? {
        guard let phb = phb(for: device) else { return nil }
        return IOMMUProbeResult(unitName: phb.unit.name, groupKey: "\(phb.unit.name)/phb\(phb.index)")
    }

    public func requiredDefaultDomainKind(for device: PCIDevice) -> DomainKind? { nil }

    /// Firmware direct regions (which must lie inside the window to be
    /// honoured), the legacy 640K-1M range and, when the window reaches it,
    /// the MSI window.
    public func reservedRegions(for device: PCIDevice) -> [ReservedRegion] {
        guard let phb = phb(for: device) else { return [] }
        let window: ClosedRange<UInt64> = 0...(phb.windowBytes - 1)
        var regions = directRegions[device.address] ?? []
        for region in [Self.legacyHole, ReservedRegion.x86MSIWindow] where region.range.overlaps(window) {
            regions.append(region)
        }
        return regions
    }

    /// A blocked domain is a TCE table that nothing is ever mapped into (the
    /// smallest, 32 MiB window); identity has no table.
    /// - Throws: ``IOMMUError/deviceNotManaged(_:)``, ``IOMMUError/pageTable(_:)``.
    public func makeDomain(_ kind: DomainKind, for device: PCIDevice) throws(IOMMUError) -> IOMMUDomain {
        guard let phb = phb(for: device) else { throw .deviceNotManaged(device.address) }
        if kind == .identity { return CalgaryDomain(kind: kind, table: nil) }
        do {
            let table = try CalgaryTCETable(memory: memory, pageAllocator: pages,
                                            windowBytes: kind == .blocked ? 32 << 20 : phb.windowBytes)
            return CalgaryDomain(kind: kind, table: table)
        } catch { throw .pageTable(error) }
    }

    /// Points the device's PHB at the domain's table (TAR write, which also
    /// empties the PHB's TCE cache) and enables translation, or disables it
    /// for identity. Every device on the PHB follows: they are one group.
    /// - Throws: ``IOMMUError/hardware(_:)`` for a foreign domain, ``IOMMUError/deviceNotManaged(_:)``.
    public func attach(_ domain: IOMMUDomain, to device: PCIDevice) throws(IOMMUError) {
        guard let phb = phb(for: device) else { throw .deviceNotManaged(device.address) }
        guard let domain = domain as? CalgaryDomain else { throw .hardware("\(domain) is not a Calgary domain") }
        let previous = phb.attachment.withLock { attachment -> CalgaryDomain? in
            attachment.devices.insert(device.address)
            let previous = attachment.domain
            guard previous !== domain else { return nil }
            if let table = domain.table {
                phb.writeTableAddress(table.tableAddressRegister)
                phb.setTranslation(enabled: true)
            } else {
                phb.setTranslation(enabled: false)
                phb.writeTableAddress(0)
            }
            attachment.domain = domain
            domain.phbs.withLock { $0[ObjectIdentifier(phb)] = phb }
            return previous
        }
        _ = previous?.phbs.withLock { $0.removeValue(forKey: ObjectIdentifier(phb)) }
    }

    /// When the last device of a PHB goes, translation is disabled and the
    /// TAR cleared (Linux's teardown order), so the chip never reads a table
    /// that is about to be freed.
    public func release(_ device: PCIDevice) {
        guard let phb = phb(for: device) else { return }
        let previous = phb.attachment.withLock { attachment -> CalgaryDomain? in
            attachment.devices.remove(device.address)
            guard attachment.devices.isEmpty else { return nil }
            phb.setTranslation(enabled: false)
            phb.writeTableAddress(0)
            defer { attachment.domain = nil }
            return attachment.domain
        }
        _ = previous?.phbs.withLock { $0.removeValue(forKey: ObjectIdentifier(phb)) }
    }

    /// The error handler (Linux polls the channel status from a watchdog):
    /// read every logged error, hand it to the core, clear it and reset the
    /// PHB's channel status.
    func drainErrors(of unit: CalgaryUnit) {
        let faultSink = sink.withLock { $0 }
        for slot in 0..<unit.errorLogCapacity {
            let high = unit.readRegister(CalgaryRegister.errorLogBase + slot * 16 + 8)
            guard high >> 63 == 1 else { continue }
            let low = unit.readRegister(CalgaryRegister.errorLogBase + slot * 16)
            if let record = CalgaryErrorRecord(low: low, high: high) {
                if Int(record.phb) < CalgaryRegister.phbCount {
                    unit.writeRegister(CalgaryRegister.channelStatus(phb: Int(record.phb)), 0)
                }
                faultSink?.deliver(IOMMUFault(
                    requester: PCIAddress(segment: 0, requesterID: record.requester), address: record.address,
                    access: record.isWrite ? .write : .read, reason: record.kind.generic,
                    hardwareReason: "Calgary PHB \(record.phb): \(record.kind)", unit: unit.name))
            }
            unit.writeRegister(CalgaryRegister.errorLogBase + slot * 16 + 8, 1 << 63)
        }
        unit.writeRegister(CalgaryRegister.errorLogStatus, CalgaryErrorLogStatus.overflowed)
    }
}
