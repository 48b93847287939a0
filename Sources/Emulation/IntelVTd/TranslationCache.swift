/// A bounded, set-associative translation cache (the IOTLB) as the emulated
/// units keep it: tagged by domain, holding pages of their own size, replaced
/// least-recently-used within a set. It is a plain value so that the unit's
/// lock protects it; it never allocates after creation.
public struct TranslationCache: Sendable {
    public struct Entry: Sendable, Hashable {
        public var domain: UInt32
        /// First bus address of the cached page.
        public var pageBase: UInt64
        public var pageShift: UInt8
        public var physicalBase: UInt64
        public var permissions: AccessPermissions
        var lastUse: UInt32
        var valid: Bool
    }

    public let sets: Int
    public let ways: Int
    private var entries: [Entry]
    private var clock: UInt32 = 0
    /// Which page sizes are present at all, so a lookup probes only those.
    private var shiftsInUse: UInt64 = 0
    /// Valid entries. An empty cache (no device has used a translation since the last
    /// invalidation) answers every invalidation at once, as the hardware would.
    private var validCount = 0

    public init(sets: Int, ways: Int) {
        self.sets = max(1, sets)
        self.ways = max(1, ways)
        entries = Array(repeating: Entry(domain: 0, pageBase: 0, pageShift: 0, physicalBase: 0, permissions: [],
                                         lastUse: 0, valid: false),
                        count: self.sets * self.ways)
    }

    public var capacity: Int { sets * ways }
    public var occupancy: Int { validCount }

    @inline(__always)
    private func setIndex(domain: UInt32, frame: UInt64, shift: UInt8) -> Int {
        var mixed = frame &* 0x9E37_79B9_7F4A_7C15
        mixed ^= UInt64(domain) &* 0xC2B2_AE3D_27D4_EB4F ^ UInt64(shift)
        return Int(truncatingIfNeeded: (mixed >> 29) % UInt64(sets))
    }

    /// The cached translation of `address` in `domain`, if any.
    public mutating func lookup(domain: UInt32, address: UInt64) -> Entry? {
        var shifts = shiftsInUse
        while shifts != 0 {
            let shift = UInt8(shifts.trailingZeroBitCount)
            shifts &= shifts - 1
            let base = (address >> shift) << shift
            let first = setIndex(domain: domain, frame: address >> shift, shift: shift) * ways
            for slot in first..<(first + ways) where entries[slot].valid {
                if entries[slot].pageBase == base, entries[slot].pageShift == shift, entries[slot].domain == domain {
                    clock &+= 1
                    entries[slot].lastUse = clock
                    return entries[slot]
                }
            }
        }
        return nil
    }

    public mutating func insert(domain: UInt32, pageBase: UInt64, pageShift: UInt8, physicalBase: UInt64,
                                permissions: AccessPermissions) {
        let first = setIndex(domain: domain, frame: pageBase >> pageShift, shift: pageShift) * ways
        var victim = first
        for slot in first..<(first + ways) {
            if !entries[slot].valid { victim = slot; break }
            if entries[slot].lastUse < entries[victim].lastUse { victim = slot }
        }
        clock &+= 1
        if !entries[victim].valid { validCount += 1 }
        entries[victim] = Entry(domain: domain, pageBase: pageBase, pageShift: pageShift, physicalBase: physicalBase,
                                permissions: permissions, lastUse: clock, valid: true)
        shiftsInUse |= 1 << UInt64(pageShift)
    }

    /// Drops every entry of `domain` overlapping `first...last`; returns how many.
    /// A small range probes only the sets its pages hash to, so a page-selective
    /// invalidation (every strict unmap) costs a few probes, not a scan of the cache.
    @discardableResult
    public mutating func invalidate(domain: UInt32, first: UInt64, last: UInt64) -> Int {
        guard first <= last, validCount > 0 else { return 0 }
        var shifts = shiftsInUse
        var probes = 0
        while shifts != 0 {
            let shift = UInt64(shifts.trailingZeroBitCount)
            shifts &= shifts - 1
            probes += Int(truncatingIfNeeded: min((last >> shift) - (first >> shift) + 1, 1 << 20))
        }
        if probes <= Self.targetedInvalidationLimit {
            return invalidateByProbing(domain: domain, first: first, last: last)
        }
        return invalidate { entry in
            let entryLast = entry.pageBase &+ ((1 << UInt64(entry.pageShift)) - 1)
            return entry.domain == domain && entry.pageBase <= last && entryLast >= first
        }
    }

    /// Beyond this many candidate pages a full scan is cheaper than probing set by set.
    static let targetedInvalidationLimit = 16

    private mutating func invalidateByProbing(domain: UInt32, first: UInt64, last: UInt64) -> Int {
        var dropped = 0
        var shifts = shiftsInUse
        let (sets, ways) = (self.sets, self.ways)
        entries.withUnsafeMutableBufferPointer { entries in
            while shifts != 0 {
                let shift = UInt8(shifts.trailingZeroBitCount)
                shifts &= shifts - 1
                var frame = first >> shift
                while frame <= last >> shift {
                    var mixed = frame &* 0x9E37_79B9_7F4A_7C15
                    mixed ^= UInt64(domain) &* 0xC2B2_AE3D_27D4_EB4F ^ UInt64(shift)
                    let start = Int(truncatingIfNeeded: (mixed >> 29) % UInt64(sets)) &* ways
                    let base = frame << shift
                    for slot in start..<(start &+ ways) where entries[slot].valid {
                        if entries[slot].pageBase == base, entries[slot].pageShift == shift, entries[slot].domain == domain {
                            entries[slot].valid = false
                            dropped += 1
                        }
                    }
                    if frame == UInt64.max >> shift { break }
                    frame += 1
                }
            }
        }
        forget(dropped)
        return dropped
    }

    /// Counts `dropped` entries gone; an empty cache starts again with no page sizes in use.
    private mutating func forget(_ dropped: Int) {
        validCount -= dropped
        if validCount == 0 { shiftsInUse = 0 }
    }

    @discardableResult
    public mutating func invalidate(domain: UInt32) -> Int { invalidate { $0.domain == domain } }

    @discardableResult
    public mutating func invalidateAll() -> Int { invalidate { _ in true } }

    private mutating func invalidate(where matches: (Entry) -> Bool) -> Int {
        guard validCount > 0 else { return 0 }
        var dropped = 0
        for slot in entries.indices where entries[slot].valid && matches(entries[slot]) {
            entries[slot].valid = false
            dropped += 1
        }
        forget(dropped)
        return dropped
    }
}
