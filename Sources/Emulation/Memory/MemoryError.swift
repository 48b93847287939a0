/// Why an access to emulated physical memory or a page allocation failed.
public enum MemoryError: Error, Equatable, Sendable, CustomStringConvertible {
    case outOfRange(address: UInt64, count: UInt64, memorySize: UInt64)
    case misaligned(address: UInt64, alignment: UInt64)
    case mappingFailed(size: UInt64, errno: Int32)
    case invalidRequest(String)
    case outOfMemory(pages: UInt64, zone: String)
    case notAllocated(address: UInt64, pages: UInt64)

    public var description: String {
        switch self {
        case let .outOfRange(address, count, size):
            "physical access of \(count) bytes at \(hex(address)) is outside memory of \(hex(size)) bytes"
        case let .misaligned(address, alignment):
            "physical address \(hex(address)) is not aligned to \(alignment) bytes"
        case let .mappingFailed(size, errno):
            "could not reserve \(hex(size)) bytes of address space for emulated memory (errno \(errno))"
        case let .invalidRequest(why):
            "invalid memory request: \(why)"
        case let .outOfMemory(pages, zone):
            "no \(pages) contiguous free pages in \(zone)"
        case let .notAllocated(address, pages):
            "\(pages) pages at \(hex(address)) are not allocated (double free or wild free)"
        }
    }
}
