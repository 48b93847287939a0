extension ARMSMMUUnit {
    /// Executes commands from CONS up to PROD, as the hardware does when the
    /// driver moves PROD. An unknown command or an unreadable slot stops the
    /// queue with CONS on it, CMDQ_CONS.ERR set and GERROR.CMDQ_ERR toggled,
    /// until the driver acknowledges the error through GERRORN.
    func processCommandQueue(_ state: inout State) {
        guard state.control & ARMSMMUControl.commandQueueEnable != 0, !state.commandQueueStopped else { return }
        let log2 = commandLog2(state)
        let mask = Self.indexMask(log2: log2)
        let base = state.commandBase & ARMSMMUQueue.baseAddressMask
        while state.commandConsumer != state.commandProducer {
            let slot = PhysicalAddress(base + (state.commandConsumer & ((1 << UInt64(log2)) - 1)) * ARMSMMUQueue.commandBytes)
            guard let word0 = try? memory.load64(slot), let word1 = try? memory.load64(slot + 8) else {
                stopCommandQueue(.abort, &state)
                return
            }
            guard execute(word0, word1, &state) else {
                stopCommandQueue(.illegal, &state)
                return
            }
            state.statistics.commandsExecuted += 1
            state.commandConsumer = (state.commandConsumer + 1) & mask
        }
    }

    private func stopCommandQueue(_ error: ARMSMMUCommandError, _ state: inout State) {
        state.commandError = error
        activateGlobalError(ARMSMMUGlobalError.commandQueueError, &state)
        state.statistics.commandErrors += 1
    }

    /// An error is active while GERROR and GERRORN differ in its bit.
    private func activateGlobalError(_ bit: UInt64, _ state: inout State) {
        state.globalError = (state.globalError & ~bit) | (~state.globalErrorAck & bit)
    }

    /// Returns false for a command this model does not know.
    private func execute(_ word0: UInt64, _ word1: UInt64, _ state: inout State) -> Bool {
        let streamID = UInt32(truncatingIfNeeded: word0 >> ARMSMMUCommand.streamIDShift)
        let asid = UInt32((word0 >> ARMSMMUCommand.asidShift) & 0xFFFF)
        switch word0 & 0xFF {
        case ARMSMMUCommand.prefetchConfig:
            break
        case ARMSMMUCommand.configInvalidateSTE, ARMSMMUCommand.configInvalidateCD:
            state.statistics.configInvalidations += 1
            state.configs[streamID] = nil
        case ARMSMMUCommand.configInvalidateSTERange:
            state.statistics.configInvalidations += 1
            let range = word1 & ARMSMMUCommand.rangeMask
            if range == 31 {
                state.configs.removeAll(keepingCapacity: true)
            } else {
                let span = UInt64(1) << (range + 1)
                let first = UInt64(streamID) & ~(span - 1)
                state.configs = state.configs.filter { UInt64($0.key) < first || UInt64($0.key) >= first + span }
            }
        case ARMSMMUCommand.configInvalidateCDAll:
            state.statistics.configInvalidations += 1
            state.configs.removeAll(keepingCapacity: true)
        case ARMSMMUCommand.tlbiNonHypAll, ARMSMMUCommand.tlbiNonSecureNonHypAll:
            state.statistics.globalInvalidations += 1
            state.statistics.tlbEntriesDropped += UInt64(state.tlb.invalidateAll())
        case ARMSMMUCommand.tlbiNonHypASID:
            state.statistics.asidInvalidations += 1
            state.statistics.tlbEntriesDropped += UInt64(state.tlb.invalidate(domain: asid))
        case ARMSMMUCommand.tlbiNonHypVA:
            state.statistics.addressInvalidations += 1
            let address = word1 & ARMSMMUCommand.addressMask
            var last = address
            // TG != 0 makes it a range: (NUM + 1) * 2^SCALE granules from Address (SMMUv3.2 RIL).
            if configuration.supportsRangeInvalidation,
               let granule = ARMTranslationGranule(rangeInvalidationEncoding: (word1 >> ARMSMMUCommand.granuleShift) & 3) {
                let number = (word0 >> ARMSMMUCommand.numberShift) & 0x1F
                let scale = (word0 >> ARMSMMUCommand.scaleShift) & 0x1F
                let span = (number + 1) << (scale + UInt64(granule.shift))
                last = address &+ (span - 1) < address ? .max : address + (span - 1)
            }
            state.statistics.tlbEntriesDropped += UInt64(state.tlb.invalidate(domain: asid, first: address, last: last))
        case ARMSMMUCommand.sync:
            state.statistics.syncs += 1
            // Everything before the sync has completed (the model is synchronous); signal it.
            if (word0 >> ARMSMMUCommand.syncSignalShift) & 3 == ARMSMMUCommand.syncSignalIRQ,
               word1 & ARMSMMUCommand.syncAddressMask != 0,
               let pointer = try? memory.pointer(to: PhysicalAddress(word1 & ARMSMMUCommand.syncAddressMask), count: 4) {
                pointer.storeBytes(of: UInt32(truncatingIfNeeded: word0 >> ARMSMMUCommand.syncDataShift).littleEndian,
                                   as: UInt32.self)
            }
        default:
            return false
        }
        return true
    }

    /// Appends an event record at PROD. A full queue drops the event and
    /// toggles PROD.OVFLG unless an overflow is already unacknowledged.
    /// Returns whether the event interrupt must be raised.
    func recordEvent(_ event: ARMSMMUEvent, _ state: inout State) -> Bool {
        guard state.control & ARMSMMUControl.eventQueueEnable != 0 else {
            state.statistics.eventsDiscarded += 1
            return false
        }
        let interruptEnabled = state.interruptControl & ARMSMMUInterruptControl.eventQueueEnable != 0
        let log2 = UInt64(eventLog2(state))
        let indexBits = (UInt64(1) << log2) - 1
        let producer = state.eventProducer & ~ARMSMMUQueue.overflowFlag
        let consumer = state.eventConsumer & ~ARMSMMUQueue.overflowFlag
        if producer & indexBits == consumer & indexBits, producer >> log2 != consumer >> log2 {
            state.statistics.eventsLost += 1
            let flag = state.eventProducer & ARMSMMUQueue.overflowFlag
            if flag == state.eventConsumer & ARMSMMUQueue.overflowFlag { state.eventProducer ^= ARMSMMUQueue.overflowFlag }
            return interruptEnabled
        }
        let slot = PhysicalAddress((state.eventBase & ARMSMMUQueue.baseAddressMask) + (producer & indexBits) * ARMSMMUQueue.eventBytes)
        let words = event.words
        do {
            try memory.store64(slot, words.0)
            try memory.store64(slot + 8, words.1)
            try memory.store64(slot + 16, words.2)
            try memory.store64(slot + 24, words.3)
        } catch {
            // The queue's memory is unusable: the hardware reports an abort and stops queueing.
            activateGlobalError(ARMSMMUGlobalError.eventQueueAbort, &state)
            state.control &= ~ARMSMMUControl.eventQueueEnable
            state.statistics.eventsLost += 1
            return false
        }
        state.eventProducer = (producer + 1) & Self.indexMask(log2: Int(log2))
            | (state.eventProducer & ARMSMMUQueue.overflowFlag)
        state.statistics.eventsRecorded += 1
        return interruptEnabled
    }
}
