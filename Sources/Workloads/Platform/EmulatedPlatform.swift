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
    case unsupportedFamily(IOMMUFamily)
    case invalidSpecification(String)

    public var description: String {
        switch self {
        case let .memory(error): "memory: \(error)"
        case let .bus(error): "bus: \(error)"
        case let .iommu(error): "IOMMU: \(error)"
        case let .dma(device, error): "DMA setup of \(device): \(error)"
        case let .unsupportedFamily(family): "the \(family) family has no emulation yet"
        case let .invalidSpecification(why): "invalid platform: \(why)"
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
    /// The IOMMU hardware units, in the specification's order.
    public let units: [any ReportingUnit]
    public let dma: [PCIAddress: DeviceDMA]
    /// The configuration given for every device's DMA handle, replacing each device's own
    /// (`DeviceSpecification.dma`); nil when each device keeps its own.
    public let dmaOverride: DMAConfiguration?

    /// Builds the machine the specification describes and adds every device
    /// to the IOMMU-API, which gives each group its default domain; every
    /// device's DMA handle gets `dmaConfiguration` when one is given, else its own `dma` configuration.
    /// - Throws: ``PlatformError`` naming the part that failed.
    public init(_ specification: PlatformSpecification, dmaConfiguration: DMAConfiguration? = nil) throws(PlatformError) {
        self.specification = specification
        self.dmaOverride = dmaConfiguration
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

        var covered: [String: [DeviceSpecification]] = [:]
        for device in specification.devices {
            if let name = device.unit, !specification.units.contains(where: { $0.name == name }) {
                throw .invalidSpecification("device \(device.address) names unknown unit '\(name)'")
            }
            if let unit = specification.unit(for: device) { covered[unit.name, default: []].append(device) }
        }
        var direct: [PCIAddress: [ReservedRegion]] = [:]
        for device in specification.devices where !device.directRegions.isEmpty { direct[device.address] = device.directRegions }
        var built: [String: any ReportingUnit] = [:]
        for family in IOMMUFamily.allCases {
            let units = specification.units.filter { $0.family == family }
            guard !units.isEmpty else { continue }
            guard let builder = family.builder else { throw .unsupportedFamily(family) }
            let result = try builder.build(FamilyContext(memory: memory, pages: pages, units: units, devices: covered,
                                                         directRegions: direct))
            subsystem.register(result.driver)
            built.merge(result.units) { first, _ in first }
        }
        units = specification.units.compactMap { built[$0.name] }

        var handles: [PCIAddress: DeviceDMA] = [:]
        for spec in specification.devices {
            let device = PCIDevice(address: spec.address, name: spec.name, deviceClass: spec.deviceClass,
                                   addressBits: spec.addressBits, isUntrusted: spec.isUntrusted,
                                   requesterAlias: spec.requesterAlias, memory: memory)
            let unit = specification.unit(for: spec).flatMap { built[$0.name] }
            do { try bus.plug(device, behind: unit) } catch { throw .bus(error) }
            do { try subsystem.addDevice(device) } catch { throw .iommu(error) }
            do { handles[spec.address] = try DeviceDMA(device: device, subsystem: subsystem, pages: pages,
                                                          configuration: dmaConfiguration ?? spec.dma) } catch {
                throw .dma(device: spec.address, error)
            }
        }
        dma = handles
    }

    /// How the DMA handle of the device at `address` is configured (and should be when the device
    /// is plugged back).
    public func dmaConfiguration(for address: PCIAddress) -> DMAConfiguration {
        dmaOverride ?? specification.devices.first { $0.address == address }?.dma ?? DMAConfiguration()
    }

    /// The platform's devices in address order.
    public var devices: [PCIDevice] { bus.devices }

    public func dma(for name: String) -> DeviceDMA? { dma.values.first { $0.device.name == name } }
}
