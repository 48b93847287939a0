/// An address in emulated physical memory: what the CPU's page tables and the
/// IOMMU's translations ultimately point at.
public struct PhysicalAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt64

    @inlinable public init(_ value: UInt64) { self.value = value }

    @inlinable public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
    @inlinable public static func + (lhs: Self, rhs: UInt64) -> Self { Self(lhs.value &+ rhs) }
    @inlinable public static func - (lhs: Self, rhs: Self) -> UInt64 { lhs.value &- rhs.value }

    public var description: String { "PA 0x" + String(value, radix: 16) }
}

/// An I/O virtual address: what a device puts on the bus. Behind an IOMMU it
/// is translated; behind none (or in an identity domain) it equals the
/// physical address, but it is still a different type so that the two are
/// never mixed up by accident.
public struct IOVirtualAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt64

    @inlinable public init(_ value: UInt64) { self.value = value }

    @inlinable public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
    @inlinable public static func + (lhs: Self, rhs: UInt64) -> Self { Self(lhs.value &+ rhs) }
    @inlinable public static func - (lhs: Self, rhs: Self) -> UInt64 { lhs.value &- rhs.value }

    public var description: String { "IOVA 0x" + String(value, radix: 16) }
}

/// Read and write permission as page tables and DMA directions express it.
public struct AccessPermissions: OptionSet, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let read = AccessPermissions(rawValue: 1)
    public static let write = AccessPermissions(rawValue: 2)
    public static let readWrite: AccessPermissions = [.read, .write]

    public var description: String {
        (contains(.read) ? "r" : "-") + (contains(.write) ? "w" : "-")
    }
}

/// The direction of one device access on the bus.
public enum BusAccess: Sendable, Hashable, CustomStringConvertible {
    case read, write

    @inlinable public var requiredPermission: AccessPermissions { self == .read ? .read : .write }
    public var description: String { self == .read ? "read" : "write" }
}

public enum PageSize {
    public static let size4K: UInt64 = 1 << 12
    public static let size2M: UInt64 = 1 << 21
    public static let size1G: UInt64 = 1 << 30
}

/// Formats an address the way kernel logs do, for human output.
public func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
