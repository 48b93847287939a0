import Synchronization

/// The result of one device DMA request.
public struct DMATransferResult: Sendable, Hashable {
    /// Bytes that reached memory (write) or the device (read) before a fault stopped the request.
    public var bytesTransferred: Int
    /// Why the request stopped early, and where; nil when it completed.
    public var fault: DeviceFault?

    public var completed: Bool { fault == nil }
}

/// A fault as the device experiences it: the access was refused and moved no data.
public struct DeviceFault: Sendable, Hashable, CustomStringConvertible {
    public var address: IOVirtualAddress
    public var access: BusAccess
    public var reason: DMAFaultReason

    public init(address: IOVirtualAddress, access: BusAccess, reason: DMAFaultReason) {
        self.address = address
        self.access = access
        self.reason = reason
    }

    public var description: String { "\(access) at \(hex(address.value)) refused: \(reason)" }
}

/// Counters a device keeps about its own DMA; read them with ``DMAEngine/statistics``.
public struct DMAStatistics: Sendable, Hashable, Codable {
    public var bytesRead: UInt64 = 0
    public var bytesWritten: UInt64 = 0
    public var translationsCached: UInt64 = 0
    public var translationsWalked: UInt64 = 0
    public var faults: UInt64 = 0
}

/// A device's bus-master engine. It moves data by *bus address*, one page
/// at a time: each page is translated by the IOMMU unit that covers the
/// device (or goes straight to memory when none does), so a transfer that
/// crosses into an unmapped page stops there and that page is not touched.
public final class DMAEngine: Sendable {
    public let memory: PhysicalMemory
    /// The requester ID this engine puts on the bus.
    public let requester: PCIAddress
    /// Every route ever set, kept alive so that ``currentRoute`` can hand out
    /// the latest one with a single atomic load instead of a lock per access.
    private let routes: HostLock<[RouteBox]>
    private let currentRoute: Atomic<UInt>
    private let bytesRead = Atomic<UInt64>(0)
    private let bytesWritten = Atomic<UInt64>(0)
    private let cachedTranslations = Atomic<UInt64>(0)
    private let walkedTranslations = Atomic<UInt64>(0)
    private let faultCount = Atomic<UInt64>(0)

    public init(memory: PhysicalMemory, requester: PCIAddress) {
        self.memory = memory
        self.requester = requester
        let initial = RouteBox(nil)
        routes = HostLock([initial])
        currentRoute = Atomic(UInt(bitPattern: Unmanaged.passUnretained(initial).toOpaque()))
    }

    /// The unit that translates this engine's accesses, nil for none.
    public var translationUnit: (any TranslationUnit)? {
        get { route.unit }
        set {
            let box = RouteBox(newValue)
            routes.withLock { boxes in
                boxes.append(box) // plugged and unplugged a handful of times in a device's life
                currentRoute.store(UInt(bitPattern: Unmanaged.passUnretained(box).toOpaque()), ordering: .releasing)
            }
        }
    }

    @inline(__always)
    private var route: RouteBox { routeReference.takeUnretainedValue() }

    @inline(__always)
    private var routeReference: Unmanaged<RouteBox> {
        let bits = currentRoute.load(ordering: .acquiring)
        // Never dangling: `routes` keeps every box alive as long as the engine.
        return Unmanaged<RouteBox>.fromOpaque(UnsafeRawPointer(bitPattern: bits).unsafelyUnwrapped)
    }

    public var statistics: DMAStatistics {
        DMAStatistics(bytesRead: bytesRead.load(ordering: .relaxed), bytesWritten: bytesWritten.load(ordering: .relaxed),
                      translationsCached: cachedTranslations.load(ordering: .relaxed),
                      translationsWalked: walkedTranslations.load(ordering: .relaxed),
                      faults: faultCount.load(ordering: .relaxed))
    }

    /// Reads from memory at bus address `address` into `buffer` (device reads = DMA to the device).
    public func read(from address: IOVirtualAddress, into buffer: UnsafeMutableRawBufferPointer) -> DMATransferResult {
        transfer(address, count: buffer.count, access: .read) { physical, offset, length in
            guard let destination = buffer.baseAddress else { return }
            (destination + offset).copyMemory(from: physical, byteCount: length)
        }
    }

    /// Writes `buffer` to memory at bus address `address` (device writes = DMA from the device).
    public func write(to address: IOVirtualAddress, from buffer: UnsafeRawBufferPointer) -> DMATransferResult {
        transfer(address, count: buffer.count, access: .write) { physical, offset, length in
            guard let source = buffer.baseAddress else { return }
            physical.copyMemory(from: source + offset, byteCount: length)
        }
    }

    /// Reads `count` bytes; returns the bytes that arrived before any fault.
    public func read(from address: IOVirtualAddress, count: Int) -> (bytes: [UInt8], result: DMATransferResult) {
        var bytes = [UInt8](repeating: 0, count: max(0, count))
        let result = bytes.withUnsafeMutableBytes { read(from: address, into: $0) }
        return (Array(bytes.prefix(result.bytesTransferred)), result)
    }

    /// Writes `bytes` at `address`.
    public func write(to address: IOVirtualAddress, bytes: [UInt8]) -> DMATransferResult {
        bytes.withUnsafeBytes { write(to: address, from: $0) }
    }

    private func transfer(_ start: IOVirtualAddress, count: Int, access: BusAccess,
                          move: (UnsafeMutableRawPointer, Int, Int) -> Void) -> DMATransferResult {
        // Borrowed, not retained: `routes` keeps every box (and its unit) alive as long as the
        // engine, and a retain of a unit (weakly referenced, so its count lives in a side
        // table) would be an atomic read-modify-write per access.
        routeReference._withUnsafeGuaranteedRef { box in
            transfer(start, count: count, access: access, through: box.unit, move: move)
        }
    }

    @inline(__always)
    private func transfer(_ start: IOVirtualAddress, count: Int, access: BusAccess, through unit: borrowing (any TranslationUnit)?,
                          move: (UnsafeMutableRawPointer, Int, Int) -> Void) -> DMATransferResult {
        var done = 0
        var cached: UInt64 = 0, walked: UInt64 = 0
        defer {
            if cached > 0 { cachedTranslations.wrappingAdd(cached, ordering: .relaxed) }
            if walked > 0 { walkedTranslations.wrappingAdd(walked, ordering: .relaxed) }
            if access == .read {
                bytesRead.wrappingAdd(UInt64(done), ordering: .relaxed)
            } else {
                bytesWritten.wrappingAdd(UInt64(done), ordering: .relaxed)
            }
        }
        while done < count {
            let address = start + UInt64(done)
            if address.value < start.value { // wrapped past the top of the bus address space
                return fail(address, access, .beyondAddressWidth, done)
            }
            let pageRemainder = Int(PageSize.size4K - (address.value & (PageSize.size4K - 1)))
            var length = min(pageRemainder, count - done)
            let physical: PhysicalAddress
            if unit != nil {
                switch unit.unsafelyUnwrapped.translate(address, requester: requester, access: access) {
                case let .translated(translation):
                    physical = translation.physical
                    length = min(length, Int(clamping: translation.contiguousBytes))
                    if translation.cached { cached += 1 } else { walked += 1 }
                case let .faulted(reason):
                    return fail(address, access, reason, done)
                }
            } else {
                physical = PhysicalAddress(address.value)
            }
            guard let pointer = try? memory.pointer(to: physical, count: UInt64(length)) else {
                return fail(address, access, .notPresent, done) // no RAM there: a master abort
            }
            move(pointer, done, length)
            done += length
        }
        return DMATransferResult(bytesTransferred: done, fault: nil)
    }

    @inline(never)
    private func fail(_ address: IOVirtualAddress, _ access: BusAccess, _ reason: DMAFaultReason, _ done: Int) -> DMATransferResult {
        faultCount.wrappingAdd(1, ordering: .relaxed)
        return DMATransferResult(bytesTransferred: done, fault: DeviceFault(address: address, access: access, reason: reason))
    }
}

/// One routing decision of an engine, immutable once made.
private final class RouteBox: Sendable {
    let unit: (any TranslationUnit)?
    init(_ unit: (any TranslationUnit)?) { self.unit = unit }
}
