import DMA
import Emulation
import IOMMUCore

extension AttackScenario {
    public static let outsideMappings = AttackScenario(
        name: "outside-mappings",
        summary: "a device reads and writes outside its mappings: the pages around its buffer, a secret by its physical "
            + "address, another device's bus address, random addresses"
    ) { (context) throws(PlatformError) in
        let machine = try AttackPlatform(context)
        var outcome = AttackOutcome(scenario: "outside-mappings", context: context, attempted:
            "nic0 holds one mapped page; it reads and writes the pages before and after it, a secret page by its physical "
            + "address, nvme0's mapping of a second secret, and reads 256 random bus addresses")
        let nic = try machine.dma("nic0"), nvme = try machine.dma("nvme0")
        let own = try machine.secret(), secret = try machine.secret(), nvmeSecret = try machine.secret()
        let ownBus = try machine.map(nic, own, size: 4096, .bidirectional)
        // Separate domains hand out the same IOVAs; a first nvme0 mapping makes the secret's differ from nic0's own.
        let nvmeFirst = try machine.map(nvme, nvmeSecret, size: 4096, .toDevice)
        let nvmeBus = try machine.map(nvme, nvmeSecret, size: 4096, .bidirectional)
        let engine = nic.device.engine
        let shared = machine.shareGroup(nic, nvme)
        let nvmePage = nvmeBus.value & ~0xFFF
        func window(_ address: UInt64) -> ExposureWindow? {
            if shared && (address & ~0xFFF == nvmePage || address & ~0xFFF == nvmeFirst.value & ~0xFFF) { return .sharedGroup }
            return machine.passThroughWindow(nic, address)
        }
        var targets = [ownBus.value &+ 4096, ownBus.value &- 4096, secret.value, nvmeBus.value]
        targets.removeAll { $0 & ~0xFFF == ownBus.value & ~0xFFF }
        if shared { outcome.notes.append("nic0 and nvme0 share a group on \(context.family): one domain for both") }
        for target in targets {
            let pool = machine.shadowPool(reachedBy: nic, at: target, count: 64)
            outcome.record(engine.read(from: IOVirtualAddress(target), count: 64).result, requested: 64, window: window(target),
                           pool: pool)
            outcome.record(engine.write(to: IOVirtualAddress(target), bytes: [UInt8](repeating: 0xEE, count: 64)),
                           requested: 64, window: window(target), pool: pool)
        }
        var generator = SplitMix64(seed: 0x0A77_ACC5)
        targets = (0..<256).map { _ in UInt64.random(in: 0..<(1 << 40), using: &generator) & ~0x3F }
        for target in targets where target & ~0xFFF != ownBus.value & ~0xFFF {
            outcome.record(engine.read(from: IOVirtualAddress(target), count: 64).result, requested: 64, window: window(target),
                           pool: machine.shadowPool(reachedBy: nic, at: target, count: 64))
        }
        if machine.shadows(nic) {
            outcome.notes.append("nic0's neighbouring pages are slots of its own shadow pool, mapped for its whole life: "
                                 + "reaching them is counted as contained (they hold only what nic0 was given, or zeros)")
        }
        try machine.unmap(nic, ownBus, size: 4096, .bidirectional)
        try machine.unmap(nvme, nvmeBus, size: 4096, .bidirectional)
        try machine.unmap(nvme, nvmeFirst, size: 4096, .toDevice)
        if machine.geometry(of: nic)?.outside == .passThrough {
            outcome.notes.append("outside its aperture a GART passes every address to memory: any device reaches any RAM there")
        }
        return outcome
    }

    public static let useAfterUnmap = AttackScenario(
        name: "use-after-unmap",
        summary: "a device keeps using a buffer after the driver unmapped it (its IOTLB entry warmed first)"
    ) { (context) throws(PlatformError) in
        let machine = try AttackPlatform(context)
        var outcome = AttackOutcome(scenario: "use-after-unmap", context: context, attempted:
            "each translated device maps a secret, reads it (so the IOTLB holds it), the driver unmaps it, then the "
            + "device reads and writes the old bus address; 8 rounds per device")
        for name in ["nic0", "nvme0", "legacy-dma", "usb-xhci", "thunderbolt-dev"] {
            let dma = try machine.dma(name)
            guard dma.domainKind?.usesDMALayer == true else { continue }
            if dma.device.isUntrusted, dma.domainKind == .dmaLazy {
                outcome.notes.append("\(name) is untrusted but shares a group whose default domain is lazy: "
                                     + "the strict-for-untrusted rule applies only to the device that creates a group")
            }
            let window: ExposureWindow? = dma.domainKind == .dmaLazy ? .lazyFlush : nil
            if machine.shadows(dma) {
                try useAfterShadowUnmap(machine, dma, &outcome)
                continue
            }
            for round in 0..<8 {
                let secret = try machine.secret(pages: 2)
                let size = 512 + round * 700
                let bus = try machine.map(dma, secret, size: size, .bidirectional)
                _ = dma.device.engine.read(from: bus, count: size)
                try machine.unmap(dma, bus, size: size, .bidirectional)
                outcome.record(dma.device.engine.read(from: bus, count: size).result, requested: size, window: window)
                outcome.record(dma.device.engine.write(to: bus, bytes: [UInt8](repeating: 0xEE, count: size)),
                               requested: size, window: window)
            }
            dma.flushDeferred()
        }
        return outcome
    }

    public static let lazyWindow = AttackScenario(
        name: "lazy-window",
        summary: "a device probes every buffer unmapped since the last flush; the CPU has reused them for secrets"
    ) { (context) throws(PlatformError) in
        let machine = try AttackPlatform(context)
        var outcome = AttackOutcome(scenario: "lazy-window", context: context, attempted:
            "nic0 maps, touches and unmaps 1024 single-page buffers; after each unmap the CPU writes a secret into the freed "
            + "page and the device reads the old bus address; then the driver flushes and the device tries again")
        let nic = try machine.dma("nic0")
        let lazy = nic.domainKind == .dmaLazy
        let pages: UInt64 = 16
        let base = try machine.secret(pages: pages)
        var unmapped: [IOVirtualAddress] = []
        var mostPending = 0, reachableAtOnce = 0
        for index in 0..<1024 {
            let page = base + UInt64(index % Int(pages)) * 4096
            let bus = try machine.map(nic, page, size: 4096, .bidirectional)
            _ = nic.device.engine.write(to: bus, bytes: [UInt8(truncatingIfNeeded: index)])
            try machine.unmap(nic, bus, size: 4096, .bidirectional)
            mostPending = max(mostPending, nic.deferredUnmaps)
            unmapped.append(bus)
            let secret = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }
            do throws(MemoryError) { try machine.platform.memory.write(page, bytes: secret) } catch { throw .memory(error) }
            let (bytes, result) = nic.device.engine.read(from: bus, count: 64)
            outcome.record(attemptOf: 64, faulted: result.fault != nil, leaked: bytes == secret ? 64 : 0,
                           window: lazy ? .lazyFlush : nil,
                           contained: machine.shadowPool(reachedBy: nic, at: bus.value, count: 64) == .own)
            if index % 128 == 127 {
                reachableAtOnce = max(reachableAtOnce, unmapped.suffix(512).filter {
                    nic.device.engine.read(from: $0, count: 1).result.completed
                }.count)
            }
        }
        nic.flushDeferred()
        var afterFlush = 0
        for bus in unmapped {
            let result = nic.device.engine.read(from: bus, count: 64).result
            outcome.record(result, requested: 64, window: nil, pool: machine.shadowPool(reachedBy: nic, at: bus.value, count: 64))
            if result.completed { afterFlush += 1 }
        }
        if !machine.shadows(nic) {
            outcome.notes.append("unmapped ranges waiting for a flush at once: at most \(mostPending) (the flush queue's limit)")
            outcome.notes.append("stale ranges a device could still reach at once: at most \(reachableAtOnce) "
                                 + "(bounded by the flush queue and by the IOTLB's capacity)")
        }
        outcome.notes.append("after flushDeferred: \(afterFlush) of \(unmapped.count) old bus addresses still reachable")
        if machine.shadows(nic) {
            outcome.notes.append("shadow: every old bus address is a slot of nic0's pool, still mapped; none returned the "
                                 + "secret the CPU wrote into the freed page afterwards")
        }
        return outcome
    }

    public static let subPage = AttackScenario(
        name: "sub-page",
        summary: "a device reaches the rest of the page that holds its buffer (a secret shares the page)"
    ) { (context) throws(PlatformError) in
        let machine = try AttackPlatform(context)
        var outcome = AttackOutcome(scenario: "sub-page", context: context, attempted:
            "a page holds a 2 KiB secret and, at offset 2048, a 512-byte buffer mapped for the device; the trusted nic0 and "
            + "the untrusted thunderbolt-dev read and write the whole IOMMU page around it")
        for name in ["nic0", "thunderbolt-dev"] {
            let dma = try machine.dma(name)
            let page = try machine.secret()
            let secret: [UInt8]
            do throws(MemoryError) { secret = try machine.platform.memory.read(page, count: 4096) } catch { throw .memory(error) }
            let bus = try machine.map(dma, page + 2048, size: 512, .bidirectional)
            let window: ExposureWindow? = dma.device.isUntrusted ? nil : .pageGranularity
            let (bytes, result) = dma.device.engine.read(from: IOVirtualAddress(bus.value & ~0xFFF), count: 4096)
            let exposed = bytes.indices.filter { !(2048..<2560).contains($0) && bytes[$0] == secret[$0] }.count
            let ownPool = machine.shadowPool(reachedBy: dma, at: bus.value & ~0xFFF, count: 4096) == .own
            outcome.record(attemptOf: 4096, faulted: result.fault != nil, leaked: exposed > 3000 ? UInt64(exposed) : 0, window: window,
                           contained: ownPool)
            let written = dma.device.engine.write(to: IOVirtualAddress(bus.value & ~0xFFF), bytes: [UInt8](repeating: 0xEE, count: 4096))
            let after: [UInt8]
            do throws(MemoryError) { after = try machine.platform.memory.read(page, count: 4096) } catch { throw .memory(error) }
            let changed = after.indices.filter { !(2048..<2560).contains($0) && after[$0] != secret[$0] }.count
            outcome.record(attemptOf: 4096, faulted: written.fault != nil, leaked: UInt64(changed), window: window, contained: ownPool)
            if ownPool {
                outcome.notes.append("\(name): the page around its buffer is a slot of its own shadow pool: \(exposed) bytes "
                                     + "outside the buffer equal the secret (chance matches with zeros), \(changed) secret bytes changed")
            }
            try machine.unmap(dma, bus, size: 512, .bidirectional)
            dma.flushDeferred()
            if dma.device.isUntrusted, !ownPool, exposed + changed > 0 {
                outcome.notes.append("\(name) is untrusted: the DMA layer does not bounce partial pages yet, so it reached "
                                     + "\(exposed) secret bytes and changed \(changed)")
            }
        }
        return outcome
    }
}
