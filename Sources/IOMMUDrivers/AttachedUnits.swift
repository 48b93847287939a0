import CSupport
import Emulation
import Synchronization

/// The hardware units a domain is attached through, as each driver's per-unit record (an
/// invalidation queue, a unit state). Attachments only add (a unit stays listed once a device
/// behind it used the domain, which at worst costs a spare invalidation), so the invalidation
/// path reads the list with one acquire load and calls each member without a lock or a retain.
final class AttachedUnits<Member: AnyObject & Sendable>: Sendable {
    static var capacity: Int { 16 }
    /// Keeps every member alive for the raw slots, and makes adding idempotent.
    private let owners = HostLock<[ObjectIdentifier: Member]>([:])
    /// Unretained member references published with release stores (CSupport atomics on raw words).
    nonisolated(unsafe) private let slots: UnsafeMutableRawPointer =
        .allocate(byteCount: AttachedUnits<Member>.capacity * 8, alignment: 8)
    private let count = Atomic<Int>(0)
    private let overflow = HostLock<[Member]>([])

    deinit { slots.deallocate() }

    /// Adds `member` for `unit` once.
    func add(_ unit: ObjectIdentifier, _ member: Member) {
        owners.withLock { owners in
            guard owners[unit] == nil else { return }
            owners[unit] = member
            let index = count.load(ordering: .relaxed)
            if index < Self.capacity {
                csupport_store64_release(slots + index * 8, UInt64(UInt(bitPattern: Unmanaged.passUnretained(member).toOpaque())))
                count.store(index + 1, ordering: .releasing)
            } else {
                overflow.withLock { $0.append(member) }
            }
        }
    }

    var isEmpty: Bool { count.load(ordering: .acquiring) == 0 }

    /// Calls `body` with every member, borrowed.
    @inline(__always)
    func forEach(_ body: (Member) -> Void) {
        let listed = count.load(ordering: .acquiring)
        for index in 0..<listed {
            let bits = UInt(csupport_load64_acquire(slots + index * 8))
            Unmanaged<Member>.fromOpaque(UnsafeRawPointer(bitPattern: bits).unsafelyUnwrapped)._withUnsafeGuaranteedRef(body)
        }
        if listed == Self.capacity {
            for member in overflow.withLock({ $0 }) { body(member) }
        }
    }
}

/// A driver's queue lock (Linux's `qi->q_lock`, `cmdq` lock): held for a few stores and one
/// register write, so spinning is cheaper than sleeping in a futex.
struct QueueLock: ~Copyable, @unchecked Sendable {
    private let locked = Atomic<Bool>(false)

    @inline(__always)
    func lock() {
        var spins = 0
        while !locked.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            // Wait on plain loads: a compare-and-swap per round would steal the line from the holder.
            while locked.load(ordering: .relaxed) {
                spins &+= 1
                if spins & 1023 == 0 { sched_yield() } else { csupport_spin_hint() }
            }
        }
    }

    @inline(__always)
    func unlock() { locked.store(false, ordering: .releasing) }
}
