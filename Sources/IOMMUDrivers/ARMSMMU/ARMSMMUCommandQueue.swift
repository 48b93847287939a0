import CSupport
import Emulation

/// The driver's side of an SMMUv3 command queue: a ring of 16-byte commands
/// in emulated memory, submitted by moving CMDQ_PROD. Every batch ends with a
/// CMD_SYNC whose completion the unit signals by writing a token to a status
/// word (CS = SIG_IRQ with an MSI address in memory), and by CONS reaching PROD.
final class ARMSMMUCommandQueue: Sendable {
    typealias Command = (word0: UInt64, word1: UInt64)

    let unit: ARMSMMUUnit
    /// `unit` again, for the register writes of every submission without a retain.
    private let unitReference: Unmanaged<ARMSMMUUnit>
    let memory: PhysicalMemory
    let base: PhysicalAddress
    let statusWord: PhysicalAddress
    let log2Entries: Int
    /// The driver's command-queue lock: held for a few stores and one register write.
    private let queueLock = QueueLock()
    /// PROD as the driver last published it and the last CMD_SYNC token, touched only while
    /// `queueLock` is held; a raw pointer because a class stored property would add an exclusivity check.
    nonisolated(unsafe) private let cursor: UnsafeMutablePointer<(producer: UInt64, token: UInt32)>
    /// CPU views of the ring and the status word: every strict unmap writes them.
    nonisolated(unsafe) private let ring: UnsafeMutableRawPointer
    nonisolated(unsafe) private let status: UnsafeMutableRawPointer

    /// Allocates a one-page queue (256 commands) and programs CMDQ_BASE, PROD and CONS.
    /// - Throws: ``MemoryError`` when no page is free.
    init(unit: ARMSMMUUnit, pages: PhysicalPageAllocator) throws(MemoryError) {
        self.unit = unit
        unitReference = Unmanaged.passUnretained(unit)
        memory = pages.memory
        let supported = Int((unit.readRegister(ARMSMMURegister.idr1) >> ARMSMMUIdentification.commandQueueSizeShift) & 0x1F)
        log2Entries = min(8, supported)
        base = try pages.allocate()
        statusWord = try pages.allocate()
        ring = try memory.pointer(to: base, count: PageSize.size4K)
        status = try memory.pointer(to: statusWord, count: 8)
        cursor = .allocate(capacity: 1)
        cursor.initialize(to: (0, 0))
        unit.writeRegister(ARMSMMURegister.commandQueueBase, base.value | UInt64(log2Entries))
        unit.writeRegister(ARMSMMURegister.commandQueueProducer, 0)
        unit.writeRegister(ARMSMMURegister.commandQueueConsumer, 0)
    }

    deinit { cursor.deallocate() }

    /// Where a batch's commands go: straight into the ring, publishing PROD
    /// whenever the ring would otherwise fill up.
    struct Writer {
        /// Unretained: the queue outlives every batch it hands a writer to.
        fileprivate unowned(unsafe) let queue: ARMSMMUCommandQueue
        fileprivate let ring: UnsafeMutableRawPointer
        fileprivate let entries: UInt64
        fileprivate var producer: UInt64
        fileprivate var pending: UInt64 = 0

        /// - Throws: ``MemoryError`` when the unit stopped on a command while a full ring drained.
        mutating func add(_ command: Command) throws(MemoryError) {
            // Leave room for the closing CMD_SYNC; publish and let the unit drain a full ring.
            if pending == entries &- 1 {
                try queue.publish(producer)
                pending = 0
            }
            let slot = ring + Int(truncatingIfNeeded: (producer & (entries &- 1)) &* ARMSMMUQueue.commandBytes)
            csupport_store64_release(slot, command.word0.littleEndian)
            csupport_store64_release(slot + 8, command.word1.littleEndian)
            producer = (producer &+ 1) & ((entries &<< 1) &- 1)
            pending &+= 1
        }
    }

    /// Submits the commands `emit` adds, then a CMD_SYNC, and waits for it:
    /// when this returns the unit has carried them out. No allocation and no
    /// retain: this runs on every strict unmap.
    /// - Throws: ``MemoryError`` when the unit stopped on a command (the bad
    ///   command is replaced by a CMD_SYNC and the error acknowledged, so the
    ///   queue keeps working) or did not signal the CMD_SYNC.
    @inline(__always)
    func submit(_ emit: (inout Writer) throws(MemoryError) -> Void) throws(MemoryError) {
        queueLock.lock()
        defer { queueLock.unlock() }
        var writer = Writer(queue: self, ring: ring, entries: UInt64(1) &<< UInt64(log2Entries), producer: cursor.pointee.producer)
        defer { cursor.pointee.producer = writer.producer }
        try emit(&writer)
        cursor.pointee.token &+= 1
        if cursor.pointee.token == 0 { cursor.pointee.token = 1 }
        let token = cursor.pointee.token
        csupport_store32_release(status, 0)
        try writer.add(Self.sync(signalling: statusWord.value, token: token))
        try publish(writer.producer)
        // The emulated unit executes the queue synchronously on the PROD write; a real driver
        // would poll the status word here. Read as the 32-bit word the unit writes.
        guard UInt32(littleEndian: csupport_load32_acquire(status)) == token else { throw incomplete() }
    }

    @inline(never)
    private func incomplete() -> MemoryError { .invalidRequest("\(unit.name): CMD_SYNC did not complete") }

    /// Moves PROD and checks that the unit consumed everything.
    @inline(__always)
    fileprivate func publish(_ producer: UInt64) throws(MemoryError) {
        let consumer = unitReference._withUnsafeGuaranteedRef { unit in
            unit.writeRegister(ARMSMMURegister.commandQueueProducer, producer)
            return unit.readRegister(ARMSMMURegister.commandQueueConsumer)
        }
        guard (consumer >> ARMSMMUCommandError.shift) & 0x7F == 0 else { throw stopped(consumer) }
    }

    /// The unit stopped on a command: replace it by a CMD_SYNC, acknowledge, report.
    @inline(never)
    private func stopped(_ consumer: UInt64) -> MemoryError {
        let error = (consumer >> ARMSMMUCommandError.shift) & 0x7F
        let entries = UInt64(1) << UInt64(log2Entries)
        let slot = ring + Int((consumer & (entries - 1)) * ARMSMMUQueue.commandBytes)
        let opcode = UInt64(littleEndian: csupport_load64_acquire(slot)) & 0xFF
        csupport_store64_release(slot, ARMSMMUCommand.sync.littleEndian)
        csupport_store64_release(slot + 8, 0)
        let gerror = unit.readRegister(ARMSMMURegister.globalError)
        unit.writeRegister(ARMSMMURegister.globalErrorAck, gerror)
        return .invalidRequest("\(unit.name): command queue error \(error) on opcode \(hex(opcode))")
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
