import Emulation
import Testing

@Suite struct DMAEngineTests {
    @Test func deviceWithoutIOMMUReachesMemoryDirectly() throws {
        let memory = try PhysicalMemory(size: 1 << 24)
        let bus = PlatformBus(memory: memory)
        let device = PCIDevice(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "plain", memory: memory)
        try bus.plug(device, behind: nil)
        #expect(device.engine.write(to: IOVirtualAddress(0x1FF0), bytes: Array(0..<32)).completed)
        #expect(try memory.read(PhysicalAddress(0x1FF0), count: 32) == Array(0..<32))
        #expect(device.engine.statistics.bytesWritten == 32)
    }

    @Test func transferStopsAtTheFaultingPageAndTouchesNothingThere() throws {
        var platform = try HandBuiltVTd()
        let top = try platform.attachFourLevelTable()
        try platform.map4K(0x1000, to: 0x5000_0000, permissions: 3, in: top)
        let device = PCIDevice(address: platform.requester, name: "dev", memory: platform.memory)
        let bus = PlatformBus(memory: platform.memory)
        try bus.plug(device, behind: platform.unit)
        let result = device.engine.write(to: IOVirtualAddress(0x1F00), bytes: [UInt8](repeating: 7, count: 0x200))
        #expect(result.bytesTransferred == 0x100)
        #expect(result.fault == DeviceFault(address: IOVirtualAddress(0x2000), access: .write, reason: .notPresent))
        #expect(try platform.memory.read(PhysicalAddress(0x5000_0F00), count: 0x100) == [UInt8](repeating: 7, count: 0x100))
        #expect(try platform.memory.read(PhysicalAddress(0x2000), count: 0x100) == [UInt8](repeating: 0, count: 0x100))
    }

    @Test func unpluggedDeviceReachesNothing() throws {
        let memory = try PhysicalMemory(size: 1 << 24)
        let bus = PlatformBus(memory: memory)
        let address = try PCIAddress(bus: 1, device: 0, function: 0)
        let device = PCIDevice(address: address, name: "gone", memory: memory)
        try bus.plug(device, behind: nil)
        #expect(throws: BusError.addressInUse(address)) { try bus.plug(device, behind: nil) }
        try bus.unplug(address)
        #expect(!device.engine.write(to: IOVirtualAddress(0x1000), bytes: [1]).completed)
        #expect(throws: BusError.noSuchDevice(address)) { try bus.unplug(address) }
    }

    @Test func pciAddressesParseAndPrintAsLspciDoes() throws {
        let address = try PCIAddress(parsing: "0000:3a:1f.7")
        #expect(address.description == "0000:3a:1f.7")
        #expect(address.requesterID == 0x3AFF)
        #expect(throws: PCIAddressError.self) { try PCIAddress(parsing: "00:20.0") }
        #expect(throws: PCIAddressError.self) { try PCIAddress(parsing: "nonsense") }
        #expect(throws: PCIAddressError.self) { try PCIAddress(bus: 0, device: 1, function: 8) }
    }
}
