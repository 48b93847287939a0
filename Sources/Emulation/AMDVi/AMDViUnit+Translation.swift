extension AMDViUnit {
    /// Translates one device access as the hardware does: the device table
    /// entry (cached until INVALIDATE_DEVTAB_ENTRY), the exclusion range, the
    /// IOTLB, then a walk of the v1 page tables with level skipping and
    /// next-level-7 pages. A refusal is logged as an event unless the entry
    /// suppresses it.
    public func translate(_ address: IOVirtualAddress, requester: PCIAddress, access: BusAccess) -> TranslationOutcome {
        let (outcome, raise) = state.withLock { state -> (TranslationOutcome, Bool) in
            let outcome = translateLocked(address.value, deviceID: requester.requesterID, access: access, &state)
            defer { state.interruptPending = false }
            return (outcome, state.interruptPending)
        }
        if raise { raiseEventInterrupt() }
        return outcome
    }

    private func translateLocked(_ iova: UInt64, deviceID: UInt16, access: BusAccess, _ state: inout State) -> TranslationOutcome {
        state.statistics.translations += 1
        let untranslated = TranslationOutcome.translated(
            Translation(physical: PhysicalAddress(iova), contiguousBytes: 4096 - (iova & 0xFFF), cached: false))
        guard state.control & AMDViControl.iommuEnable != 0 else {
            state.statistics.passedThrough += 1
            return untranslated
        }
        let write: AMDViEventFlags = access == .write ? .write : []
        guard let entry = deviceEntry(deviceID, &state) else {
            logEvent(AMDViEvent(code: .illegalDeviceTableEntry, deviceID: deviceID, flags: write, address: iova), &state)
            return .faulted(.requesterNotConfigured)
        }
        if isExcluded(iova, entry, state) {
            state.statistics.excluded += 1
            return untranslated
        }
        switch entry.route {
        case .passThrough:
            state.statistics.passedThrough += 1
            return untranslated
        case .illegal:
            logEvent(AMDViEvent(code: .illegalDeviceTableEntry, deviceID: deviceID, domainID: entry.domainID,
                                flags: write.union(.reservedBits), address: iova), &state)
            return .faulted(.invalidTable)
        case .translate:
            break
        }
        if entry.mode == 0 {
            // Translation disabled: the address passes only if IR/IW allow the access.
            guard entry.permissions.contains(access.requiredPermission) else {
                pageFault(entry, deviceID, iova, write.union([.present, .permission]), &state)
                return .faulted(entry.permissions.isEmpty ? .blocked : .permissionDenied)
            }
            state.statistics.passedThrough += 1
            return untranslated
        }
        let domain = UInt32(entry.domainID)
        if let hit = state.iotlb.lookup(domain: domain, address: iova) {
            guard hit.permissions.contains(access.requiredPermission) else {
                pageFault(entry, deviceID, iova, write.union([.present, .permission]), &state)
                return .faulted(.permissionDenied)
            }
            state.statistics.iotlbHits += 1
            let size: UInt64 = 1 << UInt64(hit.pageShift)
            let offset = iova & (size - 1)
            return .translated(Translation(physical: PhysicalAddress(hit.physicalBase | offset),
                                           contiguousBytes: size - offset, cached: true))
        }
        state.statistics.iotlbMisses += 1
        state.statistics.pageWalks += 1
        switch walk(entry, iova: iova) {
        case let .fault(flags, reason):
            pageFault(entry, deviceID, iova, write.union(flags), &state)
            return .faulted(reason)
        case let .page(base, shift, permissions):
            guard permissions.contains(access.requiredPermission) else {
                pageFault(entry, deviceID, iova, write.union([.present, .permission]), &state)
                return .faulted(.permissionDenied)
            }
            let size: UInt64 = 1 << UInt64(shift)
            state.iotlb.insert(domain: domain, pageBase: iova & ~(size - 1), pageShift: UInt8(shift), physicalBase: base,
                               permissions: permissions)
            let offset = iova & (size - 1)
            return .translated(Translation(physical: PhysicalAddress(base | offset), contiguousBytes: size - offset,
                                           cached: false))
        }
    }

    private func isExcluded(_ iova: UInt64, _ entry: CachedDTE, _ state: State) -> Bool {
        guard state.exclusionBase & AMDViExclusion.enable != 0,
              state.exclusionBase & AMDViExclusion.allowAll != 0 || entry.exclusion else { return false }
        let first = state.exclusionBase & AMDViExclusion.addressMask
        return iova >= first && iova <= state.exclusionLimit | 0xFFF
    }

    private func pageFault(_ entry: CachedDTE, _ deviceID: UInt16, _ iova: UInt64, _ flags: AMDViEventFlags,
                           _ state: inout State) {
        guard !entry.suppressEvents else {
            state.statistics.eventsSuppressed += 1
            return
        }
        logEvent(AMDViEvent(code: .ioPageFault, deviceID: deviceID, domainID: entry.domainID, flags: flags, address: iova),
                 &state)
    }

    /// The cached entry for `deviceID`, read from the device table on a miss;
    /// nil when the ID lies beyond the table the size register describes.
    private func deviceEntry(_ deviceID: UInt16, _ state: inout State) -> CachedDTE? {
        if let cached = state.deviceCache[deviceID] { return cached }
        guard UInt64(deviceID) < state.deviceTableEntries else { return nil }
        state.statistics.deviceTableReads += 1
        let address = PhysicalAddress(state.deviceTableBase + UInt64(deviceID) * AMDViDTE.bytes)
        var decoded = CachedDTE(route: .illegal, mode: 0, root: 0, permissions: [], domainID: 0, suppressEvents: false,
                                exclusion: false)
        if let first = try? memory.load64(address), let second = try? memory.load64(address + 8) {
            decoded = decode(first, second)
        }
        state.deviceCache[deviceID] = decoded
        return decoded
    }

    private func decode(_ first: UInt64, _ second: UInt64) -> CachedDTE {
        var entry = CachedDTE(route: .translate, mode: Int((first & AMDViDTE.modeMask) >> AMDViDTE.modeShift),
                              root: first & AMDViDTE.rootMask, permissions: [],
                              domainID: UInt16(second & AMDViDTE.domainIDMask),
                              suppressEvents: second & AMDViDTE.suppressEvents != 0,
                              exclusion: second & AMDViDTE.exclusion != 0)
        if first & AMDViDTE.readPermission != 0 { entry.permissions.insert(.read) }
        if first & AMDViDTE.writePermission != 0 { entry.permissions.insert(.write) }
        if first & AMDViDTE.valid == 0 || first & AMDViDTE.translationValid == 0 {
            entry.route = .passThrough
        } else if first & AMDViDTE.reservedQuadword0 != 0 || entry.mode == 7 || entry.mode > configuration.maximumLevels
                    || (entry.mode > 0 && (entry.root >> UInt64(configuration.physicalAddressBits) != 0
                                           || entry.root >= memory.size)) {
            entry.route = .illegal
        }
        return entry
    }

    enum WalkResult {
        case page(base: UInt64, shift: Int, permissions: AccessPermissions)
        case fault(AMDViEventFlags, DMAFaultReason)
    }

    /// Walks the host page table from the entry's root. Permissions are the
    /// intersection of the entry's and every level's IR/IW.
    func walk(_ entry: CachedDTE, iova: UInt64) -> WalkResult {
        var level = entry.mode
        if level < 6, iova >> UInt64(12 + 9 * level) != 0 { return .fault([], .beyondAddressWidth) }
        var table = entry.root
        var permissions = entry.permissions
        while true {
            let natural = 12 + 9 * (level - 1)
            let index = (iova >> UInt64(natural)) & 0x1FF
            guard let pte = try? memory.load64(PhysicalAddress(table + index * 8)) else {
                return .fault(.reservedBits, .invalidTable)
            }
            guard pte & AMDViPTE.present != 0 else { return .fault([], .notPresent) }
            if pte & AMDViPTE.readPermission == 0 { permissions.remove(.read) }
            if pte & AMDViPTE.writePermission == 0 { permissions.remove(.write) }
            let next = Int((pte & AMDViPTE.nextLevelMask) >> AMDViPTE.nextLevelShift)
            let address = pte & AMDViPTE.addressMask
            switch next {
            case 0:
                return .page(base: address & ~((1 << UInt64(natural)) - 1), shift: natural, permissions: permissions)
            case 7:
                // The run of ones from bit 12 up, ended by a zero at bit n, encodes a 2^(n+1)-byte page.
                let shift = 12 + (~(address >> 12)).trailingZeroBitCount + 1
                guard shift > natural, shift < natural + 9, shift <= 52 else {
                    return .fault([.present, .reservedBits], .invalidTable)
                }
                return .page(base: address & ~((1 << UInt64(shift)) - 1), shift: shift, permissions: permissions)
            case let lower where lower < level:
                if lower < level - 1 {
                    // Skipped levels: their index bits must be zero.
                    let skipped = (iova >> UInt64(12 + 9 * lower)) & ((1 << UInt64(9 * (level - 1 - lower))) - 1)
                    guard skipped == 0 else { return .fault([], .notPresent) }
                }
                table = address
                level = lower
            default:
                return .fault([.present, .reservedBits], .invalidTable)
            }
        }
    }
}
