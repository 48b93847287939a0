extension ARMSMMUUnit {
    /// Why a stream's configuration could not be used: the event to record
    /// and the address to put in it (the input address, or for fetch aborts
    /// the address of the structure that could not be read).
    struct ConfigurationFault: Error {
        var type: ARMSMMUEventType
        var address: UInt64?
    }

    /// The configuration of `streamID`, from the configuration cache or the
    /// stream table and context descriptor. Only usable configurations are cached.
    func streamConfig(for streamID: UInt32, _ state: inout State) -> Result<StreamConfig, ConfigurationFault> {
        if let cached = state.configs[streamID] { return .success(cached) }
        state.statistics.configCacheMisses += 1
        let decoded = readStreamConfig(streamID, state)
        if case let .success(config) = decoded { state.configs[streamID] = config }
        return decoded
    }

    private func readStreamConfig(_ streamID: UInt32, _ state: State) -> Result<StreamConfig, ConfigurationFault> {
        let tableConfig = state.streamTableConfig
        let log2Size = min(tableConfig & ARMSMMUStreamTable.log2SizeMask, UInt64(configuration.clampedStreamIDBits))
        guard (tableConfig >> ARMSMMUStreamTable.formatShift) & 3 == ARMSMMUStreamTable.linearFormat,
              UInt64(streamID) >> log2Size == 0 else {
            return .failure(ConfigurationFault(type: .badStreamID))
        }
        let entry = (state.streamTableBase & ARMSMMUStreamTable.baseAddressMask) + UInt64(streamID) * ARMSMMUStreamTable.entryBytes
        guard let word0 = try? memory.load64(PhysicalAddress(entry)) else {
            return .failure(ConfigurationFault(type: .steFetch, address: entry))
        }
        guard word0 & ARMSMMUSTE.valid != 0,
              let config = ARMSMMUSTE.Config(rawValue: (word0 & ARMSMMUSTE.configMask) >> ARMSMMUSTE.configShift) else {
            return .failure(ConfigurationFault(type: .badSTE))
        }
        switch config {
        case .abort: return .success(.abort)
        case .bypass: return .success(.bypass)
        case .stage2, .nested: return .failure(ConfigurationFault(type: .badSTE)) // IDR0.S2P = 0: illegal here
        case .stage1: break
        }
        // One CD per stream: no substreams (IDR1.SSIDSIZE = 0), so S1Fmt and S1CDMax must be 0.
        guard (word0 >> ARMSMMUSTE.stage1FormatShift) & 3 == 0, word0 >> ARMSMMUSTE.contextCountShift == 0 else {
            return .failure(ConfigurationFault(type: .badSTE))
        }
        return readContextDescriptor(at: word0 & ARMSMMUSTE.contextPointerMask).map(StreamConfig.translate)
    }

    private func readContextDescriptor(at address: UInt64) -> Result<Context, ConfigurationFault> {
        guard let word0 = try? memory.load64(PhysicalAddress(address)),
              let word1 = try? memory.load64(PhysicalAddress(address + 8)) else {
            return .failure(ConfigurationFault(type: .cdFetch, address: address))
        }
        let t0sz = word0 & ARMSMMUCD.t0szMask
        guard word0 & ARMSMMUCD.valid != 0, word0 & ARMSMMUCD.aarch64 != 0,
              let granule = ARMTranslationGranule(tg0Encoding: (word0 >> ARMSMMUCD.tg0Shift) & 3),
              configuration.granules.contains(granule), ARMSMMUCD.t0szRange.contains(t0sz) else {
            return .failure(ConfigurationFault(type: .badCD))
        }
        let outputBits = min(ARMSMMUIdentification.addressSize(encoding: (word0 >> ARMSMMUCD.ipsShift) & 7),
                             configuration.effectiveOutputBits)
        let tableBase = word1 & ARMSMMUCD.ttbMask
        guard tableBase >> UInt64(outputBits) == 0 else { return .failure(ConfigurationFault(type: .badCD)) }
        return .success(Context(tableBase: tableBase, granule: granule, inputBits: 64 - Int(t0sz), outputBits: outputBits,
                                asid: UInt16(word0 >> ARMSMMUCD.asidShift),
                                walksDisabled: word0 & ARMSMMUCD.epd0 != 0,
                                recordsFaults: word0 & ARMSMMUCD.recordFaults != 0,
                                accessFlagFaultsDisabled: word0 & ARMSMMUCD.accessFlagFaultDisable != 0))
    }
}
