#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSupport

/// Emulated physical memory: one large, lazily backed address space.
///
/// The whole range is reserved as an anonymous private mapping without swap
/// reservation, so 64 GiB or more of addresses cost nothing until a page is
/// touched. Every access is bounds-checked and reports an error instead of
/// trapping; the check is one compare, cheap enough for device data paths.
///
/// Concurrent access to *different* bytes is safe, like real RAM. Page-table
/// entries are accessed with ``load64(_:)``/``store64(_:_:)``, which are
/// atomic, because a driver thread writes them while a device thread's IOMMU
/// walks them.
public final class PhysicalMemory: @unchecked Sendable {
    /// Bytes of physical address space.
    public let size: UInt64
    @usableFromInline let base: UnsafeMutableRawPointer

    /// Reserves `size` bytes of emulated physical memory.
    /// - Throws: ``MemoryError/invalidRequest(_:)`` for a size that is zero or not a
    ///   multiple of 4 KiB, ``MemoryError/mappingFailed(size:errno:)`` when the host
    ///   refuses the reservation.
    public init(size: UInt64 = 64 << 30) throws(MemoryError) {
        guard size > 0, size % PageSize.size4K == 0, size <= 1 << 46 else {
            throw .invalidRequest("memory size \(hex(size)) must be a non-zero multiple of 4 KiB up to 64 TiB")
        }
        let mapped = mmap(nil, Int(size), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { throw .mappingFailed(size: size, errno: errno) }
        self.size = size
        self.base = mapped
    }

    deinit { munmap(base, Int(size)) }

    @inlinable func check(_ address: UInt64, _ count: UInt64) throws(MemoryError) {
        guard address <= size, count <= size &- address else {
            throw .outOfRange(address: address, count: count, memorySize: size)
        }
    }

    /// A CPU pointer to `count` bytes at `address`: the kernel's direct map.
    /// - Throws: ``MemoryError/outOfRange(address:count:memorySize:)``.
    @inlinable
    public func pointer(to address: PhysicalAddress, count: UInt64) throws(MemoryError) -> UnsafeMutableRawPointer {
        try check(address.value, count)
        return base + Int(address.value)
    }

    /// Copies bytes out of memory. - Throws: ``MemoryError/outOfRange(address:count:memorySize:)``.
    @inlinable
    public func read(_ address: PhysicalAddress, into buffer: UnsafeMutableRawBufferPointer) throws(MemoryError) {
        try check(address.value, UInt64(buffer.count))
        guard let destination = buffer.baseAddress else { return }
        destination.copyMemory(from: base + Int(address.value), byteCount: buffer.count)
    }

    /// Copies bytes into memory. - Throws: ``MemoryError/outOfRange(address:count:memorySize:)``.
    @inlinable
    public func write(_ address: PhysicalAddress, from buffer: UnsafeRawBufferPointer) throws(MemoryError) {
        try check(address.value, UInt64(buffer.count))
        guard let source = buffer.baseAddress else { return }
        (base + Int(address.value)).copyMemory(from: source, byteCount: buffer.count)
    }

    /// Reads `count` bytes into a new array. - Throws: ``MemoryError/outOfRange(address:count:memorySize:)``.
    public func read(_ address: PhysicalAddress, count: Int) throws(MemoryError) -> [UInt8] {
        guard count >= 0 else { throw .invalidRequest("negative byte count \(count)") }
        try check(address.value, UInt64(count))
        return [UInt8](UnsafeRawBufferPointer(start: base + Int(address.value), count: count))
    }

    /// Writes `bytes` at `address`. - Throws: ``MemoryError/outOfRange(address:count:memorySize:)``.
    public func write(_ address: PhysicalAddress, bytes: [UInt8]) throws(MemoryError) {
        try check(address.value, UInt64(bytes.count))
        bytes.withUnsafeBytes { raw in
            guard let source = raw.baseAddress else { return }
            (base + Int(address.value)).copyMemory(from: source, byteCount: raw.count)
        }
    }

    /// Copies `count` bytes between two physical ranges (they may overlap).
    /// - Throws: ``MemoryError/outOfRange(address:count:memorySize:)`` for either range.
    public func copy(from source: PhysicalAddress, to destination: PhysicalAddress, count: UInt64) throws(MemoryError) {
        try check(source.value, count)
        try check(destination.value, count)
        memmove(base + Int(destination.value), base + Int(source.value), Int(count))
    }

    /// Sets `count` bytes at `address` to `value`.
    /// - Throws: ``MemoryError/outOfRange(address:count:memorySize:)``.
    public func fill(_ address: PhysicalAddress, count: UInt64, with value: UInt8 = 0) throws(MemoryError) {
        try check(address.value, count)
        memset(base + Int(address.value), Int32(value), Int(count))
    }

    /// Atomically reads the naturally aligned 64-bit little-endian word at `address`.
    /// - Throws: ``MemoryError/misaligned(address:alignment:)``, ``MemoryError/outOfRange(address:count:memorySize:)``.
    @inlinable
    public func load64(_ address: PhysicalAddress) throws(MemoryError) -> UInt64 {
        guard address.value & 7 == 0 else { throw .misaligned(address: address.value, alignment: 8) }
        try check(address.value, 8)
        return UInt64(littleEndian: csupport_load64_acquire(base + Int(address.value)))
    }

    /// Atomically writes the naturally aligned 64-bit word at `address`.
    /// - Throws: ``MemoryError/misaligned(address:alignment:)``, ``MemoryError/outOfRange(address:count:memorySize:)``.
    @inlinable
    public func store64(_ address: PhysicalAddress, _ value: UInt64) throws(MemoryError) {
        guard address.value & 7 == 0 else { throw .misaligned(address: address.value, alignment: 8) }
        try check(address.value, 8)
        csupport_store64_release(base + Int(address.value), value.littleEndian)
    }

    /// Atomically replaces the word at `address` if it still holds `expected`;
    /// returns the value that was there.
    /// - Throws: ``MemoryError/misaligned(address:alignment:)``, ``MemoryError/outOfRange(address:count:memorySize:)``.
    @inlinable
    public func compareExchange64(_ address: PhysicalAddress, expected: UInt64, desired: UInt64) throws(MemoryError) -> UInt64 {
        guard address.value & 7 == 0 else { throw .misaligned(address: address.value, alignment: 8) }
        try check(address.value, 8)
        return UInt64(littleEndian: csupport_cas64(base + Int(address.value), expected.littleEndian, desired.littleEndian))
    }

    /// Gives the backing pages of a range back to the host, so they read as
    /// zero and stop counting against the process's memory.
    /// - Throws: ``MemoryError/outOfRange(address:count:memorySize:)``, ``MemoryError/misaligned(address:alignment:)``.
    public func discard(_ address: PhysicalAddress, count: UInt64) throws(MemoryError) {
        guard address.value % PageSize.size4K == 0, count % PageSize.size4K == 0 else {
            throw .misaligned(address: address.value, alignment: PageSize.size4K)
        }
        try check(address.value, count)
        _ = madvise(base + Int(address.value), Int(count), MADV_DONTNEED)
    }
}
