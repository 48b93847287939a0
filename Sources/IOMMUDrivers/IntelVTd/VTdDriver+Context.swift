import Emulation
import IOMMUCore

extension VTdDriver {
    /// Points the device's context entry at `domain` and makes the unit
    /// forget the old entry and the old domain's translations.
    public func attach(_ domain: IOMMUDomain, to device: PCIDevice) throws(IOMMUError) {
        guard let domain = domain as? VTdDomain else { throw .hardware("not a VT-d domain: \(domain)") }
        guard let scope = scope(for: device), let state = hardware[ObjectIdentifier(scope.unit)] else {
            throw .deviceNotManaged(device.address)
        }
        let requester = device.busRequester
        var low: UInt64 = 0, high: UInt64 = 0
        switch domain.kind {
        case .blocked:
            break // not present: every access faults with "context not present"
        case .identity:
            low = 1 | VTdTranslationType.passThrough.rawValue << 2
            high = VTdAddressWidth.bits48.contextEncoding | UInt64(domain.domainID) << 8
        default:
            guard let table = domain.table, let width = VTdAddressWidth(levels: table.levels) else {
                throw .domainDoesNotTranslate(domain.kind)
            }
            low = 1 | VTdTranslationType.secondLevelOnly.rawValue << 2 | table.root.value
            high = width.contextEncoding | UInt64(domain.domainID) << 8
        }
        do {
            let entry = try contextEntry(for: requester, in: state)
            let previousHigh = try memory.load64(entry + 8)
            let previousLow = try memory.load64(entry)
            // Clear present first, then fill in the high word, then set present:
            // the unit never sees a half-written entry.
            try memory.store64(entry, 0)
            try memory.store64(entry + 8, high)
            try memory.store64(entry, low)
            let previousDomain = UInt16((previousHigh >> 8) & 0xFFFF)
            try state.queue.submitAndWait(
                VTdInvalidationQueue.contextDevice(domain: previousDomain, source: requester.requesterID),
                previousLow & 1 == 1 ? VTdInvalidationQueue.iotlbDomain(previousDomain) : nil)
        } catch { throw .hardware("\(scope.unit.name): \(error)") }
        domain.units.add(ObjectIdentifier(scope.unit), state.queue)
    }

    public func release(_ device: PCIDevice) {
        guard let scope = scope(for: device), let state = hardware[ObjectIdentifier(scope.unit)] else { return }
        let requester = device.busRequester
        guard let entry = try? contextEntry(for: requester, in: state),
              let previousHigh = try? memory.load64(entry + 8) else { return }
        try? memory.store64(entry, 0)
        try? memory.store64(entry + 8, 0)
        let domainID = UInt16((previousHigh >> 8) & 0xFFFF)
        try? state.queue.submitAndWait(VTdInvalidationQueue.contextDevice(domain: domainID, source: requester.requesterID),
                                       VTdInvalidationQueue.iotlbDomain(domainID))
    }

    /// The address of the context entry for `requester`, creating its bus's
    /// context table (and the root entry pointing at it) on first use.
    func contextEntry(for requester: PCIAddress, in state: UnitState) throws -> PhysicalAddress {
        let bus = requester.bus
        let table = try state.contextTables.withLock { (tables) throws -> PhysicalAddress in
            if let table = tables[bus] { return table }
            let table = try pages.allocate()
            try memory.store64(state.rootTable + UInt64(bus) * 16 + 8, 0)
            try memory.store64(state.rootTable + UInt64(bus) * 16, table.value | 1)
            tables[bus] = table
            return table
        }
        return table + UInt64(requester.requesterID & 0xFF) * 16
    }

    /// The fault-event interrupt handler: read every pending fault record,
    /// hand it to the core, clear it, then clear the overflow flag.
    func drainFaults(of unit: VTdUnit) {
        let capability = unit.readRegister(VTdRegister.capability)
        let records = Int((capability >> 40) & 0xFF) + 1
        let base = Int((capability >> 24) & 0x3FF) * 16
        let faultSink = sinkForDelivery
        for slot in 0..<records {
            let high = unit.readRegister(base + slot * 16 + 8)
            guard high >> 63 == 1 else { continue }
            let low = unit.readRegister(base + slot * 16)
            if let record = VTdFaultRecord(low: low, high: high) {
                faultSink?.deliver(IOMMUFault(
                    requester: PCIAddress(segment: 0, requesterID: record.sourceID), address: record.pageAddress,
                    access: record.access == .read ? .read : .write, reason: record.reason.generic,
                    hardwareReason: "VT-d reason \(hex(UInt64(record.reason.rawValue))) \(record.reason)", unit: unit.name))
            }
            unit.writeRegister(base + slot * 16 + 8, 1 << 63)
        }
        unit.writeRegister(VTdRegister.faultStatus, UInt64(VTdFaultStatus.primaryFaultOverflow))
    }
}
