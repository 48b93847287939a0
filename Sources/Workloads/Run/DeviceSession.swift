import DMA
import Emulation
import IOMMUCore

/// One device's part of the default workload.
struct DeviceSession {
    let platform: EmulatedPlatform
    let dma: DeviceDMA
    var passed = 0
    var failed = 0
    var notes: [String] = []

    init(platform: EmulatedPlatform, dma: DeviceDMA) {
        self.platform = platform
        self.dma = dma
    }

    var device: PCIDevice { dma.device }
    var memory: PhysicalMemory { platform.memory }

    mutating func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        if condition { passed += 1 } else {
            failed += 1
            if notes.count < 8 { notes.append("FAILED: " + what()) }
        }
    }

    /// `progress` is told after each transfer, for a progress line.
    mutating func exercise(iterations: Int, generator: inout SplitMix64, progress: () -> Void = {}) {
        // A 32-bit device gets its buffers above 4 GiB on purpose: only the
        // IOMMU's remapping makes them reachable.
        let zone: PhysicalPageAllocator.Zone = device.addressBits <= 32 && dma.domainKind?.usesDMALayer == true
            ? .above(PhysicalAddress(1 << 32)) : (device.addressBits <= 32 ? .below(PhysicalAddress(0xFFFF_FFFF)) : .any)
        let areaPages: UInt64 = 64
        guard let area = try? platform.pages.allocate(pages: areaPages, zone: zone) else {
            check(false, "allocate a \(areaPages)-page buffer area in \(zone)")
            return
        }
        defer { try? platform.pages.free(area, pages: areaPages) }
        let largest = device.deviceClass == .storage ? 128 << 10 : 1514
        let smallest = device.deviceClass == .storage ? 4096 : 64
        for _ in 0..<iterations {
            let size = Int.random(in: smallest...largest, using: &generator)
            let offset = device.deviceClass == .storage ? 0 : Int.random(in: 0..<2048, using: &generator)
            let buffer = area + UInt64(offset)
            let direction: DMADirection = Bool.random(using: &generator) ? .fromDevice : .toDevice
            transfer(buffer, size: size, direction: direction, generator: &generator)
            progress()
        }
        coherentRing(generator: &generator)
        scatterGather(area, generator: &generator)
        if let region = platform.subsystem.device(at: device.address)?.reservedRegions.first(where: { $0.kind.isDirect }) {
            firmwareRegion(region)
        }
        if dma.domainKind?.usesDMALayer == true { strayAccessAfterUnmap(area) }
    }

    /// One streaming transfer, checked byte for byte on the receiving side.
    mutating func transfer(_ buffer: PhysicalAddress, size: Int, direction: DMADirection, generator: inout SplitMix64) {
        let pattern = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        if direction == .toDevice { try? memory.write(buffer, bytes: pattern) }
        let bus: IOVirtualAddress
        do { bus = try dma.map(buffer, size: size, direction: direction) } catch {
            check(false, "map \(size) bytes at \(buffer): \(error)")
            return
        }
        check(bus.value &+ UInt64(size) &- 1 <= dma.streamingMask, "bus address \(bus) fits the DMA mask")
        if dma.domainKind == .identity || dma.managed == nil {
            check(bus.value == buffer.value, "direct mapping gives bus = physical")
        }
        if direction == .fromDevice {
            let result = device.engine.write(to: bus, bytes: pattern)
            check(result.completed, "device write of \(size) bytes at \(bus): \(result.fault.map(String.init(describing:)) ?? "")")
        } else {
            let (bytes, result) = device.engine.read(from: bus, count: size)
            check(result.completed && bytes == pattern, "device read of \(size) bytes at \(bus) returns the CPU's data")
        }
        do { try dma.unmap(bus, size: size, direction: direction) } catch {
            check(false, "unmap \(bus): \(error)")
        }
        if direction == .fromDevice {
            check((try? memory.read(buffer, count: size)) == pattern, "CPU reads what the device wrote")
        }
    }

    /// A descriptor ring in coherent memory: the device fills it, the CPU reads it.
    mutating func coherentRing(generator: inout SplitMix64) {
        guard let ring = try? dma.allocateCoherent(size: 16 << 10) else {
            check(false, "allocate a 16 KiB coherent ring")
            return
        }
        let descriptors = (0..<256).map { _ in UInt64.random(in: 0...UInt64.max, using: &generator) }
        let bytes = descriptors.withUnsafeBytes { Array($0) }
        let result = device.engine.write(to: ring.busAddress, bytes: bytes)
        check(result.completed, "device writes its completion ring")
        check(ring.read(at: 0, count: bytes.count) == bytes, "CPU sees the ring the device wrote")
        do { try dma.freeCoherent(ring) } catch { check(false, "free coherent ring: \(error)") }
    }

    /// A three-piece scatter-gather list from scattered parts of the area: the
    /// device fills the bus segments it is given, the CPU finds each piece filled.
    mutating func scatterGather(_ area: PhysicalAddress, generator: inout SplitMix64) {
        let pieces = [DMAScatterSegment(physical: area + 0x20_000 + 0x300, length: 0xD00),
                      DMAScatterSegment(physical: area + 0x30_000, length: 4096),
                      DMAScatterSegment(physical: area + 0x38_000, length: 700)]
        let mapped: MappedScatterList
        do { mapped = try dma.mapScatterList(pieces, direction: .fromDevice) } catch {
            check(false, "map a scatter-gather list: \(error)")
            return
        }
        let total = pieces.reduce(0) { $0 + $1.length }
        let pattern = (0..<total).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var offset = 0
        for segment in mapped.segments {
            let bytes = Array(pattern[offset..<(offset + Int(segment.length))])
            check(device.engine.write(to: segment.busAddress, bytes: bytes).completed, "device fills segment at \(segment.busAddress)")
            offset += Int(segment.length)
        }
        do { try dma.unmapScatterList(mapped) } catch { check(false, "unmap the scatter-gather list: \(error)") }
        var received: [UInt8] = []
        for piece in pieces { received += (try? memory.read(piece.physical, count: piece.length)) ?? [] }
        check(received == pattern, "every scatter-gather piece holds what the device wrote")
    }

    /// Firmware-initiated DMA keeps working: the region is mapped 1:1.
    mutating func firmwareRegion(_ region: ReservedRegion) {
        let address = PhysicalAddress(region.range.lowerBound)
        let pattern: [UInt8] = (0..<256).map { UInt8($0) }
        try? memory.write(address, bytes: pattern)
        let (bytes, result) = device.engine.read(from: IOVirtualAddress(address.value), count: pattern.count)
        check(result.completed && bytes == pattern, "device reads its \(region.source) region 1:1")
    }

    /// After a strict unmap the device must not reach the buffer any more.
    mutating func strayAccessAfterUnmap(_ area: PhysicalAddress) {
        guard let bus = try? dma.map(area, size: 4096, direction: .fromDevice) else { return }
        try? dma.unmap(bus, size: 4096, direction: .fromDevice)
        dma.flushDeferred()
        let before = try? memory.read(area, count: 4096)
        let result = device.engine.write(to: bus, bytes: [UInt8](repeating: 0xEE, count: 4096))
        check(!result.completed && result.bytesTransferred == 0, "a write after unmap faults")
        check((try? memory.read(area, count: 4096)) == before, "the faulting write changed no memory")
        notes.append("one stray write after unmap was attempted on purpose and faulted")
    }
}
