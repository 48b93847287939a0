extension CalgaryUnit {
    /// Translates one device access as the chip does: the PHB that decodes
    /// the requester's bus, then its TCE enable bit (clear: untranslated),
    /// the window check, the TCE cache, and finally the TCE in memory. A
    /// refused access moves no data, latches the PHB's channel status and is
    /// logged.
    public func translate(_ address: IOVirtualAddress, requester: PCIAddress, access: BusAccess) -> TranslationOutcome {
        // The outcome and whether to raise the interrupt, returned rather than captured: a variable
        // captured by the nested `refuse` costs a dynamic exclusivity check on every access.
        let (outcome, interrupt): (TranslationOutcome, Bool) = state.withLock { state in
            state.statistics.translations += 1
            let pageRest = PageSize.size4K - (address.value & 0xFFF)
            let phb = phb(for: requester.bus)
            func refuse(_ kind: CalgaryErrorKind) -> (TranslationOutcome, Bool) {
                var raise = false
                if let phb { state.channelStatus[phb] = 0x8000_0000 | UInt32(kind.rawValue) << 16 }
                let wasPending = state.errors.pending
                let record = CalgaryErrorRecord(address: address.value, requester: requester.requesterID,
                                                phb: phb.map { UInt8($0) } ?? 0xFF, isWrite: access == .write, kind: kind)
                if state.errors.record(record) {
                    state.statistics.errorsRecorded += 1
                    raise = !wasPending
                } else {
                    state.statistics.errorsDropped += 1
                }
                return (.faulted(kind.generic), raise)
            }
            guard let phb else { return refuse(.unknownBus) }
            guard state.phbConfiguration[phb] & CalgaryPHBConfiguration.tceEnable != 0 else {
                state.statistics.bypassed += 1
                return (.translated(Translation(physical: PhysicalAddress(address.value), contiguousBytes: pageRest,
                                                cached: true)), false)
            }
            let tar = state.tableAddress[phb]
            guard address.value < CalgaryTableAddress.windowBytes(sizeCode: tar & CalgaryTableAddress.sizeMask) else {
                return refuse(.outsideWindow)
            }
            let needed = access.requiredPermission
            if let hit = state.cache.lookup(domain: UInt32(phb), address: address.value) {
                state.statistics.cacheHits += 1
                guard hit.permissions.contains(needed) else { return refuse(.permissionDenied) }
                return (.translated(Translation(physical: PhysicalAddress(hit.physicalBase + (address.value & 0xFFF)),
                                                contiguousBytes: pageRest, cached: true)), false)
            }
            state.statistics.cacheMisses += 1
            state.statistics.tableReads += 1
            let slot = PhysicalAddress((tar & CalgaryTableAddress.baseMask) + (address.value >> 12) * 8)
            guard let entry = try? memory.load64(slot) else { return refuse(.tableUnreadable) }
            let permissions = CalgaryTCE.permissions(of: entry)
            guard !permissions.isEmpty else { return refuse(.entryNotValid) }
            let physical = entry & CalgaryTCE.pageMask
            state.cache.insert(domain: UInt32(phb), pageBase: address.value & ~0xFFF, pageShift: 12,
                               physicalBase: physical, permissions: permissions)
            guard permissions.contains(needed) else { return refuse(.permissionDenied) }
            return (.translated(Translation(physical: PhysicalAddress(physical + (address.value & 0xFFF)),
                                            contiguousBytes: pageRest, cached: false)), false)
        }
        if interrupt { raiseErrorInterrupt() }
        return outcome
    }
}
