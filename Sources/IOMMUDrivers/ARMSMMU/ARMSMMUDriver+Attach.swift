import Emulation
import IOMMUCore

extension ARMSMMUDriver {
    /// Points the device's STE at `domain`: abort for a blocked domain, bypass
    /// for identity, stage-1 through the domain's CD otherwise; then makes the
    /// unit forget the old STE.
    /// - Throws: ``IOMMUError/hardware(_:)`` for a domain of another driver or granule, or when the
    ///   stream table or command queue is unusable; ``IOMMUError/deviceNotManaged(_:)``;
    ///   ``IOMMUError/domainDoesNotTranslate(_:)`` for a translating kind without tables.
    public func attach(_ domain: IOMMUDomain, to device: PCIDevice) throws(IOMMUError) {
        guard let domain = domain as? ARMSMMUDomain else { throw .hardware("not an SMMU domain: \(domain)") }
        let state = try unitState(for: device)
        let streamID = UInt32(device.busRequester.requesterID)
        let word0: UInt64
        switch domain.kind {
        case .blocked: word0 = ARMSMMUSTE.word0(config: .abort)
        case .identity: word0 = ARMSMMUSTE.word0(config: .bypass)
        default:
            guard let context = domain.context else { throw .domainDoesNotTranslate(domain.kind) }
            guard context.granule == state.granule else {
                throw .hardware("\(state.unit.name) uses the \(state.granule) granule, the domain \(context.granule)")
            }
            word0 = ARMSMMUSTE.word0(config: .stage1, contextDescriptor: context.descriptor.value)
        }
        do { try writeSTE(streamID, word0: word0, in: state) } catch { throw .hardware("\(state.unit.name): \(error)") }
        domain.use(state)
    }

    /// The device is going away: its STE aborts every access from now on.
    public func release(_ device: PCIDevice) {
        guard let state = try? unitState(for: device) else { return }
        let streamID = UInt32(device.busRequester.requesterID)
        try? writeSTE(streamID, word0: ARMSMMUSTE.word0(config: .abort), in: state)
    }

    /// Writes an STE the way the unit can never see half of it: V clear, the
    /// other words, then word 0 with V; then CMD_CFGI_STE and a sync.
    private func writeSTE(_ streamID: UInt32, word0: UInt64, in state: UnitState) throws(MemoryError) {
        let entry = state.streamTableEntry(streamID)
        try memory.store64(entry, 0)
        // Word 1: table walks inner/outer write-back, inner shareable (S1CIR, S1COR, S1CSH).
        try memory.store64(entry + 8, word0 & ARMSMMUSTE.configMask == ARMSMMUSTE.Config.stage1.rawValue << ARMSMMUSTE.configShift
            ? 1 << 2 | 1 << 4 | 3 << 6 : 0)
        try memory.store64(entry, word0)
        try state.commands.submit { writer throws(MemoryError) in try writer.add(ARMSMMUCommandQueue.invalidateSTE(streamID: streamID)) }
    }
}
