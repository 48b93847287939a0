import Emulation

/// The driver's side of a unit's command buffer: a ring of 128-bit commands
/// in emulated memory, submitted by moving the tail register and completed
/// by a COMPLETION_WAIT whose store the driver waits for.
final class AMDViCommandQueue: Sendable {
    typealias Command = (low: UInt64, high: UInt64)

    let unit: AMDViUnit
    let memory: PhysicalMemory
    let base: PhysicalAddress
    let statusWord: PhysicalAddress
    /// 256 commands: one page, ComLen = 8.
    let entries: UInt64 = 256
    private let state = HostLock<(tail: UInt64, token: UInt64)>((0, 0))

    init(unit: AMDViUnit, pages: PhysicalPageAllocator) throws(MemoryError) {
        self.unit = unit
        memory = pages.memory
        base = try pages.allocate()
        statusWord = try pages.allocate()
        unit.writeRegister(AMDViRegister.commandBufferBase, base.value | 8 << 56)
        unit.writeRegister(AMDViRegister.commandBufferHead, 0)
        unit.writeRegister(AMDViRegister.commandBufferTail, 0)
    }

    /// Submits one or two commands and a COMPLETION_WAIT, and waits for its
    /// store, so the commands have taken effect when this returns. No
    /// allocation: this runs on every strict unmap.
    /// - Throws: ``MemoryError`` when the ring is unusable or the unit did not complete the wait.
    func submitAndWait(_ first: Command, _ second: Command? = nil) throws(MemoryError) {
        try state.withLock { (state) throws(MemoryError) in
            state.token &+= 1
            if state.token == 0 { state.token = 1 }
            let token = state.token
            try memory.store64(statusWord, 0)
            try put(first, &state.tail)
            if let second { try put(second, &state.tail) }
            try put(Self.completionWait(store: statusWord.value, data: token), &state.tail)
            unit.writeRegister(AMDViRegister.commandBufferTail, state.tail * 16)
            // The emulated unit runs the buffer synchronously on the tail write;
            // a real driver would poll the store location here.
            guard try memory.load64(statusWord) == token else {
                throw .invalidRequest("\(unit.name): command buffer did not complete (status \(hex(unit.readRegister(AMDViRegister.status))))")
            }
        }
    }

    private func put(_ command: Command, _ tail: inout UInt64) throws(MemoryError) {
        let slot = base + tail * 16
        try memory.store64(slot, command.low)
        try memory.store64(slot + 8, command.high)
        tail = (tail + 1) % entries
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
