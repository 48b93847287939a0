import Emulation
import IOMMUCore

extension DeviceDMA {
    /// The bus address a device must write to ring the MSI doorbell at
    /// physical `doorbell` (Linux's iommu_dma_get_msi_page plus
    /// iommu_dma_compose_msi_msg). Where the device's region is a software-MSI
    /// window (ARM SMMU), the doorbell page is mapped into the window once per
    /// domain, write-only; elsewhere the doorbell is reached untranslated.
    /// - Throws: ``DMAError/noMSIWindow(_:)`` when a translated device has no software-MSI window
    ///   or it is full; ``DMAError/iommu(_:)``, ``DMAError/deviceUnavailable(_:reason:)``.
    public func msiAddress(forDoorbell doorbell: PhysicalAddress) throws(DMAError) -> IOVirtualAddress {
        guard case let .translated(state) = try checkUsable() else { return IOVirtualAddress(doorbell.value) }
        guard let window = managed?.reservedRegions.first(where: { $0.kind == .softwareMSI }) else {
            if managed?.reservedRegions.contains(where: { $0.kind == .msi && $0.range.contains(doorbell.value) }) == true {
                return IOVirtualAddress(doorbell.value) // the hardware MSI window is never translated
            }
            throw .noMSIWindow(device.address)
        }
        let granule = state.granule
        let page = doorbell.value & ~state.granuleMask
        let offset = doorbell.value & state.granuleMask
        let bus = try state.msiPages.withLock { (pages) throws(DMAError) -> UInt64 in
            if let bus = pages[page] { return bus }
            let first = (window.range.lowerBound + state.granuleMask) & ~state.granuleMask
            var candidate = first
            let used = Set(pages.values)
            while used.contains(candidate) { candidate += granule }
            guard candidate >= first, candidate <= window.range.upperBound, window.range.upperBound - candidate >= granule - 1 else {
                throw .noMSIWindow(device.address)
            }
            do throws(IOMMUError) {
                try state.domain.map(iova: IOVirtualAddress(candidate), physical: PhysicalAddress(page), size: granule,
                                     permissions: .write)
            } catch { throw .iommu(error) }
            pages[page] = candidate
            return candidate
        }
        return IOVirtualAddress(bus + offset)
    }
}
