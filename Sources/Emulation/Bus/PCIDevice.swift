/// What kind of device a function is, for reports and for policies that
/// treat some devices differently (bridges alias their children, external
/// ports are untrusted).
public enum DeviceClass: String, Sendable, Hashable, Codable, CaseIterable {
    case network, storage, graphics, usb, audio, legacy, bridge, accelerator, other
}

/// An emulated PCI function that can master DMA.
public final class PCIDevice: Sendable, CustomStringConvertible {
    public let address: PCIAddress
    public let name: String
    public let deviceClass: DeviceClass
    /// The widest bus address the device can generate, as a bit count (32 for
    /// a legacy device, 64 for a modern one). The DMA layer's mask starts here.
    public let addressBits: Int
    /// The platform marks devices behind external-facing ports untrusted;
    /// the DMA layer then never lets them share a page with other data.
    public let isUntrusted: Bool
    /// A device behind a PCIe-to-PCI bridge is seen by the IOMMU with the
    /// bridge's requester ID; such devices cannot be isolated from each other.
    public let requesterAlias: PCIAddress?
    public let engine: DMAEngine

    public init(address: PCIAddress, name: String, deviceClass: DeviceClass = .other, addressBits: Int = 64,
                isUntrusted: Bool = false, requesterAlias: PCIAddress? = nil, memory: PhysicalMemory) {
        self.address = address
        self.name = name
        self.deviceClass = deviceClass
        self.addressBits = min(max(addressBits, 1), 64)
        self.isUntrusted = isUntrusted
        self.requesterAlias = requesterAlias
        engine = DMAEngine(memory: memory, requester: requesterAlias ?? address)
    }

    /// The requester ID the IOMMU sees on this device's transactions.
    public var busRequester: PCIAddress { requesterAlias ?? address }

    public var description: String { "\(address) \(name)" }
}
