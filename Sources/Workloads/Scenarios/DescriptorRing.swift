import DMA
import Emulation

/// A ring of fixed-size entries in a coherent buffer, made of 64-bit
/// little-endian words: the CPU reads and writes it through its pointer, the
/// device through DMA at the ring's bus address, as NIC descriptor rings and
/// NVMe queues work.
struct DescriptorRing {
    let buffer: CoherentBuffer
    let entryWords: Int
    let count: Int

    var entryBytes: Int { entryWords * 8 }

    /// - Throws: the DMA layer's ``DMAError`` from allocating the coherent buffer.
    init(_ dma: ScenarioDMA, entries: Int, entryWords: Int) throws(DMAError) {
        buffer = try dma.allocateCoherent(size: entries * entryWords * 8)
        self.entryWords = entryWords
        count = entries
    }

    func cpuStore(_ index: Int, word: Int, _ value: UInt64) {
        _ = buffer.store(value, at: index * entryBytes + word * 8)
    }

    func cpuLoad(_ index: Int, word: Int) -> UInt64 {
        buffer.load(at: index * entryBytes + word * 8, as: UInt64.self) ?? 0
    }

    func cpuClear(_ index: Int) {
        for word in 0..<entryWords { cpuStore(index, word: word, 0) }
    }

    /// The device fetches a whole entry; nil when the fetch faulted.
    func deviceFetch(_ index: Int, engine: DMAEngine) -> [UInt64]? {
        let (bytes, result) = engine.read(from: buffer.busAddress + UInt64(index * entryBytes), count: entryBytes)
        guard result.completed else { return nil }
        return (0..<entryWords).map { word in
            bytes[(word * 8)..<(word * 8 + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
    }

    /// The device writes one word of an entry (a status or completion); false when the write faulted.
    func deviceStore(_ index: Int, word: Int, _ value: UInt64, engine: DMAEngine) -> Bool {
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
        return engine.write(to: buffer.busAddress + UInt64(index * entryBytes + word * 8), bytes: bytes).completed
    }
}
