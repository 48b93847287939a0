import Emulation
import IOMMUCore
import IOMMUDrivers
import Testing

/// Found by the GPU scenario: a 2 MiB buffer at a 2 MiB-aligned IOVA but a
/// 4 KiB-aligned physical address is mapped with 4 KiB pages; unmapping it
/// must not look only for a 2 MiB leaf.
@Suite struct UnmapAlignmentTests {
    @Test func aLargeAlignedIOVAMappedWithSmallPagesUnmapsWhole() throws {
        let memory = try PhysicalMemory(size: 1 << 30)
        let pages = try PhysicalPageAllocator(memory: memory)
        let unit = VTdUnit(name: "dmar0", memory: memory)
        let device = PCIDevice(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "gpu", memory: memory)
        let driver = try VTdDriver(units: [VTdUnitScope(unit: unit, includesAll: true, devices: [], segment: 0)], pages: pages)
        let domain = try driver.makeDomain(.dma, for: device)
        let iova = IOVirtualAddress(0x20_0000), physical = PhysicalAddress(0x40_3000), size: UInt64 = 0x20_0000
        try domain.map(iova: iova, physical: physical, size: size, permissions: .readWrite)
        #expect(domain.lookup(iova.value)?.pageSize == 4096)
        #expect(try domain.unmap(iova: iova, size: size) == size)
        #expect(domain.lookup(iova.value) == nil)
        #expect(domain.lookup(iova.value + size - 4096) == nil)
    }
}
