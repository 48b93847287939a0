import Emulation
import Synchronization
import Testing

/// Programs an SMMUv3 by hand, the way a driver would, to pin the hardware
/// model's reading of the specification's formats. Descriptors are written
/// as raw bits so that the tests do not depend on the page-table module.
struct HandBuiltSMMU {
    let memory: PhysicalMemory
    let unit: ARMSMMUUnit
    let streamTable = PhysicalAddress(0x40_0000) // 2^16 STEs × 64 bytes = 4 MiB, aligned to its size
    let commandQueue = PhysicalAddress(0x100_0000)
    let eventQueue = PhysicalAddress(0x100_1000)
    let syncWord = PhysicalAddress(0x100_2000)
    let contextDescriptor = PhysicalAddress(0x100_3000)
    let commandLog2: UInt64 = 4
    var nextTable: UInt64 = 0x200_0000
    var commandProducer: UInt64 = 0
    let requester: PCIAddress
    let interrupts = InterruptCounter()

    /// Page/table descriptor bits: valid + table-or-page, AF, AP[1] (unprivileged access).
    static let pageBits: UInt64 = 0b11 | 1 << 10 | 1 << 6
    static let blockBits: UInt64 = 0b01 | 1 << 10 | 1 << 6

    init(configuration: ARMSMMUUnitConfiguration = .init(), eventLog2: UInt64 = 4) throws {
        memory = try PhysicalMemory(size: 1 << 34)
        unit = ARMSMMUUnit(name: "smmu-test", memory: memory, configuration: configuration)
        requester = try PCIAddress(bus: 3, device: 2, function: 1)
        unit.writeRegister(ARMSMMURegister.streamTableBase, streamTable.value)
        unit.writeRegister(ARMSMMURegister.streamTableConfig, 16) // linear, LOG2SIZE 16
        unit.writeRegister(ARMSMMURegister.commandQueueBase, commandQueue.value | commandLog2)
        unit.writeRegister(ARMSMMURegister.eventQueueBase, eventQueue.value | eventLog2)
        unit.writeRegister(ARMSMMURegister.irqControl, ARMSMMUInterruptControl.eventQueueEnable)
        unit.writeRegister(ARMSMMURegister.cr0, ARMSMMUControl.smmuEnable | ARMSMMUControl.commandQueueEnable
            | ARMSMMUControl.eventQueueEnable)
        let counter = interrupts
        unit.connectEventInterrupt { counter.count.add(1, ordering: .relaxed) }
    }

    var streamID: UInt32 { UInt32(requester.requesterID) }
    var ste: PhysicalAddress { streamTable + UInt64(streamID) * 64 }

    func writeSTE(_ word0: UInt64, for streamID: UInt32? = nil) throws {
        try memory.store64(streamTable + UInt64(streamID ?? self.streamID) * 64, word0)
    }

    /// A stage-1 STE pointing at the CD, and a CD with the given granule, T0SZ and ASID.
    mutating func attachStage1(granule: ARMTranslationGranule, t0sz: UInt64 = 16, asid: UInt64 = 5, ips: UInt64 = 5,
                               extra: UInt64 = ARMSMMUCD.recordFaults) throws -> PhysicalAddress {
        let root = allocateTable(granule)
        try memory.store64(contextDescriptor + 8, root.value)
        try memory.store64(contextDescriptor, t0sz | granule.tg0Encoding << 6 | ARMSMMUCD.valid | ips << 32
            | ARMSMMUCD.aarch64 | extra | asid << 48)
        try writeSTE(ARMSMMUSTE.word0(config: .stage1, contextDescriptor: contextDescriptor.value))
        return root
    }

    mutating func allocateTable(_ granule: ARMTranslationGranule) -> PhysicalAddress {
        nextTable = (nextTable + granule.rawValue - 1) & ~(granule.rawValue - 1)
        defer { nextTable += granule.rawValue }
        return PhysicalAddress(nextTable)
    }

    /// Writes table descriptors down to `level` and the leaf there.
    mutating func map(_ iova: UInt64, leaf: UInt64, level: Int, granule: ARMTranslationGranule, inputBits: Int = 48,
                      root: PhysicalAddress) throws {
        var table = root
        let start = granule.startLevel(inputBits: inputBits)
        for current in start...level {
            let bits = granule.indexBits(atLevel: current, inputBits: inputBits)
            let slot = table + ((iova >> UInt64(granule.shift(atLevel: current))) & ((1 << UInt64(bits)) - 1)) * 8
            if current == level {
                try memory.store64(slot, leaf)
                return
            }
            var entry = try memory.load64(slot)
            if entry == 0 {
                entry = allocateTable(granule).value | 0b11
                try memory.store64(slot, entry)
            }
            table = PhysicalAddress(entry & 0x0000_FFFF_FFFF_F000 & ~(granule.rawValue - 1))
        }
    }

    /// Queues commands and moves PROD.
    mutating func command(_ commands: (UInt64, UInt64)...) throws {
        for (word0, word1) in commands {
            let slot = commandQueue + (commandProducer & ((1 << commandLog2) - 1)) * 16
            try memory.store64(slot, word0)
            try memory.store64(slot + 8, word1)
            commandProducer = (commandProducer + 1) & ((2 << commandLog2) - 1)
        }
        unit.writeRegister(ARMSMMURegister.commandQueueProducer, commandProducer)
    }

    /// CMD_SYNC that writes `token` to the sync word.
    var sync: (UInt64, UInt64) { (ARMSMMUCommand.sync | 1 << 12 | 0xC0DE << 32, syncWord.value) }

    func event(_ index: UInt64) throws -> ARMSMMUEvent? {
        let slot = eventQueue + index * 32
        return ARMSMMUEvent(words: (try memory.load64(slot), try memory.load64(slot + 8), try memory.load64(slot + 16),
                                    try memory.load64(slot + 24)))
    }

    func translate(_ address: UInt64, _ access: BusAccess = .read) -> TranslationOutcome {
        unit.translate(IOVirtualAddress(address), requester: requester, access: access)
    }
}

final class InterruptCounter: Sendable {
    let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
}
