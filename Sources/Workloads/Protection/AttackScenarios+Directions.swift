import DMA
import Emulation
import IOMMUCore

extension AttackScenario {
    public static let wrongDirection = AttackScenario(
        name: "wrong-direction",
        summary: "a device writes into a buffer mapped to-device and reads one mapped from-device"
    ) { (context) throws(PlatformError) in
        let machine = try AttackPlatform(context)
        var outcome = AttackOutcome(scenario: "wrong-direction", context: context, attempted:
            "nic0 and nvme0 each write into a page mapped to-device and read a page mapped from-device that holds a "
            + "secret (the buffer's earlier contents); the driver unmaps both and checks what reached memory")
        for name in ["nic0", "nvme0"] {
            let dma = try machine.dma(name)
            // What the family's tables let through anyway: a read-only page that is writable, a write-only one that is readable.
            let profile = FamilyProtectionProfile(context.family)
            let writeWindow: ExposureWindow? = profile.effectivePermissions(.read).contains(.write) ? .coarsePermissions : nil
            let readWindow: ExposureWindow? = profile.effectivePermissions(.write).contains(.read) ? .coarsePermissions : nil
            let outgoing = try machine.secret(), incoming = try machine.secret()
            let original: [UInt8]
            do throws(MemoryError) { original = try machine.platform.memory.read(outgoing, count: 4096) } catch { throw .memory(error) }

            // Writing into a to-device buffer: what counts is whether the caller's memory changed.
            let toDevice = try machine.map(dma, outgoing, size: 4096, .toDevice)
            let written = dma.device.engine.write(to: toDevice, bytes: [UInt8](repeating: 0xEE, count: 4096))
            try machine.unmap(dma, toDevice, size: 4096, .toDevice)
            let after: [UInt8]
            do throws(MemoryError) { after = try machine.platform.memory.read(outgoing, count: 4096) } catch { throw .memory(error) }
            let changed = UInt64(zip(after, original).filter { $0 != $1 }.count)
            let ownPool = machine.shadowPool(reachedBy: dma, at: toDevice.value, count: 4096) == .own
            outcome.record(attemptOf: 4096, faulted: written.fault != nil, leaked: changed, window: writeWindow, contained: ownPool)
            if ownPool, written.completed {
                outcome.notes.append("\(name): the write into its to-device buffer completed in the shadow slot and "
                                     + "changed \(changed) bytes of the caller's memory")
            }

            // Reading a from-device buffer: what counts is whether its earlier contents came back.
            let fromDevice = try machine.map(dma, incoming, size: 4096, .fromDevice)
            let (bytes, read) = dma.device.engine.read(from: fromDevice, count: 4096)
            try machine.unmap(dma, fromDevice, size: 4096, .fromDevice)
            let secret: [UInt8]
            do throws(MemoryError) { secret = try machine.platform.memory.read(incoming, count: 4096) } catch { throw .memory(error) }
            let exposed = UInt64(zip(bytes, secret).filter { $0 == $1 }.count)
            let leaked = bytes.count == 4096 && exposed > 3000 ? exposed : 0
            let shadowed = machine.shadows(dma)
            outcome.record(attemptOf: 4096, faulted: read.fault != nil, leaked: leaked,
                           window: shadowed ? .shadowCopyIn : readWindow)
            if shadowed, leaked > 0 {
                outcome.notes.append("\(name): shadow slots are readable, and a from-device buffer's earlier contents "
                                     + "are copied in so that bytes the device does not write come back unchanged")
            }
        }
        return outcome
    }
}
