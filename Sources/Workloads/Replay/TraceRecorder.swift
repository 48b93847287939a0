import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a trace could not be recorded.
public enum TraceRecordError: Error, Equatable, Sendable, CustomStringConvertible {
    case tracefsUnavailable(String)
    case permissionDenied(String)
    case noDMAEvents(String)
    case io(String)

    public var description: String {
        switch self {
        case let .tracefsUnavailable(why): "tracefs is not available: \(why)"
        case let .permissionDenied(path): "permission denied writing \(path) (recording needs root)"
        case let .noDMAEvents(root): "\(root)/events has neither dma nor iommu events (this kernel does not trace them)"
        case let .io(why): why
        }
    }
}

/// Records the dma:* and iommu:* events of the running Linux kernel with
/// ftrace, then puts back the tracing switches it found. The ring buffer is
/// cleared at the start (its old contents cannot be restored).
public struct TraceRecorder: Sendable {
    /// The tracefs mount point; nil: /sys/kernel/tracing, else /sys/kernel/debug/tracing, mounting tracefs if needed.
    public var root: String?

    public init(root: String? = nil) { self.root = root }

    /// Records for `seconds` and writes the trace text to `output`.
    /// - Throws: ``TraceRecordError``: no tracefs, not root, no DMA events in this kernel, or a failed read/write.
    public func record(seconds: Double, output: String) throws(TraceRecordError) {
        let (root, mounted) = try locateRoot()
        defer {
            // Leave the machine as found: a tracefs this call mounted is unmounted again.
            #if os(Linux)
            if mounted { _ = umount(root) }
            #endif
        }
        let enables = ["events/dma/enable", "events/iommu/enable"].filter { FileManager.default.fileExists(atPath: "\(root)/\($0)") }
        guard !enables.isEmpty else { throw .noDMAEvents(root) }
        guard access("\(root)/tracing_on", W_OK) == 0 else { throw .permissionDenied("\(root)/tracing_on") }
        let switches = ["tracing_on"] + enables
        var saved: [String: String] = [:]
        for name in switches { saved[name] = try read("\(root)/\(name)").trimmingCharacters(in: .whitespacesAndNewlines) }
        defer {
            // Event enables read back as 0, 1 or X (mixed); X cannot be written back, so it leaves them on.
            for name in switches.reversed() where saved[name] == "0" || saved[name] == "1" {
                try? write("\(root)/\(name)", saved[name]!)
            }
        }
        try write("\(root)/tracing_on", "0")
        try write("\(root)/trace", "")
        for name in enables { try write("\(root)/\(name)", "1") }
        try write("\(root)/tracing_on", "1")
        Thread.sleep(forTimeInterval: max(0, seconds))
        try write("\(root)/tracing_on", "0")
        guard let data = FileManager.default.contents(atPath: "\(root)/trace") else { throw .io("cannot read \(root)/trace") }
        guard FileManager.default.createFile(atPath: output, contents: data) else { throw .io("cannot write \(output)") }
    }

    /// The tracefs directory, and whether this call mounted it.
    func locateRoot() throws(TraceRecordError) -> (String, Bool) {
        if let root {
            guard FileManager.default.fileExists(atPath: "\(root)/trace") else {
                throw .tracefsUnavailable("\(root)/trace does not exist")
            }
            return (root, false)
        }
        for candidate in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        where FileManager.default.fileExists(atPath: "\(candidate)/trace") { return (candidate, false) }
        #if os(Linux)
        if mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nil) == 0,
           FileManager.default.fileExists(atPath: "/sys/kernel/tracing/trace") { return ("/sys/kernel/tracing", true) }
        let why = String(cString: strerror(errno))
        throw errno == EPERM || errno == EACCES ? .permissionDenied("mount tracefs on /sys/kernel/tracing")
            : .tracefsUnavailable("not mounted, and mounting it failed: \(why)")
        #else
        throw .tracefsUnavailable("ftrace exists only on Linux")
        #endif
    }

    private func read(_ path: String) throws(TraceRecordError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw .io("cannot read \(path)") }
        return String(decoding: data, as: UTF8.self)
    }

    private func write(_ path: String, _ value: String) throws(TraceRecordError) {
        let descriptor = open(path, O_WRONLY | O_TRUNC)
        guard descriptor >= 0 else {
            throw errno == EACCES || errno == EPERM ? .permissionDenied(path) : .io("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let bytes = Array((value + "\n").utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw .io("cannot write \(path): \(String(cString: strerror(errno)))") }
    }
}
