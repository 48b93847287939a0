import Emulation
import Synchronization
import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// The driver's side of a unit's queued-invalidation interface: a ring of
/// 128-bit descriptors in emulated memory, submitted by moving the tail
/// register and completed by a wait descriptor that writes a status word.
final class VTdInvalidationQueue: Sendable {
    let unit: VTdUnit
    /// `unit` again, to write the tail register without a retain and release per submission.
    private let unitReference: Unmanaged<VTdUnit>
    let memory: PhysicalMemory
    let base: PhysicalAddress
    let statusWord: PhysicalAddress
    let entries = 256 // a power of two: the tail wraps with a mask
    /// The driver's queue lock (Linux's qi->q_lock spinlock).
    private let queueLock = QueueLock()
    /// Tail and wait token, touched only while `queueLock` is held; a raw
    /// pointer because a class stored property would add an exclusivity check.
    nonisolated(unsafe) private let cursor: UnsafeMutablePointer<(tail: Int, token: UInt32)>

    /// CPU views of the ring and the status word: the driver writes them on
    /// every strict unmap, so without a bounds-checked call per word.
    nonisolated(unsafe) private let ring: UnsafeMutableRawPointer
    nonisolated(unsafe) private let status: UnsafeMutableRawPointer

    init(unit: VTdUnit, pages: PhysicalPageAllocator) throws(MemoryError) {
        self.unit = unit
        unitReference = Unmanaged.passUnretained(unit)
        memory = pages.memory
        base = try pages.allocate()
        statusWord = try pages.allocate()
        ring = try memory.pointer(to: base, count: PageSize.size4K)
        status = try memory.pointer(to: statusWord, count: 8)
        unit.writeRegister(VTdRegister.invalidationQueueAddress, base.value) // QS = 0: one page, 256 descriptors
        unit.writeRegister(VTdRegister.invalidationQueueTail, 0)
        cursor = .allocate(capacity: 1)
        cursor.initialize(to: (0, 0))
    }

    deinit { cursor.deallocate() }

    typealias Descriptor = (low: UInt64, high: UInt64)

    /// Submits one or two descriptors followed by a wait descriptor and
    /// waits for it, so the invalidation has taken effect when this returns.
    /// No allocation: this runs on every strict unmap.
    /// - Throws: ``MemoryError`` when the queue memory is unusable or the unit did not complete the wait.
    func submitAndWait(_ first: Descriptor, _ second: Descriptor? = nil) throws(MemoryError) {
        queueLock.lock()
        defer { queueLock.unlock() }
        cursor.pointee.token &+= 1
        if cursor.pointee.token == 0 { cursor.pointee.token = 1 }
        let token = cursor.pointee.token
        csupport_store32_release(status, 0)
        put(first, &cursor.pointee.tail)
        if let second { put(second, &cursor.pointee.tail) }
        put((VTdDescriptor.waitType | VTdDescriptor.waitStatusWrite | UInt64(token) << 32, statusWord.value),
            &cursor.pointee.tail)
        let tail = UInt64(cursor.pointee.tail) << 4
        unitReference._withUnsafeGuaranteedRef { $0.writeRegister(VTdRegister.invalidationQueueTail, tail) }
        // The emulated unit executes the queue synchronously on the tail
        // write; a real driver would spin on the status word here too.
        // Read as the 32-bit word the unit writes: a wider load could not be forwarded from that store.
        guard UInt32(littleEndian: csupport_load32_acquire(status)) == token else {
            throw incomplete()
        }
    }

    @inline(never)
    private func incomplete() -> MemoryError {
        .invalidRequest("\(unit.name): invalidation queue did not complete (fault status \(hex(unit.readRegister(VTdRegister.faultStatus))))")
    }

    @inline(__always)
    private func put(_ descriptor: Descriptor, _ tail: inout Int) {
        let slot = ring + tail &* 16
        csupport_store64_release(slot, descriptor.low.littleEndian)
        csupport_store64_release(slot + 8, descriptor.high.littleEndian)
        tail = (tail &+ 1) & (entries - 1)
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
