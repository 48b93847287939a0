/// An emulated Arm SMMUv3 with stage-1 translation.
///
/// The driver programs it as it would real hardware: through the register
/// file (``readRegister(_:)``/``writeRegister(_:_:)``), a linear stream table
/// of STEs, context descriptors and AArch64 translation tables in emulated
/// memory, and a command queue. The unit reports faults as records in an
/// event queue in memory and raises its event interrupt. It caches decoded
/// STE/CD configuration and translations (tagged by ASID) and keeps using a
/// cached entry until a CMD_CFGI_* or CMD_TLBI_* command removes it.
/// The StreamID of a PCI device is its requester ID.
public final class ARMSMMUUnit: TranslationUnit, Sendable {
    public let name: String
    public let memory: PhysicalMemory
    public let configuration: ARMSMMUUnitConfiguration
    let state: SpinLock<State>
    private let eventInterrupt = InterruptLine()

    /// A decoded context descriptor: how one stream is translated.
    struct Context {
        var tableBase: UInt64
        var granule: ARMTranslationGranule
        var inputBits: Int
        var outputBits: Int
        var asid: UInt16
        var walksDisabled: Bool
        var recordsFaults: Bool
        var accessFlagFaultsDisabled: Bool
    }

    /// A decoded STE, as the configuration cache holds it.
    enum StreamConfig {
        case abort
        case bypass
        case translate(Context)
    }

    struct State {
        var control: UInt64 = 0
        var globalBypass: UInt64 = 0
        var interruptControl: UInt64 = 0
        var globalError: UInt64 = 0
        var globalErrorAck: UInt64 = 0
        var streamTableBase: UInt64 = 0
        var streamTableConfig: UInt64 = 0
        var commandBase: UInt64 = 0
        var commandProducer: UInt64 = 0
        var commandConsumer: UInt64 = 0
        var commandError: ARMSMMUCommandError = .none
        var eventBase: UInt64 = 0
        var eventProducer: UInt64 = 0
        var eventConsumer: UInt64 = 0
        var tlb: TranslationCache
        var configs: [UInt32: StreamConfig] = [:]
        var statistics = ARMSMMUUnitStatistics()

        var isEnabled: Bool { control & ARMSMMUControl.smmuEnable != 0 }
        var commandQueueStopped: Bool {
            (globalError ^ globalErrorAck) & ARMSMMUGlobalError.commandQueueError != 0
        }
    }

    public init(name: String, memory: PhysicalMemory, configuration: ARMSMMUUnitConfiguration = .init()) {
        self.name = name
        self.memory = memory
        self.configuration = configuration
        state = SpinLock(State(tlb: TranslationCache(sets: configuration.tlbSets, ways: configuration.tlbWays)))
    }

    /// Wires the event-queue interrupt to a handler (the driver's IRQ thread).
    public func connectEventInterrupt(_ handler: (@Sendable () -> Void)?) {
        eventInterrupt.connect(handler)
    }

    public var statistics: ARMSMMUUnitStatistics { state.withLock { $0.statistics } }
    public var tlbOccupancy: Int { state.withLock { $0.tlb.occupancy } }
    public var isEnabled: Bool { state.withLock { $0.isEnabled } }

    /// Reads a register. Unknown offsets read as zero, as reserved registers do.
    public func readRegister(_ offset: Int) -> UInt64 {
        state.withLock { state in
            switch offset {
            case ARMSMMURegister.idr0: configuration.idr0
            case ARMSMMURegister.idr1: configuration.idr1
            case ARMSMMURegister.idr3: configuration.idr3
            case ARMSMMURegister.idr5: configuration.idr5
            case ARMSMMURegister.cr0, ARMSMMURegister.cr0Ack: state.control
            case ARMSMMURegister.gbpa: state.globalBypass
            case ARMSMMURegister.irqControl, ARMSMMURegister.irqControlAck: state.interruptControl
            case ARMSMMURegister.globalError: state.globalError
            case ARMSMMURegister.globalErrorAck: state.globalErrorAck
            case ARMSMMURegister.streamTableBase: state.streamTableBase
            case ARMSMMURegister.streamTableConfig: state.streamTableConfig
            case ARMSMMURegister.commandQueueBase: state.commandBase
            case ARMSMMURegister.commandQueueProducer: state.commandProducer
            case ARMSMMURegister.commandQueueConsumer:
                state.commandConsumer | state.commandError.rawValue << ARMSMMUCommandError.shift
            case ARMSMMURegister.eventQueueBase: state.eventBase
            case ARMSMMURegister.eventQueueProducer: state.eventProducer
            case ARMSMMURegister.eventQueueConsumer: state.eventConsumer
            default: 0
            }
        }
    }

    /// Writes a register. Writes to read-only or unknown offsets, and to
    /// table and queue bases while the structure is in use, are ignored.
    public func writeRegister(_ offset: Int, _ value: UInt64) {
        state.withLock { state in
            switch offset {
            case ARMSMMURegister.cr0:
                state.control = value & (ARMSMMUControl.smmuEnable | ARMSMMUControl.eventQueueEnable
                    | ARMSMMUControl.commandQueueEnable)
                processCommandQueue(&state)
            case ARMSMMURegister.gbpa where value & ARMSMMUGlobalBypass.update != 0:
                state.globalBypass = value & ARMSMMUGlobalBypass.abort
            case ARMSMMURegister.irqControl:
                state.interruptControl = value & (ARMSMMUInterruptControl.globalErrorEnable
                    | ARMSMMUInterruptControl.eventQueueEnable)
            case ARMSMMURegister.globalErrorAck:
                state.globalErrorAck = value & (ARMSMMUGlobalError.commandQueueError | ARMSMMUGlobalError.eventQueueAbort)
                if !state.commandQueueStopped {
                    state.commandError = .none
                    processCommandQueue(&state)
                }
            case ARMSMMURegister.streamTableBase where !state.isEnabled: state.streamTableBase = value
            case ARMSMMURegister.streamTableConfig where !state.isEnabled: state.streamTableConfig = value
            case ARMSMMURegister.commandQueueBase where state.control & ARMSMMUControl.commandQueueEnable == 0:
                state.commandBase = value
            case ARMSMMURegister.commandQueueProducer:
                state.commandProducer = value & Self.indexMask(log2: commandLog2(state))
                processCommandQueue(&state)
            case ARMSMMURegister.commandQueueConsumer where state.control & ARMSMMUControl.commandQueueEnable == 0:
                state.commandConsumer = value & Self.indexMask(log2: commandLog2(state))
            case ARMSMMURegister.eventQueueBase where state.control & ARMSMMUControl.eventQueueEnable == 0:
                state.eventBase = value
            case ARMSMMURegister.eventQueueProducer where state.control & ARMSMMUControl.eventQueueEnable == 0:
                state.eventProducer = value & (Self.indexMask(log2: eventLog2(state)) | ARMSMMUQueue.overflowFlag)
            case ARMSMMURegister.eventQueueConsumer:
                state.eventConsumer = value & (Self.indexMask(log2: eventLog2(state)) | ARMSMMUQueue.overflowFlag)
            default: break
            }
        }
    }

    /// Index plus wrap bit of a queue with 2^log2 entries.
    @inline(__always)
    static func indexMask(log2: Int) -> UInt64 { (1 << UInt64(log2 + 1)) - 1 }

    func commandLog2(_ state: State) -> Int {
        min(Int(state.commandBase & ARMSMMUQueue.log2SizeMask), configuration.maxCommandQueueLog2)
    }

    func eventLog2(_ state: State) -> Int {
        min(Int(state.eventBase & ARMSMMUQueue.log2SizeMask), configuration.maxEventQueueLog2)
    }

    func raiseEventInterrupt() { eventInterrupt.raise() }
}
