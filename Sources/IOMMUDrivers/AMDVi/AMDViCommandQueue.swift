import CSupport
import Emulation

/// The driver's side of a unit's command buffer: a ring of 128-bit commands
/// in emulated memory, submitted by moving the tail register and completed
/// by a COMPLETION_WAIT whose store the driver waits for.
final class AMDViCommandQueue: Sendable {
    typealias Command = (low: UInt64, high: UInt64)

    let unit: AMDViUnit
    /// `unit` again, to write the tail register without a retain and release per submission.
    private let unitReference: Unmanaged<AMDViUnit>
    let memory: PhysicalMemory
    let base: PhysicalAddress
    let statusWord: PhysicalAddress
    /// 256 commands: one page, ComLen = 8.
    let entries: UInt64 = 256
    /// The driver's command-buffer lock: held for a few stores and one register write.
    private let queueLock = QueueLock()
    /// Tail and wait token, touched only while `queueLock` is held; a raw pointer because a
    /// class stored property would add an exclusivity check.
    nonisolated(unsafe) private let cursor: UnsafeMutablePointer<(tail: UInt64, token: UInt64)>
    /// CPU views of the ring and the store location: every strict unmap writes them.
    nonisolated(unsafe) private let ring: UnsafeMutableRawPointer
    nonisolated(unsafe) private let status: UnsafeMutableRawPointer

    init(unit: AMDViUnit, pages: PhysicalPageAllocator) throws(MemoryError) {
        self.unit = unit
        unitReference = Unmanaged.passUnretained(unit)
        memory = pages.memory
        base = try pages.allocate()
        statusWord = try pages.allocate()
        ring = try memory.pointer(to: base, count: PageSize.size4K)
        status = try memory.pointer(to: statusWord, count: 8)
        cursor = .allocate(capacity: 1)
        cursor.initialize(to: (0, 0))
        unit.writeRegister(AMDViRegister.commandBufferBase, base.value | 8 << 56)
        unit.writeRegister(AMDViRegister.commandBufferHead, 0)
        unit.writeRegister(AMDViRegister.commandBufferTail, 0)
    }

    deinit { cursor.deallocate() }

    /// Submits one or two commands and a COMPLETION_WAIT, and waits for its
    /// store, so the commands have taken effect when this returns. No
    /// allocation and no retain: this runs on every strict unmap.
    /// - Throws: ``MemoryError`` when the unit did not complete the wait.
    func submitAndWait(_ first: Command, _ second: Command? = nil) throws(MemoryError) {
        queueLock.lock()
        defer { queueLock.unlock() }
        cursor.pointee.token &+= 1
        if cursor.pointee.token == 0 { cursor.pointee.token = 1 }
        let token = cursor.pointee.token
        csupport_store64_release(status, 0)
        put(first, &cursor.pointee.tail)
        if let second { put(second, &cursor.pointee.tail) }
        put(Self.completionWait(store: statusWord.value, data: token), &cursor.pointee.tail)
        let tail = cursor.pointee.tail &* 16
        unitReference._withUnsafeGuaranteedRef { $0.writeRegister(AMDViRegister.commandBufferTail, tail) }
        // The emulated unit runs the buffer synchronously on the tail write;
        // a real driver would poll the store location here.
        guard UInt64(littleEndian: csupport_load64_acquire(status)) == token else { throw incomplete() }
    }

    @inline(never)
    private func incomplete() -> MemoryError {
        .invalidRequest("\(unit.name): command buffer did not complete (status \(hex(unit.readRegister(AMDViRegister.status))))")
    }

    @inline(__always)
    private func put(_ command: Command, _ tail: inout UInt64) {
        let slot = ring + Int(truncatingIfNeeded: tail &* 16)
        csupport_store64_release(slot, command.low.littleEndian)
        csupport_store64_release(slot + 8, command.high.littleEndian)
        tail = (tail &+ 1) & (entries &- 1)
    }

    static func completionWait(store address: UInt64, data: UInt64) -> Command {
        ((address & AMDViCommand.waitAddressMask) | AMDViCommand.waitStore | AMDViCommand.completionWait << AMDViCommand.opcodeShift,
         data)
    }

    static func invalidateDeviceTableEntry(_ deviceID: UInt16) -> Command {
        (UInt64(deviceID) | AMDViCommand.invalidateDeviceTableEntry << AMDViCommand.opcodeShift, 0)
    }

    /// INVALIDATE_IOMMU_PAGES for the smallest naturally aligned power-of-two
    /// range covering `first...last`: one page without S; otherwise the
    /// address bits below the range's top bit set, with S; the whole domain
    /// when the range is wider than the address field.
    static func invalidatePages(domain: UInt16, first: UInt64, last: UInt64) -> Command {
        let low = UInt64(domain) << 32 | AMDViCommand.invalidateIOMMUPages << AMDViCommand.opcodeShift
        if first >> 12 == last >> 12 { return (low, first & ~0xFFF) }
        let top = 63 - (first ^ last).leadingZeroBitCount
        guard top <= 51 else { return invalidateDomain(domain) }
        let address = (first | ((1 << UInt64(top)) - 1)) & ~0xFFF
        return (low, address | AMDViCommand.sizeBit | AMDViCommand.directoryBit)
    }

    static func invalidateDomain(_ domain: UInt16) -> Command {
        (UInt64(domain) << 32 | AMDViCommand.invalidateIOMMUPages << AMDViCommand.opcodeShift,
         AMDViCommand.allPagesAddress | AMDViCommand.sizeBit | AMDViCommand.directoryBit)
    }

    static let invalidateAll: Command = (AMDViCommand.invalidateIOMMUAll << AMDViCommand.opcodeShift, 0)
}
