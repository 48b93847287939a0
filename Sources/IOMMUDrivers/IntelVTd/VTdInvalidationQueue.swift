import Emulation
import Synchronization

/// The driver's side of a unit's queued-invalidation interface: a ring of
/// 128-bit descriptors in emulated memory, submitted by moving the tail
/// register and completed by a wait descriptor that writes a status word.
final class VTdInvalidationQueue: Sendable {
    let unit: VTdUnit
    let memory: PhysicalMemory
    let base: PhysicalAddress
    let statusWord: PhysicalAddress
    let entries = 256
    private let state = Mutex<(tail: Int, token: UInt32)>((0, 0))

    init(unit: VTdUnit, pages: PhysicalPageAllocator) throws(MemoryError) {
        self.unit = unit
        memory = pages.memory
        base = try pages.allocate()
        statusWord = try pages.allocate()
        unit.writeRegister(VTdRegister.invalidationQueueAddress, base.value) // QS = 0: one page, 256 descriptors
        unit.writeRegister(VTdRegister.invalidationQueueTail, 0)
    }

    typealias Descriptor = (low: UInt64, high: UInt64)

    /// Submits one or two descriptors followed by a wait descriptor and
    /// waits for it, so the invalidation has taken effect when this returns.
    /// No allocation: this runs on every strict unmap.
    /// - Throws: ``MemoryError`` when the queue memory is unusable or the unit did not complete the wait.
    func submitAndWait(_ first: Descriptor, _ second: Descriptor? = nil) throws(MemoryError) {
        try state.withLock { (state) throws(MemoryError) in
            state.token &+= 1
            if state.token == 0 { state.token = 1 }
            let token = state.token
            try memory.store64(statusWord, 0)
            try put(first, &state.tail)
            if let second { try put(second, &state.tail) }
            try put((VTdDescriptor.waitType | VTdDescriptor.waitStatusWrite | UInt64(token) << 32, statusWord.value),
                    &state.tail)
            unit.writeRegister(VTdRegister.invalidationQueueTail, UInt64(state.tail) << 4)
            // The emulated unit executes the queue synchronously on the tail
            // write; a real driver would spin on the status word here too.
            let status = UInt32(truncatingIfNeeded: try memory.load64(statusWord))
            guard status == token else {
                throw .invalidRequest("\(unit.name): invalidation queue did not complete (fault status \(hex(unit.readRegister(VTdRegister.faultStatus))))")
            }
        }
    }

    private func put(_ descriptor: Descriptor, _ tail: inout Int) throws(MemoryError) {
        let slot = base + UInt64(tail) * 16
        try memory.store64(slot, descriptor.low)
        try memory.store64(slot + 8, descriptor.high)
        tail = (tail + 1) % entries
    }

    static func iotlbPage(domain: UInt16, address: UInt64, addressMask: Int) -> (low: UInt64, high: UInt64) {
        (VTdDescriptor.iotlbType | VTdDescriptor.pageOrDeviceGranularity | 1 << 6 | 1 << 7 | UInt64(domain) << 16,
         address & ~0xFFF | UInt64(addressMask & 0x3F))
    }

    static func iotlbDomain(_ domain: UInt16) -> (low: UInt64, high: UInt64) {
        (VTdDescriptor.iotlbType | VTdDescriptor.domainGranularity | 1 << 6 | 1 << 7 | UInt64(domain) << 16, 0)
    }

    static let iotlbGlobal: (low: UInt64, high: UInt64) = (VTdDescriptor.iotlbType | VTdDescriptor.globalGranularity, 0)

    static func contextDevice(domain: UInt16, source: UInt16) -> (low: UInt64, high: UInt64) {
        (VTdDescriptor.contextCacheType | VTdDescriptor.pageOrDeviceGranularity | UInt64(domain) << 16 | UInt64(source) << 32, 0)
    }

    static let contextGlobal: (low: UInt64, high: UInt64) = (VTdDescriptor.contextCacheType | VTdDescriptor.globalGranularity, 0)
}
