import Foundation
import IOMMUCore

/// One IOMMU group as Linux shows it under /sys/kernel/iommu_groups/N.
public struct LinuxIOMMUGroup: Sendable, Hashable, Codable {
    public var number: Int
    /// `type`: DMA, DMA-FQ, identity, blocked, unmanaged.
    public var type: String
    public var reservedRegions: [ReservedRegion]
    /// Device names as Linux prints them (0000:00:02.0).
    public var devices: [String]

    /// The default-domain kind `type` stands for; nil for a type this system has no counterpart of.
    public var domainKind: DomainKind? {
        switch type {
        case "DMA": .dma
        case "DMA-FQ": .dmaLazy
        case "identity": .identity
        case "blocked": .blocked
        case "unmanaged": .unmanaged
        default: nil
        }
    }
}

/// Why a groups dump could not be read.
public enum IOMMUGroupsError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformed(line: Int, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "cannot read IOMMU groups from '\(path)': \(reason)"
        case let .malformed(line, reason): "IOMMU groups dump line \(line): \(reason)"
        }
    }
}

/// Reads the IOMMU groups of a Linux machine: either a text dump in the
/// format of the oracle's groups.txt (`/sys/kernel/iommu_groups/N`, `type: …`,
/// `reserved_regions:` lines `0xSTART 0xEND kind`, `devices:` names), or the
/// real /sys/kernel/iommu_groups directory tree.
public enum IOMMUGroupsDump {
    /// Reads a dump file or an iommu_groups directory.
    /// - Throws: ``IOMMUGroupsError``.
    public static func read(_ path: String) throws(IOMMUGroupsError) -> [LinuxIOMMUGroup] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .unreadable(path: path, reason: "no such file or directory")
        }
        if isDirectory.boolValue { return try readDirectory(path) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "permission denied")
        }
        return try parse(String(decoding: data, as: UTF8.self))
    }

    /// Parses the text dump format.
    /// - Throws: ``IOMMUGroupsError/malformed(line:reason:)``.
    public static func parse(_ text: String) throws(IOMMUGroupsError) -> [LinuxIOMMUGroup] {
        enum Section { case none, regions, devices }
        var groups: [LinuxIOMMUGroup] = []
        var section = Section.none
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let number = index + 1
            if line.isEmpty { continue }
            if line.hasPrefix("---") { break } // the rest of the dump (types summary, /sys/class/iommu)
            if line.hasPrefix("/sys/kernel/iommu_groups/") || line.hasPrefix("iommu_groups/") {
                guard let id = Int(line.split(separator: "/").last ?? "") else {
                    throw .malformed(line: number, reason: "group path without a number: \(line)")
                }
                groups.append(LinuxIOMMUGroup(number: id, type: "", reservedRegions: [], devices: []))
                section = .none
                continue
            }
            guard !groups.isEmpty else { throw .malformed(line: number, reason: "text before the first group path") }
            if line.hasPrefix("type:") {
                groups[groups.count - 1].type = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                section = .none
            } else if line == "reserved_regions:" {
                section = .regions
            } else if line == "devices:" {
                section = .devices
            } else if section == .regions {
                groups[groups.count - 1].reservedRegions.append(try region(line, line: number))
            } else if section == .devices {
                groups[groups.count - 1].devices.append(line)
            } else {
                throw .malformed(line: number, reason: "unexpected '\(line)'")
            }
        }
        return groups
    }

    /// One `reserved_regions` line: `0xSTART 0xEND kind`.
    /// - Throws: ``IOMMUGroupsError/malformed(line:reason:)``.
    static func region(_ text: String, line: Int) throws(IOMMUGroupsError) -> ReservedRegion {
        let fields = text.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 3, let start = hex(fields[0]), let end = hex(fields[1]), start <= end else {
            throw .malformed(line: line, reason: "reserved region is not '0xSTART 0xEND kind': \(text)")
        }
        guard let kind = ReservedRegion.Kind(rawValue: String(fields[2])) else {
            throw .malformed(line: line, reason: "unknown reserved region kind '\(fields[2])'")
        }
        return ReservedRegion(range: start...end, kind: kind, permissions: kind == .msi ? .write : .readWrite,
                              source: "Linux iommu_groups (\(kind))")
    }

    static func hex(_ text: Substring) -> UInt64? {
        let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? text.dropFirst(2) : text
        return UInt64(digits, radix: 16)
    }

    static func readDirectory(_ path: String) throws(IOMMUGroupsError) -> [LinuxIOMMUGroup] {
        let manager = FileManager.default
        guard let names = try? manager.contentsOfDirectory(atPath: path) else {
            throw .unreadable(path: path, reason: "cannot list the directory")
        }
        var groups: [LinuxIOMMUGroup] = []
        for name in names { // a group is a numbered directory
            guard let number = Int(name) else { continue }
            let base = path + "/" + name
            let type = (try? String(contentsOfFile: base + "/type", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            var regions: [ReservedRegion] = []
            if let text = try? String(contentsOfFile: base + "/reserved_regions", encoding: .utf8) {
                for (index, line) in text.split(separator: "\n").enumerated() {
                    regions.append(try region(String(line), line: index + 1))
                }
            }
            let devices = ((try? manager.contentsOfDirectory(atPath: base + "/devices")) ?? []).sorted()
            groups.append(LinuxIOMMUGroup(number: number, type: type, reservedRegions: regions, devices: devices))
        }
        return groups.sorted { $0.number < $1.number }
    }
}
