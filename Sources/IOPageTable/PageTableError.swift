import Emulation

/// Why a page-table operation was refused. A refused operation changes no entry.
public enum PageTableError: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupportedPageSize(UInt64)
    case misaligned(iova: UInt64, physical: UInt64, pageSize: UInt64)
    case beyondAddressWidth(iova: UInt64, bits: Int)
    case physicalTooWide(physical: UInt64, bits: Int)
    case alreadyMapped(iova: UInt64)
    case noPermissions
    case memory(MemoryError)
    /// The format cannot have an input address space of this many bits.
    case unsupportedAddressWidth(bits: Int)

    public var description: String {
        switch self {
        case let .unsupportedPageSize(size): "page size \(hex(size)) is not supported by this table format"
        case let .misaligned(iova, physical, size):
            "IOVA \(hex(iova)) and physical \(hex(physical)) must both be aligned to the page size \(hex(size))"
        case let .beyondAddressWidth(iova, bits): "IOVA \(hex(iova)) does not fit the table's \(bits)-bit input width"
        case let .physicalTooWide(physical, bits): "physical address \(hex(physical)) is wider than \(bits) bits"
        case let .alreadyMapped(iova): "IOVA \(hex(iova)) is already mapped"
        case .noPermissions: "a mapping needs read or write permission"
        case let .memory(error): "page-table memory: \(error)"
        case let .unsupportedAddressWidth(bits): "the table format cannot translate a \(bits)-bit input address space"
        }
    }
}

/// What a table holds for one address.
public struct PageTableLookup: Sendable, Hashable {
    public var physical: PhysicalAddress
    public var pageSize: UInt64
    public var permissions: AccessPermissions

    public init(physical: PhysicalAddress, pageSize: UInt64, permissions: AccessPermissions) {
        self.physical = physical
        self.pageSize = pageSize
        self.permissions = permissions
    }
}
