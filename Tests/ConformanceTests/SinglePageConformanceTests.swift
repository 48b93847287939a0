import Emulation
import IOMMUCore
import IOPageTable
import Testing
import Workloads

/// The single-page calls the DMA layer's hot path uses (`mapGranule`, `mapOwnedGranule`,
/// `unmapGranule`) are driver overrides that skip the generic range splitting; on every
/// family they must give the same translations, refusals and errors as the generic calls.
@Suite struct SinglePageConformanceTests {
    struct Fixture {
        let platform: EmulatedPlatform
        let domain: IOMMUDomain
        let granule: UInt64
        let iova: UInt64
        let physical: UInt64

        init(_ family: IOMMUFamily) throws {
            platform = try EmulatedPlatform(.defaultPlatform(family: family))
            let handle = try #require(platform.dma(for: "nic0"))
            domain = try platform.subsystem.makeDomain(.dma, for: handle.device.address)
            granule = domain.pageSizes.smallest
            iova = domain.geometry.aperture.lowerBound + 16 * granule
            physical = try platform.pages.allocate(pages: max(1, granule >> 12), alignment: granule).value
        }

        func generic(_ iova: UInt64, _ physical: UInt64, _ permissions: AccessPermissions) -> Result<Void, IOMMUError> {
            Result { () throws(IOMMUError) in
                try domain.map(iova: IOVirtualAddress(iova), physical: PhysicalAddress(physical), size: granule,
                               permissions: permissions)
            }
        }

        func single(_ iova: UInt64, _ physical: UInt64, _ permissions: AccessPermissions, owned: Bool) -> Result<Void, IOMMUError> {
            Result { () throws(IOMMUError) in
                if owned {
                    try domain.mapOwnedGranule(iova: iova, physical: physical, permissions: permissions)
                } else {
                    try domain.mapGranule(iova: iova, physical: physical, permissions: permissions)
                }
            }
        }
    }

    static let families = IOMMUFamily.allCases.filter(\.isEmulated)

    @Test(arguments: families, [false, true])
    func singlePageMapsLikeTheGenericMap(family: IOMMUFamily, owned: Bool) throws {
        let fixture = try Fixture(family)
        let domain = fixture.domain
        for permissions in [AccessPermissions.read, .write, .readWrite] {
            try fixture.generic(fixture.iova, fixture.physical, permissions).get()
            let expected = domain.lookup(fixture.iova)
            #expect(expected != nil)
            _ = try domain.unmap(iova: IOVirtualAddress(fixture.iova), size: fixture.granule)

            try fixture.single(fixture.iova, fixture.physical, permissions, owned: owned).get()
            #expect(domain.lookup(fixture.iova) == expected)
            var gather = IOTLBGather()
            #expect(domain.unmapGranule(iova: fixture.iova, gather: &gather) == PhysicalAddress(fixture.physical))
            #expect(!gather.isEmpty)
            #expect(domain.lookup(fixture.iova) == nil)
            var second = IOTLBGather()
            #expect(domain.unmapGranule(iova: fixture.iova, gather: &second) == nil)
            #expect(second.isEmpty)
        }
    }

    @Test(arguments: families, [false, true])
    func singlePageRefusesLikeTheGenericMap(family: IOMMUFamily, owned: Bool) throws {
        let fixture = try Fixture(family)
        let granule = fixture.granule
        let aperture = fixture.domain.geometry.aperture
        var cases: [(iova: UInt64, physical: UInt64, permissions: AccessPermissions)] = [
            (fixture.iova + granule / 2, fixture.physical, .readWrite),       // misaligned IOVA
            (fixture.iova, fixture.physical + granule / 2, .readWrite),       // misaligned physical address
            (fixture.iova, fixture.physical, []),                             // no permissions
        ]
        if aperture.upperBound < UInt64.max - granule { cases.append((aperture.upperBound + 1, fixture.physical, .readWrite)) }
        if aperture.lowerBound >= granule { cases.append((aperture.lowerBound - granule, fixture.physical, .readWrite)) }
        for refused in cases {
            let generic = fixture.generic(refused.iova, refused.physical, refused.permissions)
            let single = fixture.single(refused.iova, refused.physical, refused.permissions, owned: owned)
            #expect(throws: (any Error).self) { try generic.get() }
            #expect(String(describing: single) == String(describing: generic), "\(family) \(refused)")
            #expect(fixture.domain.lookup(refused.iova & ~(granule - 1)) == nil)
        }
        // A page already there is refused by both, and stays as it was.
        try fixture.generic(fixture.iova, fixture.physical, .read).get()
        let before = fixture.domain.lookup(fixture.iova)
        let other = fixture.physical + 64 * granule
        #expect(String(describing: fixture.single(fixture.iova, other, .readWrite, owned: owned))
                == String(describing: fixture.generic(fixture.iova, other, .readWrite)))
        #expect(fixture.domain.lookup(fixture.iova) == before)
    }
}
