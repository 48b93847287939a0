import DMA
import Emulation
import IOMMUCore
import IOMMUDrivers

/// Why a platform could not be built.
public enum PlatformError: Error, Equatable, Sendable, CustomStringConvertible {
    case memory(MemoryError)
    case bus(BusError)
    case iommu(IOMMUError)
    case dma(device: PCIAddress, DMAError)

    public var description: String {
        switch self {
        case let .memory(error): "memory: \(error)"
        case let .bus(error): "bus: \(error)"
        case let .iommu(error): "IOMMU: \(error)"
        case let .dma(device, error): "DMA setup of \(device): \(error)"
        }
    }
}

/// A running emulated machine: memory, bus, IOMMU units and their drivers,
/// the IOMMU-API with every device added, and each device's DMA API handle.
public final class EmulatedPlatform: Sendable {
    public let specification: PlatformSpecification
    public let memory: PhysicalMemory
    public let pages: PhysicalPageAllocator
    public let bus: PlatformBus
    public let subsystem: IOMMUSubsystem
    public let vtdUnits: [VTdUnit]
    public let dma: [PCIAddress: DeviceDMA]

    /// Builds the machine the specification describes and adds every device
    /// to the IOMMU-API, which gives each group its default domain.
    /// - Throws: ``PlatformError`` naming the part that failed.
    public init(_ specification: PlatformSpecification) throws(PlatformError) {
        self.specification = specification
        do {
            memory = try PhysicalMemory(size: specification.memoryBytes)
            pages = try PhysicalPageAllocator(memory: memory, usable: specification.usableMemory)
        } catch { throw .memory(error) }
        bus = PlatformBus(memory: memory)
        var policy = specification.policy
        for device in specification.devices {
            if let kind = device.domainOverride { policy.overrides[device.address] = kind }
        }
        subsystem = IOMMUSubsystem(policy: policy)

        let unit = VTdUnit(name: "dmar0", memory: memory, configuration: specification.vtd)
        vtdUnits = [unit]
        var direct: [PCIAddress: [ReservedRegion]] = [:]
        for device in specification.devices where !device.directRegions.isEmpty { direct[device.address] = device.directRegions }
        let covered = Set(specification.devices.filter(\.behindIOMMU).map(\.address))
        let driver: VTdDriver
        do {
            driver = try VTdDriver(units: [VTdUnitScope(unit: unit, includesAll: false, devices: covered)], pages: pages,
                                   directRegions: direct, preferredWidth: specification.prefersFiveLevelTables ? .bits57 : .bits48)
        } catch { throw .iommu(error) }
        subsystem.register(driver)

        var handles: [PCIAddress: DeviceDMA] = [:]
        for spec in specification.devices {
            let device = PCIDevice(address: spec.address, name: spec.name, deviceClass: spec.deviceClass,
                                   addressBits: spec.addressBits, isUntrusted: spec.isUntrusted,
                                   requesterAlias: spec.requesterAlias, memory: memory)
            do { try bus.plug(device, behind: spec.behindIOMMU ? unit : nil) } catch { throw .bus(error) }
            do { try subsystem.addDevice(device) } catch { throw .iommu(error) }
            do { handles[spec.address] = try DeviceDMA(device: device, subsystem: subsystem, pages: pages) } catch {
                throw .dma(device: spec.address, error)
            }
        }
        dma = handles
    }

    /// The platform's devices in address order.
    public var devices: [PCIDevice] { bus.devices }

    public func dma(for name: String) -> DeviceDMA? { dma.values.first { $0.device.name == name } }
}
