import Emulation
import IOMMUCore
import IOVA

/// Why a DMA-API call was refused. A refused call leaves every mapping as it was.
public enum DMAError: Error, Equatable, Sendable, CustomStringConvertible {
    case zeroSize
    case negativeSize(Int)
    /// A direct-mapped buffer lies beyond what the device can address and cannot be bounced.
    case beyondMask(physical: UInt64, size: UInt64, mask: UInt64)
    case invalidMask(bits: Int)
    /// No IOVA space below the device's limit.
    case addressSpaceExhausted(IOVAError)
    /// The bounce pool has no room for `size` bytes, or no pool fits below the mask.
    case bouncePoolExhausted(size: UInt64, mask: UInt64)
    /// The device's shadow pool has no run of free slots for `size` bytes (``StreamingProtection/shadowBuffers(granules:)``).
    case shadowPoolExhausted(size: UInt64, granulesFree: UInt64)
    case notMapped(busAddress: UInt64)
    /// The mapping at this address was already unmapped (reported by debug checking).
    case alreadyUnmapped(busAddress: UInt64)
    case sizeMismatch(busAddress: UInt64, mapped: UInt64, given: UInt64)
    /// Unmap or sync named another direction than the map (reported by debug checking).
    case directionMismatch(busAddress: UInt64, mapped: DMADirection, given: DMADirection)
    /// A sync named a range outside every live mapping (reported by debug checking).
    case syncOfUnmapped(busAddress: UInt64, size: UInt64)
    /// The device was removed with mappings still live (reported by debug checking).
    case mappingsLiveAtRemoval(PCIAddress, count: Int)
    /// A scatter-gather list with no segment, or a segment of no bytes.
    case emptyScatterList
    /// The device has no software-MSI window, or the window is full.
    case noMSIWindow(PCIAddress)
    /// The device's group is in a blocked domain or owned by another user.
    case deviceUnavailable(PCIAddress, reason: String)
    case iommu(IOMMUError)
    case memory(MemoryError)
    case allocator(IOVAError)

    public var description: String {
        switch self {
        case .zeroSize: "the size is zero"
        case let .negativeSize(size): "the size \(size) is negative"
        case let .beyondMask(physical, size, mask):
            "\(size) bytes at physical \(hex(physical)) are beyond the device's DMA mask \(hex(mask))"
        case let .invalidMask(bits): "a DMA mask of \(bits) bits is not supported (12...64, at most the device's width)"
        case let .addressSpaceExhausted(error): "no I/O virtual address space: \(error)"
        case let .bouncePoolExhausted(size, mask): "no bounce buffer of \(size) bytes below \(hex(mask))"
        case let .shadowPoolExhausted(size, free):
            "no run of free shadow slots for \(size) bytes (\(free) slots free)"
        case let .notMapped(bus): "bus address \(hex(bus)) is not a live mapping"
        case let .alreadyUnmapped(bus): "bus address \(hex(bus)) was already unmapped (double unmap)"
        case let .sizeMismatch(bus, mapped, given):
            "bus address \(hex(bus)) was mapped with \(mapped) bytes, not \(given)"
        case let .directionMismatch(bus, mapped, given):
            "bus address \(hex(bus)) was mapped \(mapped), not \(given)"
        case let .syncOfUnmapped(bus, size): "sync of \(size) bytes at \(hex(bus)), which no live mapping covers"
        case let .mappingsLiveAtRemoval(device, count): "device \(device) removed with \(count) mappings still live"
        case .emptyScatterList: "the scatter-gather list is empty or has an empty segment"
        case let .noMSIWindow(device): "device \(device) has no software-MSI window with room"
        case let .deviceUnavailable(address, reason): "device \(address) cannot use the DMA API: \(reason)"
        case let .iommu(error): "\(error)"
        case let .memory(error): "\(error)"
        case let .allocator(error): "\(error)"
        }
    }
}
