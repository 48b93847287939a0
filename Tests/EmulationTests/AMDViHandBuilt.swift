import Emulation

/// Programs an AMD-Vi unit by hand, the way a driver would, to pin the
/// hardware model's reading of the specification's formats.
struct HandBuiltAMDVi {
    let memory: PhysicalMemory
    let unit: AMDViUnit
    /// One page of device table: 128 entries, device IDs 0...127.
    let deviceTable = PhysicalAddress(0x10_0000)
    let commands = PhysicalAddress(0x10_1000)
    let events = PhysicalAddress(0x10_2000)
    let waitWord = PhysicalAddress(0x10_3000)
    var nextTable: UInt64 = 0x20_0000
    var commandTail: UInt64 = 0
    /// Device ID 0x08 (00:01.0).
    let requester: PCIAddress
    static let domain: UInt64 = 0x2A

    init(configuration: AMDViUnitConfiguration = .init()) throws {
        memory = try PhysicalMemory(size: 1 << 32)
        unit = AMDViUnit(name: "amd-vi-test", memory: memory, configuration: configuration)
        requester = try PCIAddress(bus: 0, device: 1, function: 0)
        unit.writeRegister(AMDViRegister.deviceTableBase, deviceTable.value | 0) // size field 0: one page
        unit.writeRegister(AMDViRegister.commandBufferBase, commands.value | 8 << 56)
        unit.writeRegister(AMDViRegister.eventLogBase, events.value | 8 << 56)
        unit.writeRegister(AMDViRegister.control, AMDViControl.iommuEnable | AMDViControl.commandBufferEnable
                           | AMDViControl.eventLogEnable | AMDViControl.eventInterruptEnable)
    }

    var entry: PhysicalAddress { deviceTable + UInt64(requester.requesterID) * 32 }

    mutating func allocateTable() -> PhysicalAddress {
        defer { nextTable += 0x1000 }
        return PhysicalAddress(nextTable)
    }

    /// Writes the requester's device table entry: V, TV, the mode and root, IR/IW, domain 0x2A.
    func writeEntry(mode: UInt64, root: PhysicalAddress = PhysicalAddress(0), extraFirst: UInt64 = 0,
                    extraSecond: UInt64 = 0) throws {
        try memory.store64(entry + 8, Self.domain | extraSecond)
        try memory.store64(entry, AMDViDTE.valid | AMDViDTE.translationValid | mode << 9 | root.value
                           | AMDViDTE.readPermission | AMDViDTE.writePermission | extraFirst)
    }

    /// A directory entry pointing at `table` of level `next`.
    static func directory(_ table: PhysicalAddress, next: UInt64) -> UInt64 {
        table.value | next << 9 | 1 | 1 << 61 | 1 << 62
    }

    func store(_ table: PhysicalAddress, index: UInt64, _ value: UInt64) throws {
        try memory.store64(table + index * 8, value)
    }

    func read(_ iova: UInt64, access: BusAccess = .read) -> TranslationOutcome {
        unit.translate(IOVirtualAddress(iova), requester: requester, access: access)
    }

    /// Puts commands into the buffer and moves the tail.
    mutating func submit(_ commandWords: [(UInt64, UInt64)]) throws {
        for (low, high) in commandWords {
            try memory.store64(commands + commandTail * 16, low)
            try memory.store64(commands + commandTail * 16 + 8, high)
            commandTail = (commandTail + 1) % 256
        }
        unit.writeRegister(AMDViRegister.commandBufferTail, commandTail * 16)
    }

    /// Events between the log's head and tail, decoded from memory.
    func loggedEvents() throws -> [AMDViEvent] {
        var head = unit.readRegister(AMDViRegister.eventLogHead)
        let tail = unit.readRegister(AMDViRegister.eventLogTail)
        var found: [AMDViEvent] = []
        while head != tail {
            if let event = AMDViEvent(low: try memory.load64(events + head), high: try memory.load64(events + head + 8)) {
                found.append(event)
            }
            head = (head + 16) % 4096
        }
        return found
    }

    static func invalidatePages(domain: UInt64, address: UInt64, sized: Bool) -> (UInt64, UInt64) {
        (domain << 32 | AMDViCommand.invalidateIOMMUPages << 60, address | (sized ? 1 : 0))
    }
}

extension TranslationOutcome {
    var physical: UInt64? {
        if case let .translated(translation) = self { return translation.physical.value }
        return nil
    }

    var translation: Translation? {
        if case let .translated(translation) = self { return translation }
        return nil
    }

    var faultReason: DMAFaultReason? {
        if case let .faulted(reason) = self { return reason }
        return nil
    }
}
