/// Build-time properties of an emulated GART.
public struct GARTUnitConfiguration: Sendable, Hashable {
    /// The GART TLB: a small cache of GATT entries.
    public var tlbSets = 16
    public var tlbWays = 4
    /// Slots in the emulator's error log.
    public var errorLogCapacity = 16

    public init() {}
}

/// Counters the emulated GART keeps; reports read them.
public struct GARTUnitStatistics: Sendable, Hashable, Codable {
    public var translations: UInt64 = 0
    public var passedThrough: UInt64 = 0
    public var tlbHits: UInt64 = 0
    public var tlbMisses: UInt64 = 0
    public var tableReads: UInt64 = 0
    public var cacheFlushes: UInt64 = 0
    public var tlbEntriesDropped: UInt64 = 0
    public var errorsRecorded: UInt64 = 0
    public var errorsDropped: UInt64 = 0
}

/// An emulated AMD K8 / family 10h northbridge GART.
///
/// One aperture of 32 MiB to 2 GiB of bus address space is remapped page by
/// page through the GATT, a flat table of 32-bit entries in memory; every
/// other bus address goes to memory untranslated. The GART TLB keeps GATT
/// entries it has read until the driver writes InvGart, so a missing flush
/// leaves a device reaching the old page. An access through an entry without
/// the valid bit is aborted: it moves no data, sets GartPteErr and is logged.
public final class GARTUnit: TranslationUnit, Sendable {
    public let name: String
    public let memory: PhysicalMemory
    public let configuration: GARTUnitConfiguration
    let state: SpinLock<State>
    private let errorInterrupt = InterruptLine()

    struct State {
        var control: UInt32 = 0
        var apertureBaseField: UInt32 = 0
        var tableBaseField: UInt32 = 0
        var pteError = false
        var tlb: TranslationCache
        var errors: GARTErrorLog
        var statistics = GARTUnitStatistics()
    }

    public init(name: String, memory: PhysicalMemory, configuration: GARTUnitConfiguration = .init()) {
        self.name = name
        self.memory = memory
        self.configuration = configuration
        state = SpinLock(State(tlb: TranslationCache(sets: configuration.tlbSets, ways: configuration.tlbWays),
                            errors: GARTErrorLog(capacity: configuration.errorLogCapacity)))
    }

    /// Wires the error signal (the northbridge machine-check the real GART raises) to a handler.
    public func connectErrorInterrupt(_ handler: (@Sendable () -> Void)?) {
        errorInterrupt.connect(handler)
    }

    public var statistics: GARTUnitStatistics { state.withLock { $0.statistics } }
    public var tlbOccupancy: Int { state.withLock { $0.tlb.occupancy } }
    public var errorLogCapacity: Int { state.withLock { $0.errors.slots.count } }

    /// The aperture the registers describe now, nil while GartEn is clear.
    public var activeAperture: ClosedRange<UInt64>? {
        state.withLock { state in
            guard state.control & GARTControl.enable != 0 else { return nil }
            let (base, size) = Self.aperture(state)
            return base...(base + size - 1)
        }
    }

    static func aperture(_ state: State) -> (base: UInt64, size: UInt64) {
        let base = UInt64(state.apertureBaseField & 0x7FFF) << 25
        let size = GARTApertureSize.bytes(forEncoding: (state.control & GARTControl.sizeMask) >> GARTControl.sizeShift)
        return (base, size)
    }

    /// Reads a register. Unknown offsets read as zero.
    public func readRegister(_ offset: Int) -> UInt64 {
        state.withLock { state in
            switch offset {
            case GARTRegister.apertureControl: return UInt64(state.control)
            case GARTRegister.apertureBase: return UInt64(state.apertureBaseField)
            case GARTRegister.tableBase: return UInt64(state.tableBaseField)
            case GARTRegister.cacheControl: return state.pteError ? UInt64(GARTCacheControl.pteError) : 0
            case GARTRegister.errorLogStatus:
                return (state.errors.pending ? GARTErrorLogStatus.pending : 0)
                    | (state.errors.overflowed ? GARTErrorLogStatus.overflowed : 0) | state.errors.dropped << 32
            case let record where record >= GARTRegister.errorLogBase
                && record < GARTRegister.errorLogBase + 16 * state.errors.slots.count:
                guard let error = state.errors.slots[(record - GARTRegister.errorLogBase) / 16] else { return 0 }
                return record % 16 == 0 ? error.registerImage.low : error.registerImage.high
            default: return 0
            }
        }
    }

    /// Writes a register. Writes to unknown offsets are ignored; reserved bits are dropped.
    public func writeRegister(_ offset: Int, _ value: UInt64) {
        state.withLock { state in
            let word = UInt32(truncatingIfNeeded: value)
            switch offset {
            case GARTRegister.apertureControl: state.control = word & 0x7F
            case GARTRegister.apertureBase: state.apertureBaseField = word & 0x7FFF
            case GARTRegister.tableBase: state.tableBaseField = word & 0xFFFF_FFF0
            case GARTRegister.cacheControl:
                if word & GARTCacheControl.invalidate != 0 {
                    state.statistics.cacheFlushes += 1
                    state.statistics.tlbEntriesDropped += UInt64(state.tlb.invalidateAll())
                }
                if word & GARTCacheControl.pteError != 0 { state.pteError = false }
            case GARTRegister.errorLogStatus:
                if value & GARTErrorLogStatus.overflowed != 0 { state.errors.clearOverflow() }
            case let record where record >= GARTRegister.errorLogBase + 8
                && record < GARTRegister.errorLogBase + 16 * state.errors.slots.count && record % 16 == 8:
                if value >> 63 == 1 { state.errors.clear(slot: (record - GARTRegister.errorLogBase) / 16) }
            default: break
            }
        }
    }

    /// Translates one device access: outside the aperture (or with the GART
    /// off) the bus address is the physical address; inside it the GART TLB
    /// or the GATT entry for the page decides.
    public func translate(_ address: IOVirtualAddress, requester: PCIAddress, access: BusAccess) -> TranslationOutcome {
        // The outcome and whether to raise the interrupt, returned rather than captured: a variable
        // captured by the nested `refuse` costs a dynamic exclusivity check on every access.
        let (outcome, interrupt): (TranslationOutcome, Bool) = state.withLock { state in
            state.statistics.translations += 1
            let pageRest = PageSize.size4K - (address.value & 0xFFF)
            let (base, size) = Self.aperture(state)
            let enabled = state.control & GARTControl.enable != 0 && state.control & GARTControl.disableIOAccess == 0
            guard enabled, address.value >= base, address.value - base < size else {
                state.statistics.passedThrough += 1
                return (.translated(Translation(physical: PhysicalAddress(address.value), contiguousBytes: pageRest,
                                                cached: true)), false)
            }
            let page = address.value & ~0xFFF
            if let hit = state.tlb.lookup(domain: 0, address: address.value) {
                state.statistics.tlbHits += 1
                return (.translated(Translation(physical: PhysicalAddress(hit.physicalBase + (address.value & 0xFFF)),
                                                contiguousBytes: pageRest, cached: true)), false)
            }
            state.statistics.tlbMisses += 1
            func refuse(_ kind: GARTErrorKind) -> (TranslationOutcome, Bool) {
                var raise = false
                if kind == .invalidEntry { state.pteError = true }
                let wasPending = state.errors.pending
                let record = GARTErrorRecord(address: address.value, requester: requester.requesterID,
                                             isWrite: access == .write, kind: kind)
                if state.errors.record(record) {
                    state.statistics.errorsRecorded += 1
                    raise = !wasPending
                } else {
                    state.statistics.errorsDropped += 1
                }
                return (.faulted(kind.generic), raise)
            }
            let entryAddress = UInt64(state.tableBaseField >> 4) << 12 + ((address.value - base) >> 12) * 4
            state.statistics.tableReads += 1
            guard let word = try? memory.load64(PhysicalAddress(entryAddress & ~7)) else { return refuse(.tableUnreadable) }
            let entry = UInt32(truncatingIfNeeded: entryAddress & 4 == 0 ? word : word >> 32)
            guard entry & GARTEntry.valid != 0 else { return refuse(.invalidEntry) }
            let physical = GARTEntry.physical(of: entry)
            state.tlb.insert(domain: 0, pageBase: page, pageShift: 12, physicalBase: physical, permissions: .readWrite)
            return (.translated(Translation(physical: PhysicalAddress(physical + (address.value & 0xFFF)),
                                            contiguousBytes: pageRest, cached: false)), false)
        }
        if interrupt { errorInterrupt.raise() }
        return outcome
    }
}
