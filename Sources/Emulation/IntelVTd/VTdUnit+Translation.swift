extension VTdUnit {
    /// Translates one device access as the hardware does: context entry (from
    /// the context cache or the root and context tables), then the IOTLB, then
    /// a walk of the second-level table. A refused access is recorded in the
    /// fault log and touches no memory.
    public func translate(_ address: IOVirtualAddress, requester: PCIAddress, access: BusAccess) -> TranslationOutcome {
        // The outcome and whether to raise the fault event; returned rather than captured, since a
        // variable captured by the nested `refuse` costs a dynamic exclusivity check per access.
        let (outcome, interrupt): (TranslationOutcome, Bool) = state.withLock { state in
            state.statistics.translations += 1
            guard state.globalStatus & VTdGlobal.translationEnable != 0 else {
                return (.translated(Translation(physical: PhysicalAddress(address.value),
                                                contiguousBytes: PageSize.size4K - (address.value & 0xFFF), cached: false)), false)
            }
            let context = context(for: requester.requesterID, &state)
            func refuse(_ reason: VTdFaultReasonCode, as generic: DMAFaultReason? = nil) -> (TranslationOutcome, Bool) {
                let record = VTdFaultRecord(sourceID: requester.requesterID, pageAddress: address.value & ~0xFFF,
                                            access: access == .read ? .read : .write, reason: reason)
                return (.faulted(generic ?? reason.generic), recordFault(record, suppressed: context.faultProcessingDisabled, &state))
            }
            if let invalid = context.invalid { return refuse(invalid) }
            if context.translationType == VTdTranslationType.passThrough.rawValue {
                return (.translated(Translation(physical: PhysicalAddress(address.value),
                                                contiguousBytes: PageSize.size4K - (address.value & 0xFFF), cached: true)), false)
            }
            let widthBits = 12 + 9 * context.levels
            guard address.value >> widthBits == 0 else { return refuse(.beyondAddressWidth) }

            let needed = access.requiredPermission
            if let hit = state.iotlb.lookup(domain: context.domain, address: address.value) {
                state.statistics.iotlbHits += 1
                guard hit.permissions.contains(needed) else {
                    return refuse(access == .read ? .readNotPermitted : .writeNotPermitted)
                }
                let offset = address.value - hit.pageBase
                return (.translated(Translation(physical: PhysicalAddress(hit.physicalBase + offset),
                                                contiguousBytes: (1 << UInt64(hit.pageShift)) - offset, cached: true)), false)
            }
            state.statistics.iotlbMisses += 1
            state.statistics.pageWalks += 1
            switch walk(address.value, root: context.tableRoot, levels: context.levels) {
            case .failure(.readNotPermitted):
                // A non-present entry is recorded as a permission fault (R = W = 0), as the hardware does.
                return refuse(access == .write ? .writeNotPermitted : .readNotPermitted, as: .notPresent)
            case let .failure(reason):
                return refuse(reason)
            case let .success(leaf):
                state.iotlb.insert(domain: context.domain, pageBase: (address.value >> leaf.shift) << leaf.shift,
                                   pageShift: UInt8(leaf.shift), physicalBase: leaf.physicalBase,
                                   permissions: leaf.permissions)
                guard leaf.permissions.contains(needed) else {
                    return refuse(access == .read ? .readNotPermitted : .writeNotPermitted)
                }
                let offset = address.value & ((1 << UInt64(leaf.shift)) - 1)
                return (.translated(Translation(physical: PhysicalAddress(leaf.physicalBase + offset),
                                                contiguousBytes: (1 << UInt64(leaf.shift)) - offset, cached: false)), false)
            }
        }
        if interrupt { raiseFaultInterrupt() }
        return outcome
    }

    struct Leaf {
        var physicalBase: UInt64
        var shift: Int
        var permissions: AccessPermissions
    }

    /// Walks a second-level table. Permissions are the intersection of every
    /// level's R/W bits; a level with neither is not present.
    func walk(_ address: UInt64, root: UInt64, levels: Int) -> Result<Leaf, VTdFaultReasonCode> {
        var table = root
        var permissions = AccessPermissions.readWrite
        let reservedAddressBits = ~(VTdPTE.addressMask & ((1 << UInt64(configuration.hostAddressBits)) - 1)) & ~0xFFF
        for level in stride(from: levels, through: 1, by: -1) {
            let shift = 12 + 9 * (level - 1)
            let index = (address >> UInt64(shift)) & 0x1FF
            guard let entry = try? memory.load64(PhysicalAddress(table + index * 8)) else { return .failure(.invalidNextTable) }
            guard entry & (VTdPTE.read | VTdPTE.write) != 0 else { return .failure(.readNotPermitted) }
            guard entry & reservedAddressBits == 0 else { return .failure(.reservedBitsInEntry) }
            permissions.formIntersection(AccessPermissions(rawValue: UInt8(entry & 3)))
            let next = entry & VTdPTE.addressMask
            if level == 1 { return .success(Leaf(physicalBase: next, shift: 12, permissions: permissions)) }
            if entry & VTdPTE.pageSize != 0 {
                let allowed = (level == 2 && configuration.supports2MPages) || (level == 3 && configuration.supports1GPages)
                guard allowed, next & ((1 << UInt64(shift)) - 1) == 0 else { return .failure(.reservedBitsInEntry) }
                return .success(Leaf(physicalBase: next, shift: shift, permissions: permissions))
            }
            guard next < memory.size else { return .failure(.invalidNextTable) }
            table = next
        }
        return .failure(.invalidNextTable)
    }

    /// The context entry for a source ID, from the context cache or the tables.
    func context(for sourceID: UInt16, _ state: inout State) -> CachedContext {
        if state.recentSource == Int32(sourceID) { return state.recentContext }
        if let cached = state.contexts[sourceID] {
            state.recentSource = Int32(sourceID)
            state.recentContext = cached
            return cached
        }
        state.statistics.contextCacheMisses += 1
        let decoded = readContext(sourceID, rootTable: state.activeRootTable)
        if decoded.invalid == nil || decoded.present {
            state.contexts[sourceID] = decoded
            state.recentSource = Int32(sourceID)
            state.recentContext = decoded
        }
        return decoded
    }

    private func readContext(_ sourceID: UInt16, rootTable: UInt64) -> CachedContext {
        var context = CachedContext(present: false, faultProcessingDisabled: false, translationType: 0, tableRoot: 0,
                                    levels: 0, domain: 0, invalid: nil)
        let bus = UInt64(sourceID >> 8), devfn = UInt64(sourceID & 0xFF)
        guard let root = try? memory.load64(PhysicalAddress(rootTable + bus * 16)), root & 1 == 1 else {
            context.invalid = .rootNotPresent
            return context
        }
        let entryAddress = (root & VTdPTE.addressMask) + devfn * 16
        guard let low = try? memory.load64(PhysicalAddress(entryAddress)),
              let high = try? memory.load64(PhysicalAddress(entryAddress + 8)) else {
            context.invalid = .invalidNextTable
            return context
        }
        guard low & 1 == 1 else {
            context.invalid = .contextNotPresent
            return context
        }
        context.present = true
        context.faultProcessingDisabled = low & 2 != 0
        context.translationType = (low >> 2) & 3
        context.tableRoot = low & VTdPTE.addressMask
        context.domain = UInt32((high >> 8) & 0xFFFF)
        let width = configuration.supportedWidths.first { $0.contextEncoding == high & 7 }
        switch context.translationType {
        case VTdTranslationType.passThrough.rawValue:
            if !configuration.supportsPassThrough { context.invalid = .invalidContext }
        case VTdTranslationType.secondLevelOnly.rawValue, VTdTranslationType.secondLevelWithDeviceTLB.rawValue:
            if let width { context.levels = width.levels } else { context.invalid = .invalidContext }
            if context.tableRoot >= memory.size { context.invalid = .invalidContext }
        default:
            context.invalid = .invalidContext
        }
        return context
    }
}
