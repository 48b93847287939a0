/// Build-time properties of an emulated Calgary chip.
public struct CalgaryUnitConfiguration: Sendable, Hashable {
    /// The bus range each PHB decodes, by PHB index (at most four); nil for an unused PHB.
    public var phbBuses: [ClosedRange<UInt8>?] = [0...0, nil, nil, nil]
    /// The TCE cache, shared by the PHBs and tagged by PHB.
    public var tceCacheSets = 32
    public var tceCacheWays = 4
    public var errorLogCapacity = 16

    public init(phbBuses: [ClosedRange<UInt8>?] = [0...0, nil, nil, nil]) {
        self.phbBuses = Array(phbBuses.prefix(CalgaryRegister.phbCount))
    }
}

/// Counters the emulated Calgary keeps; reports read them.
public struct CalgaryUnitStatistics: Sendable, Hashable, Codable {
    public var translations: UInt64 = 0
    public var bypassed: UInt64 = 0
    public var cacheHits: UInt64 = 0
    public var cacheMisses: UInt64 = 0
    public var tableReads: UInt64 = 0
    public var cacheInvalidations: UInt64 = 0
    public var cacheEntriesDropped: UInt64 = 0
    public var errorsRecorded: UInt64 = 0
    public var errorsDropped: UInt64 = 0
}

/// An emulated IBM Calgary PCI host bridge with four PHBs.
///
/// Each PHB translates the DMA of the buses below it through its own TCE
/// table: bus address page n uses TCE n, so the DMA window is [0, entries ×
/// 4 KiB). Addresses beyond the window are refused, as are TCEs without the
/// needed read/write bit. The TCE cache keeps entries it has read until the
/// driver rewrites the PHB's TAR. A PHB whose TCE enable bit is clear passes
/// its buses' DMA through untranslated (Linux's "translation disabled" bus).
public final class CalgaryUnit: TranslationUnit, Sendable {
    public let name: String
    public let memory: PhysicalMemory
    public let configuration: CalgaryUnitConfiguration
    let state: SpinLock<State>
    private let errorInterrupt = InterruptLine()

    struct State {
        var tableAddress = [UInt64](repeating: 0, count: CalgaryRegister.phbCount)
        var phbConfiguration = [UInt32](repeating: 0, count: CalgaryRegister.phbCount)
        var channelStatus = [UInt32](repeating: 0, count: CalgaryRegister.phbCount)
        var cache: TranslationCache
        var errors: CalgaryErrorLog
        var statistics = CalgaryUnitStatistics()
    }

    public init(name: String, memory: PhysicalMemory, configuration: CalgaryUnitConfiguration = .init()) {
        self.name = name
        self.memory = memory
        self.configuration = configuration
        state = SpinLock(State(cache: TranslationCache(sets: configuration.tceCacheSets, ways: configuration.tceCacheWays),
                            errors: CalgaryErrorLog(capacity: configuration.errorLogCapacity)))
    }

    /// Wires the error signal to a handler; it stands in for the driver's watchdog poll of the channel status.
    public func connectErrorInterrupt(_ handler: (@Sendable () -> Void)?) {
        errorInterrupt.connect(handler)
    }

    func raiseErrorInterrupt() { errorInterrupt.raise() }

    public var statistics: CalgaryUnitStatistics { state.withLock { $0.statistics } }
    public var cacheOccupancy: Int { state.withLock { $0.cache.occupancy } }
    public var errorLogCapacity: Int { state.withLock { $0.errors.slots.count } }

    /// The PHB decoding `bus`, if any.
    public func phb(for bus: UInt8) -> Int? {
        configuration.phbBuses.firstIndex { $0?.contains(bus) == true }
    }

    /// Reads a register. Unknown offsets read as zero.
    public func readRegister(_ offset: Int) -> UInt64 {
        state.withLock { state in
            for phb in 0..<CalgaryRegister.phbCount {
                switch offset {
                case CalgaryRegister.tableAddress(phb: phb): return state.tableAddress[phb]
                case CalgaryRegister.phbConfiguration(phb: phb): return UInt64(state.phbConfiguration[phb])
                case CalgaryRegister.channelStatus(phb: phb): return UInt64(state.channelStatus[phb])
                case CalgaryRegister.busRange(phb: phb):
                    guard phb < configuration.phbBuses.count, let buses = configuration.phbBuses[phb] else { return 0 }
                    let end = buses.upperBound == buses.lowerBound ? 0 : buses.upperBound
                    return CalgaryBusRange.present | UInt64(buses.lowerBound) << 16 | UInt64(end) << 8
                default: continue
                }
            }
            switch offset {
            case CalgaryRegister.errorLogStatus:
                return (state.errors.pending ? CalgaryErrorLogStatus.pending : 0)
                    | (state.errors.overflowed ? CalgaryErrorLogStatus.overflowed : 0) | state.errors.dropped << 32
            case let record where record >= CalgaryRegister.errorLogBase
                && record < CalgaryRegister.errorLogBase + 16 * state.errors.slots.count:
                guard let error = state.errors.slots[(record - CalgaryRegister.errorLogBase) / 16] else { return 0 }
                return record % 16 == 0 ? error.registerImage.low : error.registerImage.high
            default: return 0
            }
        }
    }

    /// Writes a register. Writes to unknown offsets are ignored.
    public func writeRegister(_ offset: Int, _ value: UInt64) {
        state.withLock { state in
            for phb in 0..<CalgaryRegister.phbCount {
                switch offset {
                case CalgaryRegister.tableAddress(phb: phb):
                    state.tableAddress[phb] = value & CalgaryTableAddress.softwareBits
                    state.statistics.cacheInvalidations += 1
                    state.statistics.cacheEntriesDropped += UInt64(state.cache.invalidate(domain: UInt32(phb)))
                    return
                case CalgaryRegister.phbConfiguration(phb: phb):
                    state.phbConfiguration[phb] = UInt32(truncatingIfNeeded: value)
                    return
                case CalgaryRegister.channelStatus(phb: phb):
                    state.channelStatus[phb] = UInt32(truncatingIfNeeded: value)
                    return
                default: continue
                }
            }
            switch offset {
            case CalgaryRegister.errorLogStatus:
                if value & CalgaryErrorLogStatus.overflowed != 0 { state.errors.clearOverflow() }
            case let record where record >= CalgaryRegister.errorLogBase + 8
                && record < CalgaryRegister.errorLogBase + 16 * state.errors.slots.count && record % 16 == 8:
                if value >> 63 == 1 { state.errors.clear(slot: (record - CalgaryRegister.errorLogBase) / 16) }
            default: break
            }
        }
    }
}
