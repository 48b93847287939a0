import DMA
import Emulation
import IOMMUCore
import IOPageTable
import Synchronization
import Testing

/// A tiny translating domain over a dictionary: enough to test the DMA layer's software-MSI mapping.
final class DictionaryDomain: IOMMUDomain, @unchecked Sendable {
    let entries = Mutex<[UInt64: (physical: UInt64, permissions: AccessPermissions)]>([:])
    init() {
        super.init(kind: .dma, geometry: DomainGeometry(aperture: 0...0xFFFF_FFFF, outside: .blocked),
                   pageSizes: PageSizeSet([PageSize.size4K]), driverName: "test")
    }
    override func mapPage(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        let fresh = entries.withLock { table in
            guard table[iova] == nil else { return false }
            table[iova] = (physical, permissions)
            return true
        }
        guard fresh else { throw .alreadyMapped(iova: iova) }
    }
    override func unmapPage(iova: UInt64, pageSize: UInt64) -> UInt64 {
        entries.withLock { $0.removeValue(forKey: iova) } != nil ? pageSize : 0
    }
    override func lookup(_ iova: UInt64) -> PageTableLookup? {
        entries.withLock { $0[iova & ~0xFFF] }.map {
            PageTableLookup(physical: PhysicalAddress($0.physical | (iova & 0xFFF)), pageSize: 4096, permissions: $0.permissions)
        }
    }
}

/// A driver whose devices have an ARM-style software-MSI window at 0x0800_0000.
final class SoftwareMSIDriver: IOMMUDriver, Sendable {
    static let window = ReservedRegion(range: 0x0800_0000...0x080F_FFFF, kind: .softwareMSI, permissions: .write,
                                       source: "test software MSI")
    let name = "test-smmu"
    func probe(_ device: PCIDevice) -> IOMMUProbeResult? { IOMMUProbeResult(unitName: "test0", groupKey: "\(device.address)") }
    func requiredDefaultDomainKind(for device: PCIDevice) -> DomainKind? { .dma }
    func makeDomain(_ kind: DomainKind, for device: PCIDevice) throws(IOMMUError) -> IOMMUDomain { DictionaryDomain() }
    func attach(_ domain: IOMMUDomain, to device: PCIDevice) throws(IOMMUError) {}
    func reservedRegions(for device: PCIDevice) -> [ReservedRegion] { [Self.window] }
    func release(_ device: PCIDevice) {}
    func connect(faultSink: any FaultSink) {}
}

@Suite struct SoftwareMSITests {
    @Test func theDoorbellIsMappedOncePerDomainWriteOnlyInsideTheWindow() throws {
        let memory = try PhysicalMemory(size: 1 << 30)
        let pages = try PhysicalPageAllocator(memory: memory)
        let subsystem = IOMMUSubsystem(policy: DefaultDomainPolicy())
        subsystem.register(SoftwareMSIDriver())
        let device = PCIDevice(address: try PCIAddress(bus: 4, device: 0, function: 0), name: "its-user", memory: memory)
        _ = try subsystem.addDevice(device)
        let dma = try DeviceDMA(device: device, subsystem: subsystem, pages: pages)
        let doorbell = PhysicalAddress(0x2004_0040)
        let bus = try dma.msiAddress(forDoorbell: doorbell)
        #expect(SoftwareMSIDriver.window.range.contains(bus.value))
        #expect(bus.value & 0xFFF == 0x40)
        #expect(try dma.msiAddress(forDoorbell: doorbell) == bus) // mapped once
        let domain = try #require(dma.managed?.group.defaultDomain)
        #expect(domain.translate(bus) == doorbell)
        #expect(domain.lookup(bus.value)?.permissions == .write)
        let other = try dma.msiAddress(forDoorbell: PhysicalAddress(0x3000_0000))
        #expect(other.value & ~0xFFF != bus.value & ~0xFFF)
        // Streaming mappings never land in the window.
        let mapped = try dma.map(try pages.allocate(), size: 4096, direction: .toDevice)
        #expect(!SoftwareMSIDriver.window.range.contains(mapped.value))
    }
}
