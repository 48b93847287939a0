import Emulation
import IOPageTable

/// Why an IOMMU-API operation was refused. A refused operation leaves every
/// mapping as it was.
public enum IOMMUError: Error, Equatable, Sendable, CustomStringConvertible {
    case zeroSize
    case misaligned(iova: UInt64, physical: UInt64, size: UInt64, granule: UInt64)
    case outsideAperture(iova: UInt64, size: UInt64, aperture: ClosedRange<UInt64>)
    case addressOverflow(iova: UInt64, size: UInt64)
    case alreadyMapped(iova: UInt64)
    case notMapped(iova: UInt64)
    case domainDoesNotTranslate(DomainKind)
    case unsupportedDomainKind(DomainKind, driver: String)
    case deviceNotManaged(PCIAddress)
    case deviceAlreadyAdded(PCIAddress)
    case groupOwned(group: Int, by: String)
    case pageTable(PageTableError)
    case hardware(String)

    public var description: String {
        switch self {
        case .zeroSize: "the size is zero"
        case let .misaligned(iova, physical, size, granule):
            "IOVA \(hex(iova)), physical \(hex(physical)) and size \(hex(size)) must be multiples of the \(hex(granule))-byte granule"
        case let .outsideAperture(iova, size, aperture):
            "\(hex(size)) bytes at IOVA \(hex(iova)) are outside the aperture \(hex(aperture.lowerBound))-\(hex(aperture.upperBound))"
        case let .addressOverflow(iova, size): "\(hex(size)) bytes at IOVA \(hex(iova)) run past the top of the address space"
        case let .alreadyMapped(iova): "IOVA \(hex(iova)) is already mapped"
        case let .notMapped(iova): "IOVA \(hex(iova)) is not mapped"
        case let .domainDoesNotTranslate(kind): "a \(kind) domain has no page tables to map into"
        case let .unsupportedDomainKind(kind, driver): "the \(driver) driver cannot make a \(kind) domain"
        case let .deviceNotManaged(address): "no IOMMU manages device \(address)"
        case let .deviceAlreadyAdded(address): "device \(address) was already added"
        case let .groupOwned(group, owner): "group \(group) is owned by \(owner)"
        case let .pageTable(error): "\(error)"
        case let .hardware(why): "hardware: \(why)"
        }
    }
}
