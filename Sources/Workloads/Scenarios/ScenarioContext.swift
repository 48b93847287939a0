import DMA
import Emulation
import IOMMUCore

/// Everything one scenario run works with and records into: the platform,
/// its parameters, a seeded generator, the checks that passed or failed,
/// latencies and findings. One run uses it from one thread.
public final class ScenarioContext {
    public let platform: EmulatedPlatform
    public let parameters: ScenarioParameters
    var generator: SplitMix64
    var latencies = LatencyRecorder()
    /// I/O virtual address space held by the scenario's live mappings.
    var iovaBytesInUse: UInt64 = 0
    private(set) var checksPassed = 0
    private(set) var checksFailed = 0
    private(set) var notes: [String] = []
    var findings: [String: UInt64] = [:]
    /// Bytes moved by devices that were removed during the run (their counters left with them).
    var retiredBytesMoved: UInt64 = 0
    /// Physical runs the scenario allocated and not yet freed, by start address.
    private var ownedPages: [PhysicalAddress: UInt64] = [:]
    static let noteLimit = 24

    init(platform: EmulatedPlatform, parameters: ScenarioParameters) {
        self.platform = platform
        self.parameters = parameters
        generator = SplitMix64(seed: parameters.seed)
    }

    var memory: PhysicalMemory { platform.memory }

    func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        if condition { checksPassed += 1 } else {
            checksFailed += 1
            note("FAILED: " + what())
        }
    }

    func note(_ text: String) {
        if notes.count < Self.noteLimit { notes.append(text) }
    }

    func count(_ finding: String, _ amount: UInt64 = 1) { findings[finding, default: 0] += amount }

    func random(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &generator) }
    func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = generator.next()
            for _ in 0..<min(8, count - index) {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }

    /// The scenario's DMA handle for `device`.
    func dma(_ device: DeviceDMA) -> ScenarioDMA { ScenarioDMA(dma: device, context: self) }

    /// The scenario devices of the platform, in address order.
    func devices(named prefix: String) -> [DeviceDMA] {
        platform.devices.filter { $0.name.hasPrefix(prefix) }.compactMap { platform.dma[$0.address] }
    }

    /// Contiguous zeroed pages for buffers, remembered so that ``releaseAllPages()`` can give them back.
    /// - Throws: ``ScenarioError/setup(_:)`` when memory is exhausted.
    func allocatePages(_ count: UInt64, zone: PhysicalPageAllocator.Zone = .any) throws(ScenarioError) -> PhysicalAddress {
        do {
            let address = try platform.pages.allocate(pages: count, zone: zone)
            ownedPages[address] = count
            return address
        } catch { throw .setup("allocate \(count) pages in \(zone): \(error)") }
    }

    func freePages(_ address: PhysicalAddress) {
        guard let count = ownedPages.removeValue(forKey: address) else { return }
        do { try platform.pages.free(address, pages: count) } catch { check(false, "free \(count) pages at \(address): \(error)") }
    }

    func releaseAllPages() {
        for address in Array(ownedPages.keys) { freePages(address) }
    }
}
