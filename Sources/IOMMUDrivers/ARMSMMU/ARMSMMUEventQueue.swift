import Emulation
import IOMMUCore

/// The driver's side of an SMMUv3 event queue: a ring of 32-byte records the
/// unit fills at EVENTQ_PROD and the driver consumes by moving EVENTQ_CONS.
final class ARMSMMUEventQueue: Sendable {
    let unit: ARMSMMUUnit
    let memory: PhysicalMemory
    let base: PhysicalAddress
    let log2Entries: Int
    /// CONS as the driver last wrote it, and how many overflows it has acknowledged.
    private let state = HostLock<(consumer: UInt64, overflows: UInt64)>((0, 0))

    /// Allocates a one-page queue (128 records) and programs EVENTQ_BASE, PROD and CONS.
    /// - Throws: ``MemoryError`` when no page is free.
    init(unit: ARMSMMUUnit, pages: PhysicalPageAllocator) throws(MemoryError) {
        self.unit = unit
        memory = pages.memory
        let supported = Int((unit.readRegister(ARMSMMURegister.idr1) >> ARMSMMUIdentification.eventQueueSizeShift) & 0x1F)
        log2Entries = min(7, supported)
        base = try pages.allocate()
        unit.writeRegister(ARMSMMURegister.eventQueueBase, base.value | UInt64(log2Entries))
        unit.writeRegister(ARMSMMURegister.eventQueueProducer, 0)
        unit.writeRegister(ARMSMMURegister.eventQueueConsumer, 0)
    }

    /// Overflows the driver has seen (the unit dropped events because the queue was full).
    var overflowsSeen: UInt64 { state.withLock { $0.overflows } }

    /// Reads every record from CONS to PROD, hands CONS back to the unit and
    /// acknowledges an overflow. Returns the records, oldest first.
    func drain() -> [ARMSMMUEvent] {
        state.withLock { state in
            let producer = unit.readRegister(ARMSMMURegister.eventQueueProducer)
            let entries = UInt64(1) << UInt64(log2Entries)
            let mask = (entries << 1) - 1
            var events: [ARMSMMUEvent] = []
            while state.consumer != producer & mask {
                let slot = base + (state.consumer & (entries - 1)) * ARMSMMUQueue.eventBytes
                if let word0 = try? memory.load64(slot), let word1 = try? memory.load64(slot + 8),
                   let word2 = try? memory.load64(slot + 16), let word3 = try? memory.load64(slot + 24),
                   let event = ARMSMMUEvent(words: (word0, word1, word2, word3)) {
                    events.append(event)
                }
                state.consumer = (state.consumer + 1) & mask
            }
            let overflowFlag = producer & ARMSMMUQueue.overflowFlag
            let acknowledged = unit.readRegister(ARMSMMURegister.eventQueueConsumer) & ARMSMMUQueue.overflowFlag
            if overflowFlag != acknowledged { state.overflows += 1 }
            unit.writeRegister(ARMSMMURegister.eventQueueConsumer, state.consumer | overflowFlag)
            return events
        }
    }
}

extension ARMSMMUDriver {
    /// The event-queue interrupt handler: drain the queue and hand each
    /// fault to the core.
    func drainEvents(of state: UnitState) {
        let events = state.events.drain()
        guard let faultSink = sinkForDelivery else { return }
        for event in events {
            faultSink.deliver(IOMMUFault(
                requester: PCIAddress(segment: 0, requesterID: UInt16(truncatingIfNeeded: event.streamID)),
                address: event.address, access: event.isRead ? .read : .write, reason: event.type.generic,
                hardwareReason: "SMMU event \(hex(UInt64(event.type.rawValue))) \(event.type)", unit: state.unit.name))
        }
    }

    /// Event-queue overflows the driver has acknowledged, per unit name.
    public var eventQueueOverflows: [String: UInt64] {
        Dictionary(uniqueKeysWithValues: hardware.values.map { ($0.unit.name, $0.events.overflowsSeen) })
    }
}
