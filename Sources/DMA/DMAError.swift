import Emulation
import IOMMUCore
import IOVA

/// Why a DMA-API call was refused. A refused call leaves every mapping as it was.
public enum DMAError: Error, Equatable, Sendable, CustomStringConvertible {
    case zeroSize
    case negativeSize(Int)
    /// A direct-mapped buffer lies beyond what the device can address (and no bounce buffer exists yet).
    case beyondMask(physical: UInt64, size: UInt64, mask: UInt64)
    case invalidMask(bits: Int)
    /// No IOVA space below the device's limit.
    case addressSpaceExhausted(IOVAError)
    case notMapped(busAddress: UInt64)
    case sizeMismatch(busAddress: UInt64, mapped: UInt64, given: UInt64)
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
        case let .invalidMask(bits): "a DMA mask of \(bits) bits is not supported (12...64)"
        case let .addressSpaceExhausted(error): "no I/O virtual address space: \(error)"
        case let .notMapped(bus): "bus address \(hex(bus)) is not a live mapping"
        case let .sizeMismatch(bus, mapped, given):
            "bus address \(hex(bus)) was mapped with \(mapped) bytes, not \(given)"
        case let .deviceUnavailable(address, reason): "device \(address) cannot use the DMA API: \(reason)"
        case let .iommu(error): "\(error)"
        case let .memory(error): "\(error)"
        case let .allocator(error): "\(error)"
        }
    }
}
