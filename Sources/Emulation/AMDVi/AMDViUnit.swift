/// An emulated AMD-Vi (AMD IOMMU) unit.
///
/// The driver programs it only as it would real hardware: through the MMIO
/// registers (``readRegister(_:)``/``writeRegister(_:_:)``), the device table,
/// the v1 page tables and the command buffer it writes into emulated memory.
/// The unit reads those itself, caches device table entries and
/// translations, keeps using a cached entry until a command invalidates it,
/// and reports faults in an event log in memory.
public final class AMDViUnit: TranslationUnit, Sendable {
    public let name: String
    public let memory: PhysicalMemory
    public let configuration: AMDViUnitConfiguration
    let state: SpinLock<State>
    private let eventInterrupt = InterruptLine()

    /// What the unit remembers of one device table entry.
    struct CachedDTE {
        enum Route { case passThrough, translate, illegal }
        var route: Route
        var mode: Int
        var root: UInt64
        var permissions: AccessPermissions
        var domainID: UInt16
        var suppressEvents: Bool
        var exclusion: Bool
    }

    /// A ring in memory (command buffer or event log): base, size in bytes, head and tail byte offsets.
    struct Ring {
        var base: UInt64 = 0
        var bytes: UInt64 = 4096
        var head: UInt64 = 0
        var tail: UInt64 = 0

        mutating func configure(_ value: UInt64) {
            base = value & AMDViPTE.addressMask
            bytes = 16 << max(8, min(15, (value >> 56) & 0xF))
            head = 0
            tail = 0
        }
    }

    struct State {
        var control: UInt64 = 0
        var status: UInt64 = 0
        var deviceTableRegister: UInt64 = 0
        var commandBufferRegister: UInt64 = 0
        var eventLogRegister: UInt64 = 0
        var exclusionBase: UInt64 = 0
        var exclusionLimit: UInt64 = 0
        var commands = Ring()
        var events = Ring()
        var iotlb: TranslationCache
        var deviceCache: [UInt16: CachedDTE] = [:]
        var statistics = AMDViUnitStatistics()
        /// Set when an event was written with the interrupt enabled; raised once the lock is dropped.
        var interruptPending = false

        var deviceTableBase: UInt64 { deviceTableRegister & AMDViPTE.addressMask }
        var deviceTableEntries: UInt64 { ((deviceTableRegister & 0x1FF) + 1) * 4096 / AMDViDTE.bytes }
    }

    public init(name: String, memory: PhysicalMemory, configuration: AMDViUnitConfiguration = .init()) {
        self.name = name
        self.memory = memory
        self.configuration = configuration
        state = SpinLock(State(iotlb: TranslationCache(sets: configuration.iotlbSets, ways: configuration.iotlbWays)))
    }

    /// Wires the event log interrupt (the MSI the unit would send) to a handler.
    public func connectEventInterrupt(_ handler: (@Sendable () -> Void)?) {
        eventInterrupt.connect(handler)
    }

    public var statistics: AMDViUnitStatistics { state.withLock { $0.statistics } }
    public var iotlbOccupancy: Int { state.withLock { $0.iotlb.occupancy } }
    public var isEnabled: Bool { state.withLock { $0.control & AMDViControl.iommuEnable != 0 } }

    /// Reads a register. Unknown offsets read as zero, as reserved registers do.
    public func readRegister(_ offset: Int) -> UInt64 {
        state.withLock { state in
            switch offset {
            case AMDViRegister.deviceTableBase: return state.deviceTableRegister
            case AMDViRegister.commandBufferBase: return state.commandBufferRegister
            case AMDViRegister.eventLogBase: return state.eventLogRegister
            case AMDViRegister.control: return state.control
            case AMDViRegister.exclusionBase: return state.exclusionBase
            case AMDViRegister.exclusionLimit: return state.exclusionLimit
            case AMDViRegister.extendedFeatures: return configuration.extendedFeatureRegister
            case AMDViRegister.commandBufferHead: return state.commands.head
            case AMDViRegister.commandBufferTail: return state.commands.tail
            case AMDViRegister.eventLogHead: return state.events.head
            case AMDViRegister.eventLogTail: return state.events.tail
            case AMDViRegister.status: return state.status
            default: return 0
            }
        }
    }

    /// Writes a register. Writes to read-only or unknown offsets are ignored;
    /// moving the command buffer tail executes the commands up to it.
    public func writeRegister(_ offset: Int, _ value: UInt64) {
        let raise: Bool = state.withLock { state in
            switch offset {
            case AMDViRegister.deviceTableBase: state.deviceTableRegister = value & (AMDViPTE.addressMask | 0x1FF)
            case AMDViRegister.commandBufferBase:
                state.commandBufferRegister = value
                state.commands.configure(value)
            case AMDViRegister.eventLogBase:
                state.eventLogRegister = value
                state.events.configure(value)
            case AMDViRegister.control: writeControl(value, &state)
            case AMDViRegister.exclusionBase:
                state.exclusionBase = value & (AMDViExclusion.addressMask | AMDViExclusion.enable | AMDViExclusion.allowAll)
            case AMDViRegister.exclusionLimit: state.exclusionLimit = value & AMDViExclusion.addressMask
            case AMDViRegister.commandBufferHead: state.commands.head = (value & 0x7FFF0) % state.commands.bytes
            case AMDViRegister.commandBufferTail:
                state.commands.tail = (value & 0x7FFF0) % state.commands.bytes
                processCommands(&state)
            case AMDViRegister.eventLogHead: state.events.head = (value & 0x7FFF0) % state.events.bytes
            case AMDViRegister.eventLogTail: state.events.tail = (value & 0x7FFF0) % state.events.bytes
            case AMDViRegister.status:
                state.status &= ~(value & (AMDViStatus.eventOverflow | AMDViStatus.eventLogInterrupt
                                           | AMDViStatus.completionWaitInterrupt))
            default: break
            }
            defer { state.interruptPending = false }
            return state.interruptPending
        }
        if raise { raiseEventInterrupt() }
    }

    private func writeControl(_ value: UInt64, _ state: inout State) {
        let previous = state.control
        state.control = value
        if value & AMDViControl.eventLogEnable != 0, previous & AMDViControl.eventLogEnable == 0 {
            state.status |= AMDViStatus.eventLogRunning // (re)starts logging, also after an overflow
        } else if value & AMDViControl.eventLogEnable == 0 {
            state.status &= ~AMDViStatus.eventLogRunning
        }
        if value & AMDViControl.commandBufferEnable != 0 {
            if previous & AMDViControl.commandBufferEnable == 0 { state.status |= AMDViStatus.commandBufferRunning }
            processCommands(&state)
        } else {
            state.status &= ~AMDViStatus.commandBufferRunning
        }
    }

    /// Appends an event at the log's tail. A full log (tail one entry behind
    /// head) drops the event, sets EventOverflow and stops the log until the
    /// driver re-enables it, as the hardware does.
    func logEvent(_ event: AMDViEvent, _ state: inout State) {
        guard state.status & AMDViStatus.eventLogRunning != 0 else {
            state.statistics.eventsOverflowed += 1
            return
        }
        let next = (state.events.tail + 16) % state.events.bytes
        guard next != state.events.head else {
            state.status |= AMDViStatus.eventOverflow
            state.status &= ~AMDViStatus.eventLogRunning
            state.statistics.eventsOverflowed += 1
            return
        }
        let slot = PhysicalAddress(state.events.base + state.events.tail)
        let image = event.image
        do {
            try memory.store64(slot + 8, image.high)
            try memory.store64(slot, image.low)
        } catch {
            state.status &= ~AMDViStatus.eventLogRunning // the log points outside memory: stop it
            state.statistics.eventsOverflowed += 1
            return
        }
        state.events.tail = next
        state.statistics.eventsLogged += 1
        if state.control & AMDViControl.eventInterruptEnable != 0 {
            state.status |= AMDViStatus.eventLogInterrupt
            state.interruptPending = true
        }
    }

    func raiseEventInterrupt() { eventInterrupt.raise() }
}
