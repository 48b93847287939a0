extension ARMSMMUUnit {
    /// Translates one device access as the hardware does: the STE and CD
    /// (from the configuration cache or memory), then the TLB, then a walk of
    /// the stage-1 tables. A refused access touches no memory and, unless its
    /// STE aborts silently or its CD does not record faults, leaves an event.
    public func translate(_ address: IOVirtualAddress, requester: PCIAddress, access: BusAccess) -> TranslationOutcome {
        // The outcome and whether to raise the interrupt, returned rather than captured: a variable
        // captured by the nested `refuse` costs a dynamic exclusivity check on every access.
        let (outcome, interrupt): (TranslationOutcome, Bool) = state.withLock { state in
            state.statistics.translations += 1
            guard state.isEnabled else {
                if state.globalBypass & ARMSMMUGlobalBypass.abort != 0 { return (.faulted(.blocked), false) }
                return (Self.oneToOne(address), false)
            }
            let streamID = UInt32(requester.requesterID)
            func refuse(_ type: ARMSMMUEventType, at recorded: UInt64? = nil, recording: Bool = true,
                        as generic: DMAFaultReason? = nil) -> (TranslationOutcome, Bool) {
                var raise = false
                if recording {
                    let event = ARMSMMUEvent(type: type, streamID: streamID, isRead: access == .read,
                                             address: recorded ?? address.value)
                    raise = recordEvent(event, &state)
                } else {
                    state.statistics.faultsNotRecorded += 1
                }
                return (.faulted(generic ?? type.generic), raise)
            }
            let context: Context
            switch streamConfig(for: streamID, &state) {
            case let .failure(fault): return refuse(fault.type, at: fault.address)
            case .success(.abort):
                state.statistics.faultsNotRecorded += 1
                return (.faulted(.blocked), false)
            case .success(.bypass): return (Self.oneToOne(address), false)
            case let .success(.translate(decoded)): context = decoded
            }
            let recording = context.recordsFaults
            // Outside the TTB0 region (or with TTB0 walks disabled) there is nothing to walk: a translation fault.
            guard address.value >> UInt64(context.inputBits) == 0 else {
                return refuse(.translation, recording: recording, as: .beyondAddressWidth)
            }
            guard !context.walksDisabled else { return refuse(.translation, recording: recording) }

            let needed = access.requiredPermission
            if let hit = state.tlb.lookup(domain: UInt32(context.asid), address: address.value) {
                state.statistics.tlbHits += 1
                guard hit.permissions.contains(needed) else { return refuse(.permission, recording: recording) }
                let offset = address.value - hit.pageBase
                return (.translated(Translation(physical: PhysicalAddress(hit.physicalBase + offset),
                                                contiguousBytes: (1 << UInt64(hit.pageShift)) - offset, cached: true)), false)
            }
            state.statistics.tlbMisses += 1
            state.statistics.pageWalks += 1
            switch walk(address.value, context) {
            case let .failure(type):
                return refuse(type, recording: recording)
            case let .success(leaf):
                state.tlb.insert(domain: UInt32(context.asid), pageBase: (address.value >> leaf.shift) << leaf.shift,
                                 pageShift: UInt8(leaf.shift), physicalBase: leaf.physicalBase, permissions: leaf.permissions)
                guard leaf.permissions.contains(needed) else { return refuse(.permission, recording: recording) }
                let offset = address.value & ((1 << UInt64(leaf.shift)) - 1)
                return (.translated(Translation(physical: PhysicalAddress(leaf.physicalBase + offset),
                                                contiguousBytes: (1 << UInt64(leaf.shift)) - offset, cached: false)), false)
            }
        }
        if interrupt { raiseEventInterrupt() }
        return outcome
    }

    @inline(__always)
    static func oneToOne(_ address: IOVirtualAddress) -> TranslationOutcome {
        .translated(Translation(physical: PhysicalAddress(address.value),
                                contiguousBytes: PageSize.size4K - (address.value & 0xFFF), cached: true))
    }

    struct Leaf {
        var physicalBase: UInt64
        var shift: Int
        var permissions: AccessPermissions
    }

    /// Walks AArch64 stage-1 tables from the CD's start level. Device
    /// accesses are unprivileged, so a leaf needs AP[1]; AP[2] makes it
    /// read-only; a table's APTable bits restrict everything below it.
    func walk(_ address: UInt64, _ context: Context) -> Result<Leaf, ARMSMMUEventType> {
        let granule = context.granule
        let granuleMask = granule.rawValue - 1
        var table = context.tableBase
        var readOnly = false, unprivilegedDenied = false
        for level in granule.startLevel(inputBits: context.inputBits)...3 {
            let shift = granule.shift(atLevel: level)
            let bits = granule.indexBits(atLevel: level, inputBits: context.inputBits)
            let index = (address >> UInt64(shift)) & ((1 << UInt64(bits)) - 1)
            guard let entry = try? memory.load64(PhysicalAddress(table + index * 8)) else {
                return .failure(.walkExternalAbort)
            }
            guard entry & ARMLPAEDescriptor.valid != 0 else { return .failure(.translation) }
            let isTable = entry & ARMLPAEDescriptor.tableOrPage != 0
            // Level 3 needs the page encoding; a block is legal only where the granule has one.
            if level == 3 ? !isTable : (!isTable && !granule.allowsBlock(atLevel: level)) { return .failure(.translation) }
            guard entry & ARMLPAEDescriptor.wideOutputAddressBits == 0 else { return .failure(.addressSize) }
            let output = entry & ARMLPAEDescriptor.outputAddressMask & ~granuleMask
            guard output >> UInt64(context.outputBits) == 0 else { return .failure(.addressSize) }
            if level < 3 && isTable {
                readOnly = readOnly || entry & ARMLPAEDescriptor.tableReadOnly != 0
                unprivilegedDenied = unprivilegedDenied || entry & ARMLPAEDescriptor.tableNoUnprivileged != 0
                table = output
                continue
            }
            guard entry & ARMLPAEDescriptor.accessFlag != 0 || context.accessFlagFaultsDisabled else {
                return .failure(.access)
            }
            var permissions = AccessPermissions.readWrite
            if readOnly || entry & ARMLPAEDescriptor.readOnly != 0 { permissions.remove(.write) }
            if unprivilegedDenied || entry & ARMLPAEDescriptor.unprivileged == 0 { permissions = [] }
            // Address bits below a block's size are RES0 and ignored.
            return .success(Leaf(physicalBase: output & ~((1 << UInt64(shift)) - 1), shift: shift, permissions: permissions))
        }
        return .failure(.translation)
    }
}
