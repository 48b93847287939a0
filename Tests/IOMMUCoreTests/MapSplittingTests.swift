import Emulation
import IOMMUCore
import IOPageTable
import Testing

/// A domain that records the page-level calls the core makes, so the core's
/// splitting and rollback can be checked without any hardware.
final class RecordingDomain: IOMMUDomain, @unchecked Sendable {
    var mapped: [(iova: UInt64, size: UInt64)] = []
    var failAt: UInt64?

    init(pageSizes: [UInt64], aperture: ClosedRange<UInt64> = 0...((1 << 48) - 1)) {
        super.init(kind: .dma, geometry: DomainGeometry(aperture: aperture, outside: .blocked),
                   pageSizes: PageSizeSet(pageSizes), driverName: "recording")
    }

    override func mapPage(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        if iova == failAt { throw .alreadyMapped(iova: iova) }
        mapped.append((iova, pageSize))
    }

    override func unmapPage(iova: UInt64, pageSize: UInt64) -> UInt64 {
        guard let index = mapped.firstIndex(where: { $0.iova == iova }) else { return 0 }
        return mapped.remove(at: index).size
    }

    override func lookup(_ iova: UInt64) -> PageTableLookup? {
        mapped.first { $0.iova <= iova && iova < $0.iova + $0.size }.map {
            PageTableLookup(physical: PhysicalAddress(iova), pageSize: $0.size, permissions: .readWrite)
        }
    }
}

@Suite struct MapSplittingTests {
    let sizes = [PageSize.size4K, PageSize.size2M, PageSize.size1G]

    @Test func rangeIsSplitIntoTheLargestPagesAlignmentAllows() throws {
        let domain = RecordingDomain(pageSizes: sizes)
        // 4K below a 2M boundary, then a 2M page, then a 1G page, then one more 4K page.
        let start: UInt64 = 0x3FDF_F000
        let size: UInt64 = 0x1000 + 0x20_0000 + 0x4000_0000 + 0x1000
        try domain.map(iova: IOVirtualAddress(start), physical: PhysicalAddress(start + 0x1_0000_0000), size: size,
                       permissions: .readWrite)
        #expect(domain.mapped.map(\.size) == [PageSize.size4K, PageSize.size2M, PageSize.size1G, PageSize.size4K])
        #expect(domain.mapped.map(\.iova) == [0x3FDF_F000, 0x3FE0_0000, 0x4000_0000, 0x8000_0000])
    }

    @Test func physicalMisalignmentLimitsThePageSize() throws {
        let domain = RecordingDomain(pageSizes: sizes)
        try domain.map(iova: IOVirtualAddress(0x20_0000), physical: PhysicalAddress(0x20_1000), size: 0x20_0000,
                       permissions: .read)
        #expect(domain.mapped.count == 512)
        #expect(Set(domain.mapped.map(\.size)) == [PageSize.size4K])
    }

    @Test func largestPageFollowsLinuxPgsizeRules() {
        let set = PageSizeSet(sizes)
        #expect(set.largestPage(iova: 0, physical: 0, remaining: 1 << 40) == PageSize.size1G)
        #expect(set.largestPage(iova: 0x20_0000, physical: 0, remaining: 1 << 40) == PageSize.size2M)
        #expect(set.largestPage(iova: 0, physical: 0, remaining: 0x1F_F000) == PageSize.size4K)
        #expect(set.largestPage(iova: 0x1000, physical: 0, remaining: 0x1000) == PageSize.size4K)
        #expect(set.smallest == PageSize.size4K)
        #expect(set.description == "4K,2M,1G")
    }

    @Test func aFailedMapRollsBackWhatItMapped() {
        let domain = RecordingDomain(pageSizes: [PageSize.size4K])
        domain.failAt = 0x3000
        #expect(throws: IOMMUError.alreadyMapped(iova: 0x3000)) {
            try domain.map(iova: IOVirtualAddress(0x1000), physical: PhysicalAddress(0x1000), size: 0x4000, permissions: .read)
        }
        #expect(domain.mapped.isEmpty)
    }

    @Test func badArgumentsAreRefusedBeforeAnythingIsMapped() {
        let domain = RecordingDomain(pageSizes: [PageSize.size4K], aperture: 0...0xFFFF_FFFF)
        #expect(throws: IOMMUError.zeroSize) {
            try domain.map(iova: IOVirtualAddress(0), physical: PhysicalAddress(0), size: 0, permissions: .read)
        }
        #expect(throws: IOMMUError.misaligned(iova: 0x1001, physical: 0, size: 0x1000, granule: 0x1000)) {
            try domain.map(iova: IOVirtualAddress(0x1001), physical: PhysicalAddress(0), size: 0x1000, permissions: .read)
        }
        #expect(throws: IOMMUError.outsideAperture(iova: 0xFFFF_F000, size: 0x2000, aperture: 0...0xFFFF_FFFF)) {
            try domain.map(iova: IOVirtualAddress(0xFFFF_F000), physical: PhysicalAddress(0), size: 0x2000, permissions: .read)
        }
        #expect(throws: IOMMUError.addressOverflow(iova: UInt64.max - 0xFFF, size: 0x2000)) {
            try domain.map(iova: IOVirtualAddress(UInt64.max - 0xFFF), physical: PhysicalAddress(0), size: 0x2000, permissions: .read)
        }
        #expect(throws: IOMMUError.notMapped(iova: 0x5000)) { try domain.unmap(iova: IOVirtualAddress(0x5000), size: 0x1000) }
        #expect(domain.mapped.isEmpty)
    }

    @Test func unmapGathersOneRangeForTheFlush() throws {
        let domain = RecordingDomain(pageSizes: sizes)
        try domain.map(iova: IOVirtualAddress(0x1F_F000), physical: PhysicalAddress(0x1F_F000), size: 0x20_2000, permissions: .read)
        var gather = IOTLBGather()
        let unmapped = try domain.unmap(iova: IOVirtualAddress(0x1F_F000), size: 0x20_2000, gather: &gather)
        #expect(unmapped == 0x20_2000)
        #expect(gather.first == 0x1F_F000 && gather.last == 0x40_0FFF && gather.largestPage == PageSize.size2M)
    }
}

@Suite struct DefaultDomainPolicyTests {
    @Test func untrustedDevicesAreAlwaysStrict() throws {
        let memory = try PhysicalMemory(size: 1 << 20)
        let external = PCIDevice(address: try PCIAddress(bus: 5, device: 0, function: 0), name: "thunderbolt", isUntrusted: true,
                                 memory: memory)
        let policy = DefaultDomainPolicy(passThrough: true, invalidation: .lazy, overrides: [external.address: .identity])
        #expect(policy.kind(for: external, driverRequirement: nil) == .dma)
    }

    @Test func overridesWinOverGlobalSettings() throws {
        let memory = try PhysicalMemory(size: 1 << 20)
        let device = PCIDevice(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "nic", memory: memory)
        #expect(DefaultDomainPolicy().kind(for: device, driverRequirement: nil) == .dma)
        #expect(DefaultDomainPolicy(invalidation: .lazy).kind(for: device, driverRequirement: nil) == .dmaLazy)
        #expect(DefaultDomainPolicy(passThrough: true).kind(for: device, driverRequirement: nil) == .identity)
        #expect(DefaultDomainPolicy(passThrough: true, overrides: [device.address: .blocked])
            .kind(for: device, driverRequirement: nil) == .blocked)
        #expect(DefaultDomainPolicy().kind(for: device, driverRequirement: .identity) == .identity)
    }
}
