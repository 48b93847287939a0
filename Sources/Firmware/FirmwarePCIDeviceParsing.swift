extension FirmwarePCIDevice {
    /// Parses a device description as given on the command line:
    /// `[ssss:]bb:dd.f[=SEC[-SUB]][@CLASS]`, all hexadecimal.
    ///
    /// `=SEC-SUB` marks a bridge with its secondary and subordinate bus
    /// numbers; `@CLASS` gives the 24-bit PCI class code (e.g. `@0c0330` for
    /// an xHCI controller). Examples: `00:02.0@030000`, `0000:00:1c.4=02-03`.
    public init?(parsing text: String) {
        var rest = Substring(text)
        var classCode: UInt32?
        if let at = rest.firstIndex(of: "@") {
            guard let value = UInt32(rest[rest.index(after: at)...], radix: 16), value <= 0xFF_FFFF else { return nil }
            classCode = value
            rest = rest[..<at]
        }
        var secondary: UInt8?
        var subordinate: UInt8?
        if let equals = rest.firstIndex(of: "=") {
            let buses = rest[rest.index(after: equals)...].split(separator: "-", omittingEmptySubsequences: false)
            guard buses.count == 1 || buses.count == 2, let first = UInt8(buses[0], radix: 16) else { return nil }
            secondary = first
            if buses.count == 2 {
                guard let last = UInt8(buses[1], radix: 16), last >= first else { return nil }
                subordinate = last
            }
            rest = rest[..<equals]
        }
        guard let address = FirmwarePCIAddress(parsing: String(rest)) else { return nil }
        self.init(address, secondaryBus: secondary, subordinateBus: subordinate, classCode: classCode)
    }
}
