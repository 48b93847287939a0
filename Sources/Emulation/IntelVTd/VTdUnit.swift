import Synchronization

/// An emulated Intel VT-d DMA-remapping hardware unit (a DRHD).
///
/// The driver programs it only as it would real hardware: through the
/// register file (``readRegister(_:)``/``writeRegister(_:_:)``) and through the
/// root, context and page tables and the invalidation queue that it writes
/// into emulated memory. The unit reads those tables itself, caches context
/// entries and translations, and keeps using a cached entry until the driver
/// invalidates it.
public final class VTdUnit: TranslationUnit, Sendable {
    public let name: String
    public let memory: PhysicalMemory
    public let configuration: VTdUnitConfiguration
    let state: SpinLock<State>
    private let faultInterrupt = InterruptLine()
    private let interruptServicing = Atomic<Bool>(false)
    private let interruptMissed = Atomic<Bool>(false)

    struct CachedContext {
        var present: Bool
        var faultProcessingDisabled: Bool
        var translationType: UInt64
        var tableRoot: UInt64
        var levels: Int
        var domain: UInt32
        var invalid: VTdFaultReasonCode?
    }

    struct State {
        var globalStatus: UInt32 = 0
        var rootTableAddress: UInt64 = 0
        var activeRootTable: UInt64 = 0
        var faultEventMasked = false
        var queueBase: UInt64 = 0
        var queueEntries: Int = 0
        var queueHead: Int = 0
        var queueTail: Int = 0
        var queueError = false
        /// The CPU view of the whole queue, set when its address is programmed (nil when the
        /// queue lies outside memory: then the first fetch fails as it would on hardware).
        var queueRing: UnsafeMutableRawPointer?
        var invalidationWaitComplete = false
        /// The status word the last wait descriptor wrote, and its CPU view: a driver reuses
        /// one, so the bounds check runs once, not on every strict unmap.
        var waitStatusAddress: UInt64 = .max
        var waitStatusPointer: UnsafeMutableRawPointer?
        var iotlbAddressRegister: UInt64 = 0
        var iotlb: TranslationCache
        var contexts: [UInt16: CachedContext] = [:]
        /// The context used last, checked before the dictionary: a device
        /// streaming DMA asks for the same one on every access.
        var recentSource: Int32 = -1
        var recentContext = CachedContext(present: false, faultProcessingDisabled: false, translationType: 0,
                                          tableRoot: 0, levels: 0, domain: 0, invalid: nil)
        var faults: VTdFaultRecorder
        var statistics = VTdUnitStatistics()
    }

    public init(name: String, memory: PhysicalMemory, configuration: VTdUnitConfiguration = .init()) {
        self.name = name
        self.memory = memory
        self.configuration = configuration
        state = SpinLock(State(iotlb: TranslationCache(sets: configuration.iotlbSets, ways: configuration.iotlbWays),
                            faults: VTdFaultRecorder(count: configuration.faultRecordCount)))
    }

    /// Wires the unit's fault-event interrupt (the MSI it would send) to a handler.
    public func connectFaultInterrupt(_ handler: (@Sendable () -> Void)?) {
        faultInterrupt.connect(handler)
    }

    public var statistics: VTdUnitStatistics { state.withLock { $0.statistics } }
    public var iotlbOccupancy: Int { state.withLock { $0.iotlb.occupancy } }
    public var isTranslationEnabled: Bool { state.withLock { $0.globalStatus & VTdGlobal.translationEnable != 0 } }

    /// Reads a register. Unknown offsets read as zero, as reserved registers do.
    public func readRegister(_ offset: Int) -> UInt64 {
        state.withLock { state in
            switch offset {
            case VTdRegister.version: return 0x10
            case VTdRegister.capability: return configuration.capabilityRegister
            case VTdRegister.extendedCapability: return configuration.extendedCapabilityRegister
            case VTdRegister.globalStatus: return UInt64(state.globalStatus)
            case VTdRegister.rootTableAddress: return state.rootTableAddress
            case VTdRegister.faultStatus:
                var value: UInt32 = state.faults.overflowed ? VTdFaultStatus.primaryFaultOverflow : 0
                if state.faults.pending { value |= VTdFaultStatus.primaryPendingFault }
                if state.queueError { value |= VTdFaultStatus.invalidationQueueError }
                value |= UInt32(state.faults.nextIndex) << 8
                return UInt64(value)
            case VTdRegister.faultEventControl: return state.faultEventMasked ? 1 << 31 : 0
            case VTdRegister.invalidationQueueHead: return UInt64(state.queueHead) << 4
            case VTdRegister.invalidationQueueTail: return UInt64(state.queueTail) << 4
            case VTdRegister.invalidationCompletionStatus: return state.invalidationWaitComplete ? 1 : 0
            case let record where record >= VTdRegister.faultRecordingBase
                && record < VTdRegister.faultRecordingBase + 16 * state.faults.slots.count:
                let slot = (record - VTdRegister.faultRecordingBase) / 16
                guard let fault = state.faults.slots[slot] else { return 0 }
                let image = fault.registerImage
                return record % 16 == 0 ? image.low : image.high
            default: return 0
            }
        }
    }

    /// Writes a register. Writes to read-only or unknown offsets are ignored.
    public func writeRegister(_ offset: Int, _ value: UInt64) {
        if offset == VTdRegister.invalidationQueueTail {
            // Every strict unmap lands here: straight to the queue, past the decoding below.
            state.withLock { state in
                state.queueTail = Int((value >> 4) & 0x7FFF)
                processInvalidationQueue(&state)
            }
            return
        }
        let raiseInterrupt: Bool = state.withLock { state in
            switch offset {
            case VTdRegister.globalCommand: globalCommand(UInt32(truncatingIfNeeded: value), &state)
            case VTdRegister.rootTableAddress: state.rootTableAddress = value
            case VTdRegister.contextCommand where value >> 63 == 1: contextCommand(value, &state)
            case VTdRegister.faultStatus:
                if value & UInt64(VTdFaultStatus.primaryFaultOverflow) != 0 { state.faults.clearOverflow() }
                if value & UInt64(VTdFaultStatus.invalidationQueueError) != 0 { state.queueError = false }
            case VTdRegister.faultEventControl:
                let wasMasked = state.faultEventMasked
                state.faultEventMasked = value >> 31 & 1 == 1
                return wasMasked && !state.faultEventMasked && state.faults.pending
            case VTdRegister.invalidationQueueAddress:
                state.queueBase = value & ~0xFFF
                state.queueEntries = 256 << Int(min(value & 7, 7))
                state.queueRing = try? memory.pointer(to: PhysicalAddress(state.queueBase),
                                                      count: UInt64(state.queueEntries) * 16)
                state.queueHead = 0
                state.queueTail = 0
            case VTdRegister.invalidationQueueTail:
                state.queueTail = Int((value >> 4) & 0x7FFF)
                processInvalidationQueue(&state)
            case VTdRegister.invalidationCompletionStatus where value & 1 == 1:
                state.invalidationWaitComplete = false
            case VTdRegister.iotlbRegistersBase: state.iotlbAddressRegister = value
            case VTdRegister.iotlbRegistersBase + 8 where value >> 63 == 1:
                registerIOTLBInvalidation(value, &state)
            case let record where record >= VTdRegister.faultRecordingBase + 8
                && record < VTdRegister.faultRecordingBase + 16 * state.faults.slots.count && record % 16 == 8:
                if value >> 63 == 1 { state.faults.clear(slot: (record - VTdRegister.faultRecordingBase) / 16) }
            default: break
            }
            return false
        }
        if raiseInterrupt { faultInterrupt.raise() }
    }

    private func globalCommand(_ command: UInt32, _ state: inout State) {
        if command & VTdGlobal.setRootTablePointer != 0 {
            state.activeRootTable = state.rootTableAddress & ~0xFFF
            state.contexts.removeAll(keepingCapacity: true)
            state.recentSource = -1
            state.globalStatus |= VTdGlobal.setRootTablePointer
        }
        state.globalStatus = command & VTdGlobal.translationEnable != 0
            ? state.globalStatus | VTdGlobal.translationEnable : state.globalStatus & ~VTdGlobal.translationEnable
        state.globalStatus = command & VTdGlobal.queuedInvalidationEnable != 0
            ? state.globalStatus | VTdGlobal.queuedInvalidationEnable
            : state.globalStatus & ~VTdGlobal.queuedInvalidationEnable
    }

    /// Records a fault unless the context disabled fault processing; returns
    /// whether the fault-event interrupt must be raised.
    func recordFault(_ record: VTdFaultRecord, suppressed: Bool, _ state: inout State) -> Bool {
        if suppressed {
            state.statistics.faultsSuppressed += 1
            return false
        }
        guard state.faults.record(record) else {
            state.statistics.faultsOverflowed += 1
            return false
        }
        state.statistics.faultsRecorded += 1
        return !state.faultEventMasked
    }

    /// Delivers the fault event. The handler runs synchronously, so a fault
    /// recorded while it runs (from its own DMA or another device's thread)
    /// would find the log already pending and, with a purely edge-triggered
    /// signal, never be announced: the log would fill and stay full. Instead
    /// such a fault leaves a mark, and whoever is servicing raises again.
    func raiseFaultInterrupt() {
        interruptMissed.store(true, ordering: .sequentiallyConsistent)
        while interruptMissed.exchange(false, ordering: .sequentiallyConsistent) {
            guard interruptServicing.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged
            else { return } // the thread in the handler sees the mark when it finishes
            faultInterrupt.raise()
            interruptServicing.store(false, ordering: .sequentiallyConsistent)
        }
    }
}
