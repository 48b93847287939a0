import Emulation

/// The driver's side of an SMMUv3 command queue: a ring of 16-byte commands
/// in emulated memory, submitted by moving CMDQ_PROD. Every batch ends with a
/// CMD_SYNC whose completion the unit signals by writing a token to a status
/// word (CS = SIG_IRQ with an MSI address in memory), and by CONS reaching PROD.
final class ARMSMMUCommandQueue: Sendable {
    typealias Command = (word0: UInt64, word1: UInt64)

    let unit: ARMSMMUUnit
    let memory: PhysicalMemory
    let base: PhysicalAddress
    let statusWord: PhysicalAddress
    let log2Entries: Int
    private let state = HostLock<(producer: UInt64, token: UInt32)>((0, 0))

    /// Allocates a one-page queue (256 commands) and programs CMDQ_BASE, PROD and CONS.
    /// - Throws: ``MemoryError`` when no page is free.
    init(unit: ARMSMMUUnit, pages: PhysicalPageAllocator) throws(MemoryError) {
        self.unit = unit
        memory = pages.memory
        let supported = Int((unit.readRegister(ARMSMMURegister.idr1) >> ARMSMMUIdentification.commandQueueSizeShift) & 0x1F)
        log2Entries = min(8, supported)
        base = try pages.allocate()
        statusWord = try pages.allocate()
        unit.writeRegister(ARMSMMURegister.commandQueueBase, base.value | UInt64(log2Entries))
        unit.writeRegister(ARMSMMURegister.commandQueueProducer, 0)
        unit.writeRegister(ARMSMMURegister.commandQueueConsumer, 0)
    }

    /// Where a batch's commands go: straight into the ring, publishing PROD
    /// whenever the ring would otherwise fill up.
    struct Writer {
        fileprivate let queue: ARMSMMUCommandQueue
        fileprivate var producer: UInt64
        fileprivate var pending: UInt64 = 0

        /// - Throws: ``MemoryError`` when the ring is unusable or the unit stopped on a command.
        mutating func add(_ command: Command) throws(MemoryError) {
            let entries = UInt64(1) << UInt64(queue.log2Entries)
            // Leave room for the closing CMD_SYNC; publish and let the unit drain a full ring.
            if pending == entries - 1 {
                try queue.publish(producer)
                pending = 0
            }
            let slot = queue.base + (producer & (entries - 1)) * ARMSMMUQueue.commandBytes
            try queue.memory.store64(slot, command.word0)
            try queue.memory.store64(slot + 8, command.word1)
            producer = (producer + 1) & ((entries << 1) - 1)
            pending += 1
        }
    }

    /// Submits the commands `emit` adds, then a CMD_SYNC, and waits for it:
    /// when this returns the unit has carried them out. No allocation: this
    /// runs on every strict unmap.
    /// - Throws: ``MemoryError`` when the queue memory is unusable or the unit
    ///   stopped on a command (the bad command is replaced by a CMD_SYNC and
    ///   the error acknowledged, so the queue keeps working).
    func submit(_ emit: (inout Writer) throws(MemoryError) -> Void) throws(MemoryError) {
        try state.withLock { (state) throws(MemoryError) in
            var writer = Writer(queue: self, producer: state.producer)
            defer { state.producer = writer.producer }
            try emit(&writer)
            state.token &+= 1
            if state.token == 0 { state.token = 1 }
            try memory.store64(statusWord, 0)
            try writer.add(Self.sync(signalling: statusWord.value, token: state.token))
            try publish(writer.producer)
            // The emulated unit executes the queue synchronously on the PROD
            // write; a real driver would poll the status word here.
            guard UInt32(truncatingIfNeeded: try memory.load64(statusWord)) == state.token else {
                throw .invalidRequest("\(unit.name): CMD_SYNC did not complete")
            }
        }
    }

    /// Moves PROD and checks that the unit consumed everything.
    fileprivate func publish(_ producer: UInt64) throws(MemoryError) {
        unit.writeRegister(ARMSMMURegister.commandQueueProducer, producer)
        let consumer = unit.readRegister(ARMSMMURegister.commandQueueConsumer)
        let error = (consumer >> ARMSMMUCommandError.shift) & 0x7F
        guard error == 0 else {
            let entries = UInt64(1) << UInt64(log2Entries)
            let slot = base + (consumer & (entries - 1)) * ARMSMMUQueue.commandBytes
            let opcode = (try? memory.load64(slot)).map { $0 & 0xFF } ?? 0
            try memory.store64(slot, ARMSMMUCommand.sync)
            try memory.store64(slot + 8, 0)
            let gerror = unit.readRegister(ARMSMMURegister.globalError)
            unit.writeRegister(ARMSMMURegister.globalErrorAck, gerror)
            throw .invalidRequest("\(unit.name): command queue error \(error) on opcode \(hex(opcode))")
        }
    }

    static func sync(signalling address: UInt64, token: UInt32) -> Command {
        (ARMSMMUCommand.sync | ARMSMMUCommand.syncSignalIRQ << ARMSMMUCommand.syncSignalShift
            | UInt64(token) << ARMSMMUCommand.syncDataShift, address & ARMSMMUCommand.syncAddressMask)
    }

    static func invalidateSTE(streamID: UInt32) -> Command {
        (ARMSMMUCommand.configInvalidateSTE | UInt64(streamID) << ARMSMMUCommand.streamIDShift, ARMSMMUCommand.leaf)
    }

    static func invalidateCD(streamID: UInt32) -> Command {
        (ARMSMMUCommand.configInvalidateCD | UInt64(streamID) << ARMSMMUCommand.streamIDShift, ARMSMMUCommand.leaf)
    }

    /// CMD_CFGI_ALL: CFGI_STE_RANGE with Range = 31.
    static let invalidateAllConfiguration: Command = (ARMSMMUCommand.configInvalidateSTERange, 31)

    static func invalidateASID(_ asid: UInt16) -> Command {
        (ARMSMMUCommand.tlbiNonHypASID | UInt64(asid) << ARMSMMUCommand.asidShift, 0)
    }

    static let invalidateAllTLB: Command = (ARMSMMUCommand.tlbiNonSecureNonHypAll, 0)

    /// CMD_TLBI_NH_VA of last-level entries: one address (no `range`), or
    /// (NUM + 1) × 2^SCALE granules from `address` with a range encoding.
    static func invalidateAddress(_ address: UInt64, asid: UInt16,
                                  range: (granule: ARMTranslationGranule, number: UInt64, scale: UInt64)? = nil) -> Command {
        var word0 = ARMSMMUCommand.tlbiNonHypVA | UInt64(asid) << ARMSMMUCommand.asidShift
        var word1 = address & ARMSMMUCommand.addressMask | ARMSMMUCommand.leaf
        if let range {
            word0 |= (range.number - 1) << ARMSMMUCommand.numberShift | range.scale << ARMSMMUCommand.scaleShift
            word1 |= range.granule.rangeInvalidationEncoding << ARMSMMUCommand.granuleShift
        }
        return (word0, word1)
    }
}
