#if canImport(Glibc)
import Glibc
#endif
import DMA
import Emulation
import IOMMUCore

/// A device that does nothing but fault, millions of times, while the other
/// devices keep doing real DMA: the fault logs must stay bounded (overflowing
/// and counting, as hardware does) and the rest of the platform must work.
public enum FaultStorm {
    public struct Report: Sendable, Hashable, Codable {
        public var family: String
        public var strategy: String
        public var faultsAttempted: Int
        /// Accesses that the device saw refused.
        public var faultsRaised: Int
        /// Bytes the storming device moved (must be 0: it was given nothing).
        public var bytesLeaked: UInt64
        /// Bytes it moved through stale entries of a lazy domain it shares with a bystander (the documented window).
        public var bytesThroughLazyWindow: UInt64
        /// What the unit's fault log recorded and what it had to drop.
        public var unitFaultsRecorded: UInt64
        public var unitFaultsOverflowed: UInt64
        /// Faults the driver drained and the IOMMU-API delivered, and how many it keeps for inspection.
        public var faultsDelivered: UInt64
        public var faultsKept: Int
        public var residentBytesBefore: UInt64
        public var residentBytesAfter: UInt64
        /// Checked transfers of the bystander devices during the storm, and how many failed.
        public var bystanderTransfers: Int
        public var bystanderFailures: Int
        /// Random addresses that fell in a shadow pool mapped in the attacker's domain and were drawn again.
        public var shadowPoolDrawsRedrawn: Int
        public var seconds: Double
    }

    /// Resident memory of this process in bytes (0 when /proc is not available).
    public static func residentBytes() -> UInt64 {
        #if canImport(Glibc)
        let descriptor = open("/proc/self/statm", O_RDONLY)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        var text = [UInt8](repeating: 0, count: 128)
        let count = text.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return 0 }
        // statm: total and resident sizes in pages, separated by a space.
        let fields = text.prefix(count).split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = UInt64(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return 0
        #endif
    }

    /// Runs `faults` faulting accesses by nic0, with nvme0 and legacy-dma moving checked data every 512 of them.
    /// - Throws: ``PlatformError`` when the platform cannot be built or the attacker has no translated domain.
    public static func run(family: IOMMUFamily, strategy: ProtectionStrategy, faults: Int) throws(PlatformError) -> Report {
        let clock = ContinuousClock()
        let start = clock.now
        let machine = try AttackPlatform(AttackContext(family: family, strategy: strategy))
        let attacker = try machine.dma("nic0")
        guard let geometry = machine.geometry(of: attacker) else {
            throw .invalidSpecification("nic0 is not translated under \(strategy): nothing can fault")
        }
        let bystanders = [try machine.dma("nvme0"), try machine.dma("legacy-dma")]
        let before = residentBytes()
        var generator = SplitMix64(seed: 0x5702)
        let span = min(geometry.aperture.upperBound - geometry.aperture.lowerBound, (1 << 30) - 1) / PageSize.size4K
        var raised = 0, leaked: UInt64 = 0, staleHits: UInt64 = 0, transfers = 0, failures = 0
        let lazyShared = attacker.domainKind == .dmaLazy && bystanders.contains { machine.shareGroup($0, attacker) }
        let payload = [UInt8](repeating: 0xEE, count: 8)
        let buffer: PhysicalAddress
        do { buffer = try machine.platform.pages.allocate(pages: 2) } catch { throw .memory(error) }
        // Shadow pools stay mapped for their devices' lives: they are not the unmapped addresses the storm aims at.
        let pools = machine.shadowPools(inDomainOf: attacker)
        var redrawn = 0
        for index in 0..<max(0, faults) {
            var address = IOVirtualAddress(geometry.aperture.lowerBound + UInt64.random(in: 0...span, using: &generator) * PageSize.size4K)
            while pools.contains(where: { $0.contains(address.value) }) {
                redrawn += 1
                address = IOVirtualAddress(geometry.aperture.lowerBound + UInt64.random(in: 0...span, using: &generator) * PageSize.size4K)
            }
            let result = index & 1 == 0 ? attacker.device.engine.write(to: address, bytes: payload)
                                        : attacker.device.engine.read(from: address, count: 8).result
            if result.fault != nil { raised += 1 }
            // nic0 has no mapping of its own; in a lazy domain it shares (GART, Calgary bus 0) it may still hit a
            // bystander's unmapped buffer until the flush: the documented lazy window, not a failure.
            if lazyShared { staleHits += UInt64(result.bytesTransferred) } else { leaked += UInt64(result.bytesTransferred) }
            if index % 512 == 511 {
                for bystander in bystanders {
                    transfers += 1
                    if !checkedTransfer(bystander, buffer: buffer, memory: machine.platform.memory, seed: UInt8(truncatingIfNeeded: index)) {
                        failures += 1
                    }
                }
            }
        }
        let unit = machine.platform.units.map(\.unitReport)
        let elapsed = clock.now - start
        return Report(family: family.rawValue, strategy: strategy.name, faultsAttempted: max(0, faults), faultsRaised: raised,
                      bytesLeaked: leaked, bytesThroughLazyWindow: staleHits, unitFaultsRecorded: unit.reduce(0) { $0 + $1.faultsRecorded },
                      unitFaultsOverflowed: unit.reduce(0) { $0 + $1.faultsOverflowed },
                      faultsDelivered: machine.platform.subsystem.faultCount,
                      faultsKept: machine.platform.subsystem.recentFaults.count, residentBytesBefore: before,
                      residentBytesAfter: residentBytes(), bystanderTransfers: transfers, bystanderFailures: failures,
                      shadowPoolDrawsRedrawn: redrawn,
                      seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    /// One write by the device and one read back through the DMA API, checked byte for byte.
    static func checkedTransfer(_ dma: DeviceDMA, buffer: PhysicalAddress, memory: PhysicalMemory, seed: UInt8) -> Bool {
        let pattern = (0..<1500).map { UInt8(truncatingIfNeeded: Int(seed) &+ $0) }
        guard let bus = try? dma.map(buffer + 100, size: pattern.count, direction: .bidirectional) else { return false }
        let wrote = dma.device.engine.write(to: bus, bytes: pattern).completed
        let (back, read) = dma.device.engine.read(from: bus, count: pattern.count)
        let unmapped = (try? dma.unmap(bus, size: pattern.count, direction: .bidirectional)) != nil
        let landed = (try? memory.read(buffer + 100, count: pattern.count)) == pattern
        return wrote && read.completed && back == pattern && unmapped && landed
    }
}

extension AttackScenario {
    public static let faultStorm = AttackScenario(
        name: "fault-storm",
        summary: "a device faults as fast as it can while the others keep moving data"
    ) { (context) throws(PlatformError) in
        var outcome = AttackOutcome(scenario: "fault-storm", context: context, attempted:
            "nic0 reads and writes \(context.stormFaults) unmapped bus addresses in its aperture while nvme0 and legacy-dma "
            + "map, move and check data every 512 faults")
        let report = try FaultStorm.run(family: context.family, strategy: context.strategy, faults: context.stormFaults)
        outcome.attempts = report.faultsAttempted
        outcome.faults = report.faultsRaised
        outcome.blocked = report.faultsRaised
        outcome.bytesAttempted = UInt64(report.faultsAttempted) * 8
        outcome.bytesLeakedUndocumented = report.bytesLeaked
        if report.bytesThroughLazyWindow > 0 { outcome.bytesLeakedInWindows[ExposureWindow.lazyFlush.rawValue] = report.bytesThroughLazyWindow }
        outcome.notes.append("unit fault log: \(report.unitFaultsRecorded) recorded, \(report.unitFaultsOverflowed) dropped on "
                             + "overflow; IOMMU-API: \(report.faultsDelivered) delivered, \(report.faultsKept) kept")
        outcome.notes.append("resident memory \(report.residentBytesBefore >> 20) MiB before, \(report.residentBytesAfter >> 20) MiB after")
        outcome.notes.append("bystanders: \(report.bystanderTransfers - report.bystanderFailures) of \(report.bystanderTransfers) "
                             + "checked transfers correct")
        if report.shadowPoolDrawsRedrawn > 0 {
            outcome.notes.append("\(report.shadowPoolDrawsRedrawn) random addresses fell in a shadow pool mapped in nic0's "
                                 + "domain (mapped, not unmapped) and were drawn again")
        }
        return outcome
    }
}
