extension AMDViUnit {
    /// Executes commands from head to tail, as the hardware does while the
    /// command buffer runs. An unknown command logs ILLEGAL_COMMAND_ERROR and
    /// stops the buffer with the head on it, until the driver re-enables it.
    func processCommands(_ state: inout State) {
        guard state.control & AMDViControl.commandBufferEnable != 0,
              state.status & AMDViStatus.commandBufferRunning != 0 else { return }
        while state.commands.head != state.commands.tail {
            let slot = PhysicalAddress(state.commands.base + state.commands.head)
            guard let first = try? memory.load64(slot), let second = try? memory.load64(slot + 8) else {
                stopCommands(at: slot.value, &state)
                return
            }
            switch first >> AMDViCommand.opcodeShift {
            case AMDViCommand.completionWait: completionWait(first, second, &state)
            case AMDViCommand.invalidateDeviceTableEntry:
                state.statistics.deviceTableInvalidations += 1
                state.deviceCache[UInt16(first & 0xFFFF)] = nil
            case AMDViCommand.invalidateIOMMUPages:
                invalidatePages(domain: UInt16((first >> 32) & 0xFFFF), addressField: second, &state)
            case AMDViCommand.invalidateIOMMUAll where configuration.supportsInvalidateAll:
                state.statistics.globalInvalidations += 1
                state.statistics.iotlbEntriesDropped += UInt64(state.iotlb.invalidateAll())
                state.deviceCache.removeAll(keepingCapacity: true)
            default:
                stopCommands(at: slot.value, &state)
                return
            }
            state.statistics.commandsProcessed += 1
            state.commands.head = (state.commands.head + 16) % state.commands.bytes
        }
    }

    private func stopCommands(at address: UInt64, _ state: inout State) {
        state.statistics.illegalCommands += 1
        state.status &= ~AMDViStatus.commandBufferRunning
        logEvent(AMDViEvent(code: .illegalCommand, deviceID: 0, flags: [], address: address), &state)
    }

    private func completionWait(_ first: UInt64, _ second: UInt64, _ state: inout State) {
        state.statistics.completionWaits += 1
        if first & AMDViCommand.waitStore != 0 {
            // Everything before this command is complete: the store tells the driver so.
            try? memory.store64(PhysicalAddress(first & AMDViCommand.waitAddressMask), second)
        }
        if first & AMDViCommand.waitInterrupt != 0 { state.status |= AMDViStatus.completionWaitInterrupt }
    }

    /// INVALIDATE_IOMMU_PAGES: without S one 4 KiB page; with S the lowest
    /// clear address bit at or above 12 gives the naturally aligned range
    /// (bit n clear: 2^(n+1) bytes), and the all-ones address the whole domain.
    private func invalidatePages(domain: UInt16, addressField: UInt64, _ state: inout State) {
        let address = addressField & ~0xFFF
        let dropped: Int
        if addressField & AMDViCommand.sizeBit == 0 {
            state.statistics.pageInvalidations += 1
            dropped = state.iotlb.invalidate(domain: UInt32(domain), first: address, last: address + 0xFFF)
        } else {
            let ones = (~(address >> 12)).trailingZeroBitCount
            let shift = 12 + ones + 1
            if shift >= 52 {
                state.statistics.domainInvalidations += 1
                dropped = state.iotlb.invalidate(domain: UInt32(domain))
            } else {
                state.statistics.pageInvalidations += 1
                let span: UInt64 = 1 << UInt64(shift)
                let first = address & ~(span - 1)
                dropped = state.iotlb.invalidate(domain: UInt32(domain), first: first, last: first + span - 1)
            }
        }
        state.statistics.iotlbEntriesDropped += UInt64(dropped)
    }
}
