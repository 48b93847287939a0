/// A DMAR or IVRS table, chosen by the signature in its first four bytes.
public enum FirmwareTable: Sendable, Hashable {
    case dmar(DMARTable)
    case ivrs(IVRSTable)

    /// Decodes `bytes` as DMAR or IVRS according to its signature.
    public static func parse(_ bytes: [UInt8], options: FirmwareParseOptions = .lenient) throws(FirmwareTableError) -> FirmwareTable {
        let signature = Array(bytes.prefix(4))
        if signature == Array("DMAR".utf8) { return .dmar(try DMARTable.parse(bytes, options: options)) }
        if signature == Array("IVRS".utf8) { return .ivrs(try IVRSTable.parse(bytes, options: options)) }
        throw .unknownSignature(found: signature)
    }

    public var header: ACPITableHeader {
        switch self {
        case .dmar(let table): return table.header
        case .ivrs(let table): return table.header
        }
    }

    public var checksumValid: Bool {
        switch self {
        case .dmar(let table): return table.checksumValid
        case .ivrs(let table): return table.checksumValid
        }
    }
}
