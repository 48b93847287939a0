import Emulation

/// Which devices an IOMMU unit translates, as firmware describes it: the
/// devices it lists (DMAR device scopes, IVHD entries), and whether it is its
/// segment's catch-all unit (DRHD INCLUDE_PCI_ALL, IVHD select-all).
public protocol DeviceCoverage {
    var devices: Set<PCIAddress> { get }
    var includesAll: Bool { get }
    var segment: UInt16 { get }
}

extension Collection where Element: DeviceCoverage {
    /// The unit covering `device`: one that lists it (or the bridge alias it
    /// reaches the IOMMU with) first, else its segment's catch-all unit.
    public func unit(covering device: PCIDevice) -> Element? {
        first { $0.devices.contains(device.address) || $0.devices.contains(device.busRequester) }
            ?? first { $0.includesAll && $0.segment == device.address.segment }
    }
}
