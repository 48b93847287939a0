import DMA
import Emulation
import IOMMUCore

/// An untrusted device (behind an external port) scans for other devices'
/// data while victim NICs hold live mappings filled with secrets. Its probes
/// rotate through: the victims' bus addresses (guessing that IOVAs repeat
/// across domains), the victims' physical addresses (as if there were no
/// IOMMU), a sweep over the whole physical address space, writes over the
/// victims' buffers, and reads running off the end of its one legitimate
/// buffer. Reported: what it attempted, what was blocked, what it reached
/// beyond its own buffer, and whether any victim byte changed.
struct MaliciousScanScenario: DeviceScenario {
    static let secretTag: UInt64 = 0x5EC7_E75E_C7E7_5EC7
    static let probeBytes = 64

    struct VictimBuffer {
        var physical: PhysicalAddress
        var bus: IOVirtualAddress
        var size: Int
        var contents: [UInt8]
        var owner: ScenarioDMA
    }

    var victims: [VictimBuffer] = []
    var scanner: ScenarioDMA?
    var ownBuffer: (physical: PhysicalAddress, bus: IOVirtualAddress)?
    var probe: UInt64 = 0
    /// Whether the scanner's domain lets addresses outside its aperture through (GART): then nothing is promised.
    var scannerIsolated = true

    mutating func prepare(_ context: ScenarioContext) throws(ScenarioError) {
        for device in context.devices(named: "victim") {
            let owner = context.dma(device)
            for _ in 0..<context.parameters.queueDepth {
                let size = context.random(in: context.parameters.minSize...context.parameters.maxSize)
                let run = try context.allocatePages(UInt64((size + 4095) / 4096))
                // The secret arrives by DMA, as a received packet would.
                var secret = context.randomBytes(size)
                for word in stride(from: 0, to: size - 7, by: 64) {
                    withUnsafeBytes(of: Self.secretTag.littleEndian) { secret.replaceSubrange(word..<(word + 8), with: $0) }
                }
                let bus: IOVirtualAddress
                do { bus = try owner.map(run, size: size, direction: .fromDevice) } catch {
                    throw .setup("map a victim buffer: \(error)")
                }
                let written = owner.engine.write(to: bus, bytes: secret)
                context.check(written.completed, "victim \(owner.device.name) receives \(size) secret bytes")
                victims.append(VictimBuffer(physical: run, bus: bus, size: size, contents: secret, owner: owner))
            }
        }
        guard let device = context.devices(named: "scanner").first, !victims.isEmpty else {
            throw .setup("the platform needs victims and a scanner")
        }
        let scanner = context.dma(device)
        let page = try context.allocatePages(1)
        do { ownBuffer = (page, try scanner.map(page, size: 4096, direction: .bidirectional)) } catch {
            throw .setup("map the scanner's own buffer: \(error)")
        }
        if let domain = scanner.dma.managed?.group.defaultDomain {
            scannerIsolated = domain.kind.translates && domain.geometry.outside == .blocked
            context.note("the scanner is \(device.device.isUntrusted ? "untrusted" : "trusted") and in a \(domain.kind.rawValue) domain")
        } else {
            scannerIsolated = false
        }
        self.scanner = scanner
    }

    mutating func step(_ context: ScenarioContext) {
        guard let scanner, let ownBuffer else { return }
        let victim = victims[Int(probe % UInt64(victims.count))]
        let memorySize = context.memory.size
        let address: UInt64
        var isWrite = false
        switch probe % 5 {
        case 0: address = victim.bus.value
        case 1: address = victim.physical.value
        case 2:
            let stride = max(4096, memorySize / UInt64(max(1, context.parameters.operations)))
            address = ((probe / 5) &* stride) % memorySize + UInt64(context.random(in: 0...4031))
        case 3:
            address = victim.physical.value
            isWrite = true
        default: address = ownBuffer.bus.value + 4096 + UInt64(context.random(in: 0...4031))
        }
        probe += 1
        context.count("probesAttempted")
        let ownRange = ownBuffer.bus.value..<(ownBuffer.bus.value + 4096)
        if isWrite {
            let result = scanner.engine.write(to: IOVirtualAddress(address),
                                              bytes: [UInt8](repeating: 0xEE, count: Self.probeBytes))
            if result.bytesTransferred == 0 {
                context.count("probesBlocked")
            } else if !ownRange.contains(address) {
                context.count("bytesWrittenOutside", UInt64(result.bytesTransferred))
            }
            context.count("writeProbes")
            return
        }
        let (bytes, _) = scanner.engine.read(from: IOVirtualAddress(address), count: Self.probeBytes)
        if bytes.isEmpty { context.count("probesBlocked") }
        if ownRange.contains(address) { return }
        if !bytes.isEmpty {
            context.count("bytesLeaked", UInt64(bytes.count))
            if Self.containsSecret(bytes) { context.count("secretsSeen") }
        }
    }

    static func containsSecret(_ bytes: [UInt8]) -> Bool {
        let tag = withUnsafeBytes(of: secretTag.littleEndian) { Array($0) }
        guard bytes.count >= tag.count else { return false }
        return (0...(bytes.count - tag.count)).contains { bytes[$0..<($0 + tag.count)].elementsEqual(tag) }
    }

    mutating func finish(_ context: ScenarioContext) {
        let leaked = context.findings["bytesLeaked", default: 0]
        let writtenOutside = context.findings["bytesWrittenOutside", default: 0]
        var corrupted: UInt64 = 0
        for victim in victims {
            let now = (try? context.memory.read(victim.physical, count: victim.size)) ?? []
            corrupted += UInt64(zip(now, victim.contents).filter { $0 != $1 }.count + abs(now.count - victim.contents.count))
        }
        context.findings["victimBytesCorrupted"] = corrupted
        let attempted = context.findings["probesAttempted", default: 0]
        let blocked = context.findings["probesBlocked", default: 0]
        if scannerIsolated {
            context.check(leaked == 0 && writtenOutside == 0, "the scanner reached nothing beyond its own buffer")
            context.check(corrupted == 0, "no victim byte changed")
            context.check(context.findings["secretsSeen", default: 0] == 0, "the scanner saw no secret")
            context.check(blocked > 0, "the IOMMU blocked the scanner's probes")
            let faults = context.platform.subsystem.recentFaults.filter { $0.requester == scanner?.device.busRequester }
            context.check(!faults.isEmpty, "the IOMMU-API delivered faults naming the scanner")
        } else {
            context.note("the scanner's domain does not block addresses outside its window: \(leaked) bytes read and \(writtenOutside) written beyond its buffer, \(corrupted) victim bytes changed: this IOMMU cannot isolate it")
        }
        context.note("the scanner made \(attempted) probes; \(blocked) were blocked; \(leaked) bytes leaked")
        for victim in victims {
            do { try victim.owner.unmap(victim.bus, size: victim.size, direction: .fromDevice) } catch {
                context.check(false, "unmap a victim buffer: \(error)")
            }
        }
        if let scanner, let ownBuffer {
            do { try scanner.unmap(ownBuffer.bus, size: 4096, direction: .bidirectional) } catch {
                context.check(false, "unmap the scanner's buffer: \(error)")
            }
        }
        context.releaseAllPages()
    }
}
