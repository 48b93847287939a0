import Emulation
import IOMMUCore
import IOMMUDrivers
import Testing

/// The leaf-page array is an optimisation only: with it and without it the
/// domain must answer every operation the same way.
@Suite struct AMDViLeafArrayTests {
    /// A small deterministic generator (SplitMix64).
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }
    }

    enum Outcome: Equatable { case mapped, unmapped(UInt64), refused(IOMMUError) }

    /// Areas where operations collide often: low window, just below 4 GiB, outside both windows, top window.
    static let areas: [UInt64] = [0x1000_0000, 0xFFC0_0000, 0x40_0000_0000, (1 << 39) - 0x80_0000]
    static let sizes: [UInt64] = [0x1000, 0x1000, 0x1000, 0x2000, 0x3000, 0x1_0000, 0x10_0000, 0x20_0000, 0x40_0000]

    @Test(arguments: [1, 2, 3] as [UInt64])
    func randomMapUnmapSequencesGiveIdenticalResultsWithAndWithoutTheArray(seed: UInt64) throws {
        let withArray = try AMDViBed()
        let withoutArray = try AMDViBed(options: AMDViDriverOptions(leafArray: false))
        let fast = try withArray.domain(of: withArray.nic)
        let walking = try withoutArray.domain(of: withoutArray.nic)
        #expect((fast as? AMDViDomain)?.usesLeafArray == true)
        #expect((walking as? AMDViDomain)?.usesLeafArray == false)

        var random = Random(state: seed)
        for step in 0..<1500 {
            let area = Self.areas[Int(random.below(UInt64(Self.areas.count)))]
            let size = Self.sizes[Int(random.below(UInt64(Self.sizes.count)))]
            let iova = area + random.below(0x80_0000 / 0x1000) * 0x1000
            let physical = 0x1_0000_0000 + random.below(0x4000) * 0x1000
            let isMap = random.below(5) < 3
            let results = [fast, walking].map { domain -> Outcome in
                do throws(IOMMUError) {
                    if isMap {
                        try domain.map(iova: IOVirtualAddress(iova), physical: PhysicalAddress(physical), size: size,
                                       permissions: step % 3 == 0 ? .read : .readWrite)
                        return .mapped
                    }
                    return .unmapped(try domain.unmap(iova: IOVirtualAddress(iova), size: size))
                } catch { return .refused(error) }
            }
            #expect(results[0] == results[1], "step \(step): \(size) bytes at \(hex(iova))")
            if results[0] != results[1] { return }
        }
        for area in Self.areas {
            for page in stride(from: area, to: area + 0x100_0000, by: 0x1000) {
                #expect(fast.lookup(page) == walking.lookup(page), "\(hex(page))")
            }
        }
        #expect((fast as? AMDViDomain)?.leafTablesRecorded ?? 0 > 0)
    }

    @Test func aLargePageOverAnEmptiedLeafTableDoesNotLeaveTheArrayPointingAtIt() throws {
        let bed = try AMDViBed()
        let domain = try bed.domain(of: bed.nic)
        let first = try bed.pages.allocate()
        try domain.map(iova: IOVirtualAddress(0x20_3000), physical: first, size: 0x1000, permissions: .readWrite)
        try domain.unmap(iova: IOVirtualAddress(0x20_3000), size: 0x1000)
        // The now empty leaf table gives way to a 2 MiB page (and is freed) ...
        let large = try bed.pages.allocate(pages: 512, alignment: 1 << 21)
        try domain.map(iova: IOVirtualAddress(0x20_0000), physical: large, size: 1 << 21, permissions: .readWrite)
        try domain.unmap(iova: IOVirtualAddress(0x20_0000), size: 1 << 21)
        // ... so a new 4 KiB map must build and record a new leaf table the hardware reaches.
        let second = try bed.pages.allocate()
        try bed.memory.write(second, bytes: [0xA5])
        try domain.map(iova: IOVirtualAddress(0x20_3000), physical: second, size: 0x1000, permissions: .readWrite)
        #expect(bed.nic.engine.read(from: IOVirtualAddress(0x20_3000), count: 1).bytes == [0xA5])
        #expect(domain.translate(IOVirtualAddress(0x20_3000)) == second)
    }

    @Test func onlyDMADomainsKeepAnArray() throws {
        let bed = try AMDViBed()
        let unmanaged = try bed.driver.makeDomain(.unmanaged, for: bed.nic)
        #expect((unmanaged as? AMDViDomain)?.usesLeafArray == false)
        let identity = try bed.driver.makeDomain(.identity, for: bed.nic)
        #expect((identity as? AMDViDomain)?.usesLeafArray == false)
    }
}
