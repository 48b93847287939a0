import IOVA

/// Linux 6.12's per-CPU IOVA flush queue of a lazy (DMA-FQ) domain, as far
/// as it decides when and on which CPU an unmapped IOVA is freed:
/// queue_iova first frees the entries an earlier flush completed, flushes
/// when the 256-entry ring is full, and arms a 10 ms timer that flushes
/// and frees every CPU's queue (on the CPU that armed it).
/// The timer's jiffy rounding is not known from a trace: it fires exactly 10 ms after being armed.
struct LinuxFlushQueueModel {
    static let ringEntries = 256
    static let timeoutMicros: UInt64 = 10_000

    private struct Entry { var address: UInt64; var bytes: UInt64; var counter: UInt64 }
    private var queues: [[Entry]]
    private var startCount: UInt64 = 0, finishCount: UInt64 = 0
    private var timer: (deadline: UInt64, cpu: Int)?

    init(cpus: Int) { queues = Array(repeating: [], count: max(1, cpus)) }

    private func slot(_ cpu: Int) -> Int { min(max(cpu, 0), queues.count - 1) }

    private mutating func flush() {
        startCount += 1
        finishCount += 1
    }

    private mutating func freeCompleted(_ queue: Int, cpu: Int, into allocator: LinuxIOVAAllocator, failures: inout Int) {
        var kept = 0
        while kept < queues[queue].count, queues[queue][kept].counter < finishCount {
            let entry = queues[queue][kept]
            do { try allocator.free(address: entry.address, size: entry.bytes, cpu: cpu) } catch { failures += 1 }
            kept += 1
        }
        queues[queue].removeFirst(kept)
    }

    /// queue_iova at `now` on `cpu`.
    mutating func enqueue(address: UInt64, bytes: UInt64, cpu: Int, now: UInt64, allocator: LinuxIOVAAllocator,
                          failures: inout Int) {
        let queue = slot(cpu)
        freeCompleted(queue, cpu: cpu, into: allocator, failures: &failures)
        if queues[queue].count >= Self.ringEntries - 1 {
            flush()
            freeCompleted(queue, cpu: cpu, into: allocator, failures: &failures)
        }
        queues[queue].append(Entry(address: address, bytes: bytes, counter: startCount))
        if timer == nil { timer = (now + Self.timeoutMicros, cpu) }
    }

    /// Runs the timer if it is due at `now`.
    mutating func advance(to now: UInt64, allocator: LinuxIOVAAllocator, failures: inout Int) {
        guard let armed = timer, armed.deadline <= now else { return }
        timer = nil
        flush()
        for queue in queues.indices { freeCompleted(queue, cpu: armed.cpu, into: allocator, failures: &failures) }
    }
}
