#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Emulation

/// The physical memory whose contents the reference model knows byte for
/// byte: a shadow copy kept beside each region. A device write that lands
/// anywhere the model did not predict shows up as a difference between a
/// region and its shadow.
final class KnownMemory {
    struct Region {
        var base: UInt64
        var count: UInt64
        var shadow: UnsafeMutableRawPointer
        var contains: (UInt64) -> Bool { { $0 >= self.base && $0 - self.base < self.count } }
    }

    let memory: PhysicalMemory
    private(set) var regions: [Region] = []

    init(memory: PhysicalMemory) { self.memory = memory }

    deinit { for region in regions { region.shadow.deallocate() } }

    /// Starts tracking `count` bytes at `base`, filling memory and shadow with `generator`'s bytes.
    func track(base: UInt64, count: UInt64, filling generator: inout SplitMix64) throws(MemoryError) {
        let target = try memory.pointer(to: PhysicalAddress(base), count: count)
        let shadow = UnsafeMutableRawPointer.allocate(byteCount: Int(count), alignment: 8)
        var offset = 0
        while offset < Int(count) {
            shadow.storeBytes(of: generator.next(), toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        target.copyMemory(from: shadow, byteCount: Int(count))
        regions.append(Region(base: base, count: count, shadow: shadow))
    }

    /// Starts tracking `count` bytes at `base` that must be zero now; false (tracking nothing) when they are not.
    func trackZeroed(base: UInt64, count: UInt64) throws(MemoryError) -> Bool {
        let target = try memory.pointer(to: PhysicalAddress(base), count: count)
        let shadow = UnsafeMutableRawPointer.allocate(byteCount: Int(count), alignment: 8)
        shadow.initializeMemory(as: UInt8.self, repeating: 0, count: Int(count))
        guard memcmp(target, shadow, Int(count)) == 0 else {
            shadow.deallocate()
            return false
        }
        regions.append(Region(base: base, count: count, shadow: shadow))
        return true
    }

    /// Copies `count` tracked bytes from `source` to `destination` in the shadow, as a CPU copy does in
    /// memory; false (copying nothing) when either range is not tracked.
    func copy(from source: UInt64, to destination: UInt64, count: UInt64) -> Bool {
        guard let from = regions.first(where: { source >= $0.base && source - $0.base < $0.count }),
              count <= from.count - (source - from.base),
              let to = regions.first(where: { destination >= $0.base && destination - $0.base < $0.count }),
              count <= to.count - (destination - to.base) else { return false }
        (to.shadow + Int(destination - to.base)).copyMemory(from: from.shadow + Int(source - from.base), byteCount: Int(count))
        return true
    }

    /// Stops tracking the region that starts at `base`.
    func forget(base: UInt64) {
        guard let index = regions.firstIndex(where: { $0.base == base }) else { return }
        regions[index].shadow.deallocate()
        regions.remove(at: index)
    }

    /// Whether every byte of `first..<first+count` is tracked.
    func knows(_ first: UInt64, count: UInt64) -> Bool {
        regions.contains { first >= $0.base && first - $0.base <= $0.count && count <= $0.count - (first - $0.base) }
    }

    /// Records bytes a device wrote; returns false if they are not all tracked.
    @discardableResult
    func record(_ first: UInt64, bytes: UnsafeRawBufferPointer) -> Bool {
        guard let region = regions.first(where: { first >= $0.base && first - $0.base < $0.count }),
              UInt64(bytes.count) <= region.count - (first - region.base), let source = bytes.baseAddress else { return false }
        (region.shadow + Int(first - region.base)).copyMemory(from: source, byteCount: bytes.count)
        return true
    }

    /// Whether memory equals the shadow over `count` tracked bytes at `first`.
    func matches(_ first: UInt64, count: Int) -> Bool {
        guard let region = regions.first(where: { first >= $0.base && first - $0.base < $0.count }),
              UInt64(count) <= region.count - (first - region.base),
              let actual = try? memory.pointer(to: PhysicalAddress(first), count: UInt64(count)) else { return false }
        return memcmp(actual, region.shadow + Int(first - region.base), count) == 0
    }

    /// The first tracked address whose memory differs from the shadow, nil when all agree.
    func firstDifference() -> UInt64? {
        for region in regions {
            guard let actual = try? memory.pointer(to: PhysicalAddress(region.base), count: region.count) else {
                return region.base
            }
            if memcmp(actual, region.shadow, Int(region.count)) == 0 { continue }
            for offset in 0..<Int(region.count)
            where actual.load(fromByteOffset: offset, as: UInt8.self) != region.shadow.load(fromByteOffset: offset, as: UInt8.self) {
                return region.base + UInt64(offset)
            }
        }
        return nil
    }
}
