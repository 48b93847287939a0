/// A fixed number of record slots used round robin, as the aperture IOMMUs'
/// error latches are modelled: a record goes into the next slot; when that
/// slot still holds an unread record the new one is dropped and counted, and
/// the overflow flag stays set until software clears it (VT-d's fault
/// recording behaves the same way). Software frees a slot by clearing it.
struct BoundedRecordLog<Record: Equatable & Sendable>: Sendable {
    private(set) var slots: [Record?]
    private(set) var nextIndex = 0
    private(set) var overflowed = false
    private(set) var dropped: UInt64 = 0

    /// Between 1 and 64 slots.
    init(capacity: Int) { slots = Array(repeating: nil, count: max(1, min(capacity, 64))) }

    var pending: Bool { slots.contains { $0 != nil } }

    /// Returns false, counting the drop, when the next slot is still occupied.
    mutating func record(_ record: Record) -> Bool {
        guard slots[nextIndex] == nil else {
            overflowed = true
            dropped += 1
            return false
        }
        slots[nextIndex] = record
        nextIndex = (nextIndex + 1) % slots.count
        return true
    }

    mutating func clear(slot: Int) {
        guard slots.indices.contains(slot) else { return }
        slots[slot] = nil
    }

    mutating func clearOverflow() { overflowed = false }
}
