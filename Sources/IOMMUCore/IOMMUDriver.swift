import Emulation

/// What a driver learns when it claims a device at probe time.
public struct IOMMUProbeResult: Sendable, Hashable {
    /// The hardware unit that translates the device's DMA.
    public var unitName: String
    /// Devices with equal keys cannot be isolated from each other and share
    /// a group (and so a domain): typically the requester ID the unit sees.
    public var groupKey: String

    public init(unitName: String, groupKey: String) {
        self.unitName = unitName
        self.groupKey = groupKey
    }
}

/// One IOMMU family's driver, as the core sees it (Linux's iommu_ops).
/// Drivers program their hardware only through its registers, commands and
/// the tables they write into emulated memory.
public protocol IOMMUDriver: AnyObject, Sendable {
    /// The family's name ("intel-vtd", "amd-vi").
    var name: String { get }
    /// Claims `device` when one of the driver's units covers it; nil otherwise.
    func probe(_ device: PCIDevice) -> IOMMUProbeResult?
    /// A kind the driver insists on for this device's default domain (for
    /// example identity for a device its hardware cannot translate), or nil
    /// to let the core's policy decide.
    func requiredDefaultDomainKind(for device: PCIDevice) -> DomainKind?
    /// Makes a domain of `kind` suited to `device`'s unit.
    /// - Throws: ``IOMMUError/unsupportedDomainKind(_:driver:)`` and hardware errors.
    func makeDomain(_ kind: DomainKind, for device: PCIDevice) throws(IOMMUError) -> IOMMUDomain
    /// Points the hardware's entry for `device` at `domain`.
    /// - Throws: ``IOMMUError/hardware(_:)`` when the unit refuses.
    func attach(_ domain: IOMMUDomain, to device: PCIDevice) throws(IOMMUError)
    /// The regions of `device`'s bus address space that are special.
    func reservedRegions(for device: PCIDevice) -> [ReservedRegion]
    /// The device is going away: clear its hardware entry.
    func release(_ device: PCIDevice)
    /// Where the driver sends the faults it reads from its hardware logs.
    func connect(faultSink: any FaultSink)
}
