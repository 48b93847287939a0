import Emulation
import IOMMUCore

extension AMDViDriver {
    /// Points the device's table entry at `domain` and makes the unit forget
    /// the old entry and the old domain's translations.
    /// Identity: V=1, TV=1, Mode 0 with IR and IW (untranslated, as Linux's
    /// pass-through entries). Blocked: V=1, TV=1, Mode 0 without IR or IW.
    /// Translated: Mode = the table's levels and its root.
    /// - Throws: ``IOMMUError/hardware(_:)`` for a domain of another driver or when the unit does not
    ///   complete the invalidation, ``IOMMUError/deviceNotManaged(_:)``, ``IOMMUError/domainDoesNotTranslate(_:)``.
    public func attach(_ domain: IOMMUDomain, to device: PCIDevice) throws(IOMMUError) {
        guard let domain = domain as? AMDViDomain else { throw .hardware("not an AMD-Vi domain: \(domain)") }
        guard let scope = scope(for: device), let state = hardware[ObjectIdentifier(scope.unit)] else {
            throw .deviceNotManaged(device.address)
        }
        var first = AMDViDTE.valid | AMDViDTE.translationValid
        var second = UInt64(domain.domainID)
        switch domain.kind {
        case .blocked:
            break
        case .identity:
            first |= AMDViDTE.readPermission | AMDViDTE.writePermission
        default:
            guard let table = domain.table else { throw .domainDoesNotTranslate(domain.kind) }
            first |= UInt64(table.levels) << AMDViDTE.modeShift | table.root.value
                | AMDViDTE.readPermission | AMDViDTE.writePermission
        }
        if let exclusion = state.hardwareExclusion, exclusion.devices != nil, exclusion.applies(to: device) {
            second |= AMDViDTE.exclusion
        }
        let key = "\(scope.unit.name)/\(device.busRequester.requesterID)"
        _ = blockedDevices.withLock { domain.kind == .blocked ? $0.insert(key).inserted : $0.remove(key) != nil }
        try write(first, second, for: device, in: state)
        domain.queues.add(ObjectIdentifier(scope.unit), state.queue)
    }

    public func release(_ device: PCIDevice) {
        guard let scope = scope(for: device), let state = hardware[ObjectIdentifier(scope.unit)] else { return }
        _ = blockedDevices.withLock { $0.insert("\(scope.unit.name)/\(device.busRequester.requesterID)") }
        try? write(AMDViDTE.valid | AMDViDTE.translationValid, 0, for: device, in: state)
    }

    /// Replaces the entry so the unit never sees a half-written one: blocked
    /// first, then the domain word, then the final first word; then the
    /// entry and the previous domain's translations are invalidated.
    private func write(_ first: UInt64, _ second: UInt64, for device: PCIDevice, in state: UnitState) throws(IOMMUError) {
        let deviceID = device.busRequester.requesterID
        let entry = state.deviceTable + UInt64(deviceID) * AMDViDTE.bytes
        do {
            let previousFirst = try memory.load64(entry)
            let previousDomain = UInt16(try memory.load64(entry + 8) & AMDViDTE.domainIDMask)
            try memory.store64(entry, AMDViDTE.valid | AMDViDTE.translationValid)
            try memory.store64(entry + 8, second)
            try memory.store64(entry, first)
            let translated = previousFirst & AMDViDTE.modeMask != 0
            try state.queue.submitAndWait(AMDViCommandQueue.invalidateDeviceTableEntry(deviceID),
                                          translated ? AMDViCommandQueue.invalidateDomain(previousDomain) : nil)
        } catch { throw .hardware("\(state.unit.name): \(error)") }
    }

    /// The event interrupt handler: read every entry between head and tail
    /// from the log in memory, hand faults to the core, move the head; after
    /// an overflow clear the flag and restart the log. Faults are delivered
    /// after the log is released, so a handler that makes the device fault
    /// again does not wait on itself.
    func drainEvents(of unit: AMDViUnit) {
        guard let state = hardware[ObjectIdentifier(unit)] else { return }
        let faults = state.draining.withLock { _ -> [IOMMUFault] in
            let segment = units.first { $0.unit === unit }?.segment ?? 0
            var faults: [IOMMUFault] = []
            var head = unit.readRegister(AMDViRegister.eventLogHead)
            let tail = unit.readRegister(AMDViRegister.eventLogTail)
            while head != tail {
                let slot = state.eventLog + head
                if let low = try? memory.load64(slot), let high = try? memory.load64(slot + 8),
                   let event = AMDViEvent(low: low, high: high) {
                    faults.append(fault(from: event, unit: unit, segment: segment))
                }
                head = (head + 16) % state.eventLogBytes
            }
            unit.writeRegister(AMDViRegister.eventLogHead, head)
            let status = unit.readRegister(AMDViRegister.status)
            unit.writeRegister(AMDViRegister.status, status & (AMDViStatus.eventOverflow | AMDViStatus.eventLogInterrupt))
            if status & AMDViStatus.eventOverflow != 0 {
                let control = unit.readRegister(AMDViRegister.control)
                unit.writeRegister(AMDViRegister.control, control & ~AMDViControl.eventLogEnable)
                unit.writeRegister(AMDViRegister.control, control | AMDViControl.eventLogEnable)
            }
            return faults
        }
        guard let faultSink = sinkForDelivery else { return }
        for fault in faults { faultSink.deliver(fault) }
    }

    private func fault(from event: AMDViEvent, unit: AMDViUnit, segment: UInt16) -> IOMMUFault {
        let reason: DMAFaultReason
        let name: String
        switch event.code {
        case .ioPageFault:
            name = "IO_PAGE_FAULT"
            if event.flags.contains(.reservedBits) {
                reason = .invalidTable
            } else if event.flags.contains(.permission) {
                let key = "\(unit.name)/\(event.deviceID)"
                reason = blockedDevices.withLock { $0.contains(key) } ? .blocked : .permissionDenied
            } else {
                reason = .notPresent
            }
        case .illegalDeviceTableEntry:
            name = "ILLEGAL_DEV_TABLE_ENTRY"
            reason = .invalidTable
        case .illegalCommand:
            name = "ILLEGAL_COMMAND_ERROR"
            reason = .invalidTable
        }
        return IOMMUFault(requester: PCIAddress(segment: segment, requesterID: event.deviceID), address: event.address,
                          access: event.flags.contains(.write) ? .write : .read, reason: reason,
                          hardwareReason: "AMD-Vi \(name) domain \(event.domainID) flags \(hex(UInt64(event.flags.rawValue)))",
                          unit: unit.name)
    }
}
