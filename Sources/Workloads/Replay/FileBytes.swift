#if canImport(Glibc)
import Glibc
#endif

/// Whole-file reads for the replay's inputs: one read into one array, no Foundation copies.
enum FileBytes {
    struct ReadError: Error, CustomStringConvertible { var description: String }

    /// - Throws: ``ReadError`` naming the reason (missing file, a directory, permissions).
    static func read(_ path: String) throws(ReadError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            throw ReadError(description: errno == ENOENT ? "no such file" : String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw ReadError(description: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT != S_IFDIR else { throw ReadError(description: "is a directory") }
        // Files in /sys and pipes report size 0: read in chunks until end of file.
        var bytes = [UInt8](repeating: 0, count: max(Int(info.st_size), 0) + 1)
        var filled = 0
        while true {
            if filled == bytes.count { bytes.append(contentsOf: repeatElement(0, count: max(bytes.count, 65536))) }
            let count = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if count < 0 { throw ReadError(description: String(cString: strerror(errno))) }
            if count == 0 { break }
            filled += count
        }
        bytes.removeSubrange(filled...)
        return bytes
    }
}
