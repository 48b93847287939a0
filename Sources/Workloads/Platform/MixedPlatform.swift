import Emulation
import IOMMUCore

extension PlatformSpecification {
    /// One unit of every emulated family at once, each translating its own
    /// devices, under the one DMA layer: VT-d for the USB controller (with its
    /// RMRR) and the audio device (identity), AMD-Vi for the NIC, an SMMU for
    /// the NVMe controller, a GART for the 32-bit legacy device and a Calgary
    /// bridge for a RAID controller on bus 4.
    /// - Throws: never for the built-in addresses; the signature carries ``PCIAddressError`` for the type checker.
    public static func mixedPlatform(policy: DefaultDomainPolicy = .init()) throws(PCIAddressError) -> PlatformSpecification {
        var specification = try defaultPlatform(family: .intelVTd, policy: policy)
        specification.name = "mixed"
        let families = IOMMUFamily.allCases.filter(\.isEmulated)
        specification.units = families.map { UnitSpecification(name: "\($0.unitPrefix)0", family: $0) }
        let owner: [String: IOMMUFamily] = ["usb-xhci": .intelVTd, "audio": .intelVTd, "nic0": .amdVi,
                                           "nvme0": .armSMMU, "legacy-dma": .amdGART]
        for index in specification.devices.indices {
            let family = owner[specification.devices[index].name] ?? .intelVTd
            let chosen = families.contains(family) ? family : .intelVTd
            specification.devices[index].unit = "\(chosen.unitPrefix)0"
        }
        if families.contains(.ibmCalgary) {
            specification.devices.append(DeviceSpecification(address: try PCIAddress(bus: 4, device: 0, function: 0),
                                                             name: "raid0", deviceClass: .storage,
                                                             unit: "\(IOMMUFamily.ibmCalgary.unitPrefix)0"))
        }
        return specification
    }
}
