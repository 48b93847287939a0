import DMA
import Emulation
import IOMMUCore

/// Where an access lands when it lies wholly in a shadow pool.
public enum ShadowPoolReach: Sendable, Hashable {
    /// The device's own pool: copies of buffers it was given, zeros, and what it wrote there.
    case own
    /// Another device's pool in a domain the two share (the shared-group window).
    case shared
}

extension AttackPlatform {
    /// The shadow pool `count` bytes at `address` lie in, as `dma`'s domain sees it; nil when none holds them all.
    func shadowPool(reachedBy dma: DeviceDMA, at address: UInt64, count: Int) -> ShadowPoolReach? {
        guard dma.managed?.group.isClaimed == false else { return nil }
        for other in platform.dma.values {
            guard let layout = other.shadowPoolLayout, other === dma || shareGroup(other, dma) else { continue }
            let offset = address &- layout.busAddress.value
            guard address >= layout.busAddress.value, offset < layout.bytes, UInt64(max(count, 1)) <= layout.bytes - offset else {
                continue
            }
            return other === dma ? .own : .shared
        }
        return nil
    }

    /// The shadow pools mapped in `dma`'s domain (its own, and those of devices sharing its group), as bus ranges.
    func shadowPools(inDomainOf dma: DeviceDMA) -> [ClosedRange<UInt64>] {
        platform.dma.values.compactMap { other in
            guard let layout = other.shadowPoolLayout, other === dma || shareGroup(other, dma) else { return nil }
            return layout.busAddress.value...(layout.busAddress.value + layout.bytes - 1)
        }
    }

    /// Whether streaming mappings of `dma` go through a shadow pool.
    func shadows(_ dma: DeviceDMA) -> Bool { dma.usesShadowBuffers }
}

extension AttackScenario {
    /// Use after unmap on a shadow device: the old bus address is still a slot of its pool, so the access
    /// completes; what matters is whether it reaches the caller's memory. The CPU reuses the freed buffer
    /// for a fresh secret at once; the device then reads (leaking if the fresh secret comes back) and writes
    /// (leaking every byte of the buffer that changes).
    static func useAfterShadowUnmap(_ machine: AttackPlatform, _ dma: DeviceDMA,
                                    _ outcome: inout AttackOutcome) throws(PlatformError) {
        var reads = 0, writes = 0
        for round in 0..<8 {
            let secret = try machine.secret(pages: 2)
            let size = 512 + round * 700
            let bus = try machine.map(dma, secret, size: size, .bidirectional)
            _ = dma.device.engine.read(from: bus, count: size)
            try machine.unmap(dma, bus, size: size, .bidirectional)
            let fresh = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ round &+ 1) }
            do throws(MemoryError) { try machine.platform.memory.write(secret, bytes: fresh) } catch { throw .memory(error) }
            let inPool = machine.shadowPool(reachedBy: dma, at: bus.value, count: size) == .own
            let (bytes, read) = dma.device.engine.read(from: bus, count: size)
            let exposed = UInt64(zip(bytes, fresh).filter { $0 == $1 }.count)
            outcome.record(attemptOf: size, faulted: read.fault != nil, leaked: exposed > UInt64(size / 2) ? exposed : 0,
                           window: nil, contained: inPool)
            let written = dma.device.engine.write(to: bus, bytes: [UInt8](repeating: 0xEE, count: size))
            let after: [UInt8]
            do throws(MemoryError) { after = try machine.platform.memory.read(secret, count: size) } catch { throw .memory(error) }
            let changed = UInt64(zip(after, fresh).filter { $0 != $1 }.count)
            outcome.record(attemptOf: size, faulted: written.fault != nil, leaked: changed, window: nil, contained: inPool)
            if read.completed { reads += 1 }
            if written.completed { writes += 1 }
        }
        outcome.notes.append("\(dma.device.name): the old bus address stays a slot of its shadow pool: \(reads) of 8 reads and "
                             + "\(writes) of 8 writes completed there, none reaching the buffer the CPU reused")
    }
}
