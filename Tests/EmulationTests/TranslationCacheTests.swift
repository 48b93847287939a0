import Emulation
import Testing

@Suite struct TranslationCacheTests {
    @Test func holdsPagesOfEachSizeAndForgetsOnInvalidation() {
        var cache = TranslationCache(sets: 4, ways: 2)
        cache.insert(domain: 1, pageBase: 0x20_0000, pageShift: 21, physicalBase: 0x4000_0000, permissions: .readWrite)
        cache.insert(domain: 1, pageBase: 0x1000, pageShift: 12, physicalBase: 0x9000, permissions: .read)
        #expect(cache.lookup(domain: 1, address: 0x2F_F123)?.physicalBase == 0x4000_0000)
        #expect(cache.lookup(domain: 1, address: 0x1FFF)?.permissions == .read)
        #expect(cache.lookup(domain: 2, address: 0x1FFF) == nil)
        #expect(cache.invalidate(domain: 1, first: 0x2F_F000, last: 0x2F_FFFF) == 1) // a 4K flush inside the 2M page drops it
        #expect(cache.lookup(domain: 1, address: 0x20_0000) == nil)
        #expect(cache.lookup(domain: 1, address: 0x1000) != nil)
    }

    @Test func isBoundedAndEvictsLeastRecentlyUsed() {
        var cache = TranslationCache(sets: 1, ways: 4)
        for page in 0..<16 as Range<UInt64> {
            cache.insert(domain: 1, pageBase: page << 12, pageShift: 12, physicalBase: page << 12, permissions: .read)
        }
        #expect(cache.occupancy == 4)
        #expect(cache.lookup(domain: 1, address: 15 << 12) != nil)
        #expect(cache.lookup(domain: 1, address: 0) == nil)
    }

    /// The count of valid entries answers empty-cache invalidations at once; it must stay exact
    /// through refills of a slot, every kind of invalidation and a cache that empties and refills.
    @Test func occupancyStaysExactThroughInvalidationsAndRefills() {
        var cache = TranslationCache(sets: 1, ways: 4) // one set: nothing is evicted here
        #expect(cache.invalidate(domain: 1, first: 0, last: .max) == 0)
        #expect(cache.invalidateAll() == 0)
        cache.insert(domain: 1, pageBase: 0x1000, pageShift: 12, physicalBase: 0x5000, permissions: .read)
        cache.insert(domain: 1, pageBase: 0x1000, pageShift: 12, physicalBase: 0x6000, permissions: .read)
        cache.insert(domain: 2, pageBase: 0x40_0000, pageShift: 21, physicalBase: 0x80_0000, permissions: .write)
        #expect(cache.occupancy == 3)
        #expect(cache.invalidate(domain: 2) == 1)
        #expect(cache.occupancy == 2)
        #expect(cache.invalidate(domain: 1, first: 0x1000, last: 0x1FFF) == 2)
        #expect(cache.occupancy == 0)
        // Emptied: the 2 MiB size is forgotten, and a 4 KiB entry inserted now is still found.
        cache.insert(domain: 1, pageBase: 0x3000, pageShift: 12, physicalBase: 0x7000, permissions: .readWrite)
        #expect(cache.lookup(domain: 1, address: 0x3ABC)?.physicalBase == 0x7000)
        #expect(cache.lookup(domain: 2, address: 0x40_0000) == nil)
        #expect(cache.invalidateAll() == 1)
        #expect(cache.occupancy == 0)
    }
}
