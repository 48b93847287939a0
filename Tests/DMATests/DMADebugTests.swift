import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// Issue #4 item 8: every misuse is an error to the caller and a report, never a crash.
@Suite struct DMADebugTests {
    let platform: EmulatedPlatform
    let dma: DeviceDMA
    init() throws {
        platform = try EmulatedPlatform(.defaultPlatform())
        let nic = try #require(platform.dma(for: "nic0"))
        // A second handle on the NIC with checking on: the domain and its IOVA space are shared.
        dma = try DeviceDMA(device: nic.device, subsystem: platform.subsystem, pages: platform.pages,
                            configuration: DMAConfiguration(debugChecks: true))
    }

    @Test func everyMisuseIsReportedWithTheDeviceAndTheCall() throws {
        let buffer = try platform.pages.allocate()
        #expect(throws: DMAError.notMapped(busAddress: 0x4000)) { try dma.unmap(IOVirtualAddress(0x4000), size: 64, direction: .toDevice) }
        let bus = try dma.map(buffer, size: 128, direction: .toDevice)
        #expect(dma.liveMappings == 1)
        #expect(throws: DMAError.sizeMismatch(busAddress: bus.value, mapped: 128, given: 64)) {
            try dma.unmap(bus, size: 64, direction: .toDevice)
        }
        #expect(throws: DMAError.directionMismatch(busAddress: bus.value, mapped: .toDevice, given: .fromDevice)) {
            try dma.unmap(bus, size: 128, direction: .fromDevice)
        }
        #expect(dma.device.engine.read(from: bus, count: 1).result.completed) // refused calls changed nothing
        try dma.unmap(bus, size: 128, direction: .toDevice)
        #expect(throws: DMAError.alreadyUnmapped(busAddress: bus.value)) { try dma.unmap(bus, size: 128, direction: .toDevice) }
        #expect(throws: DMAError.syncOfUnmapped(busAddress: bus.value, size: 128)) {
            try dma.syncForCPU(bus, size: 128, direction: .toDevice)
        }
        _ = try dma.map(buffer, size: 64, direction: .bidirectional)
        #expect(throws: DMAError.mappingsLiveAtRemoval(dma.device.address, count: 1)) { try dma.deviceRemoved() }
        let calls = dma.debugReports.map(\.call)
        #expect(calls == ["unmap", "unmap", "unmap", "unmap", "syncForCPU", "remove"])
        #expect(dma.debugReports.allSatisfy { $0.device == dma.device.address })
    }
}
