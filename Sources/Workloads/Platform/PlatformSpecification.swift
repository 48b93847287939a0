import DMA
import Emulation
import IOMMUCore

/// A device to put on an emulated platform.
public struct DeviceSpecification: Sendable, Hashable {
    public var address: PCIAddress
    public var name: String
    public var deviceClass: DeviceClass
    public var addressBits: Int
    public var isUntrusted: Bool
    public var requesterAlias: PCIAddress?
    /// Firmware ranges this device needs mapped 1:1 (Intel RMRR, AMD IVMD unity).
    public var directRegions: [ReservedRegion]
    /// A default-domain kind forced for this device (the policy override).
    public var domainOverride: DomainKind?
    /// Whether an IOMMU unit covers the device at all.
    public var behindIOMMU: Bool
    /// The unit that covers the device; nil: the segment's catch-all unit, if any.
    public var unit: String?
    /// How the DMA layer treats the device (its handle's ``DMAConfiguration``).
    public var dma: DMAConfiguration = DMAConfiguration()

    public init(address: PCIAddress, name: String, deviceClass: DeviceClass, addressBits: Int = 64,
                isUntrusted: Bool = false, requesterAlias: PCIAddress? = nil, directRegions: [ReservedRegion] = [],
                domainOverride: DomainKind? = nil, behindIOMMU: Bool = true, unit: String? = nil) {
        self.address = address
        self.name = name
        self.deviceClass = deviceClass
        self.addressBits = addressBits
        self.isUntrusted = isUntrusted
        self.requesterAlias = requesterAlias
        self.directRegions = directRegions
        self.domainOverride = domainOverride
        self.behindIOMMU = behindIOMMU
        self.unit = unit
    }
}

/// Everything needed to build an emulated machine.
public struct PlatformSpecification: Sendable, Hashable {
    public var name: String
    public var memoryBytes: UInt64
    /// Physical ranges the page allocator may hand out; the rest is MMIO or firmware.
    public var usableMemory: [ClosedRange<PhysicalAddress>]
    public var units: [UnitSpecification]
    public var devices: [DeviceSpecification]
    public var policy: DefaultDomainPolicy

    public init(name: String, memoryBytes: UInt64, usableMemory: [ClosedRange<PhysicalAddress>],
                units: [UnitSpecification], devices: [DeviceSpecification], policy: DefaultDomainPolicy = .init()) {
        self.name = name
        self.memoryBytes = memoryBytes
        self.usableMemory = usableMemory
        self.units = units
        self.devices = devices
        self.policy = policy
    }

    /// The unit covering `device`: its named unit, else its segment's catch-all unit.
    public func unit(for device: DeviceSpecification) -> UnitSpecification? {
        guard device.behindIOMMU else { return nil }
        if let name = device.unit { return units.first { $0.name == name } }
        return units.first { $0.includesAll && $0.segment == device.address.segment }
    }

    /// The built-in machine: one IOMMU unit of `family` (VT-d by default) over a NIC, an NVMe-like
    /// controller, a 32-bit-only legacy device, a USB controller with an RMRR
    /// and an audio device forced into an identity domain; 64 GiB of
    /// addresses with the usual MMIO hole below 4 GiB.
    /// - Throws: never for the built-in addresses; the signature carries ``PCIAddressError`` for the type checker.
    public static func defaultPlatform(family: IOMMUFamily = .intelVTd,
                                       policy: DefaultDomainPolicy = .init()) throws(PCIAddressError) -> PlatformSpecification {
        let rmrr = ReservedRegion(range: 0x7F00_0000...0x7F0F_FFFF, kind: .direct, permissions: .readWrite,
                                  source: "RMRR (USB legacy keyboard buffer)")
        let audio = try PCIAddress(bus: 0, device: 0x1F, function: 3)
        var policy = policy
        if policy.overrides[audio] == nil { policy.overrides[audio] = .identity }
        return PlatformSpecification(
            name: family == .intelVTd ? "default" : "default-\(family.rawValue)",
            memoryBytes: 64 << 30,
            usableMemory: [PhysicalAddress(0x10_0000)...PhysicalAddress(0x7EFF_FFFF),
                           PhysicalAddress(0x7F10_0000)...PhysicalAddress(0xBFFF_FFFF),
                           PhysicalAddress(0x1_0000_0000)...PhysicalAddress((64 << 30) - 1)],
            units: [UnitSpecification(name: "\(family.unitPrefix)0", family: family, includesAll: true)],
            devices: [
                DeviceSpecification(address: try PCIAddress(bus: 0, device: 0x14, function: 0), name: "usb-xhci",
                                    deviceClass: .usb, directRegions: [rmrr]),
                DeviceSpecification(address: audio, name: "audio", deviceClass: .audio),
                DeviceSpecification(address: try PCIAddress(bus: 1, device: 0, function: 0), name: "nic0",
                                    deviceClass: .network),
                DeviceSpecification(address: try PCIAddress(bus: 2, device: 0, function: 0), name: "nvme0",
                                    deviceClass: .storage),
                DeviceSpecification(address: try PCIAddress(bus: 3, device: 0, function: 0), name: "legacy-dma",
                                    deviceClass: .legacy, addressBits: 32),
            ],
            policy: policy)
    }
}
