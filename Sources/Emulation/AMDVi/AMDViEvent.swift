/// One 128-bit event log entry as the unit writes it into memory:
/// doubleword 0 the device ID, doubleword 1 the domain ID (bits 15:0), the
/// flags (27:16) and the event code (31:28), doublewords 2–3 the address.
public struct AMDViEvent: Sendable, Hashable, Codable {
    public var code: AMDViEventCode
    public var deviceID: UInt16
    public var domainID: UInt16
    public var flags: AMDViEventFlags
    public var address: UInt64

    public init(code: AMDViEventCode, deviceID: UInt16, domainID: UInt16 = 0, flags: AMDViEventFlags, address: UInt64) {
        self.code = code
        self.deviceID = deviceID
        self.domainID = domainID
        self.flags = flags
        self.address = address
    }

    /// The two little-endian quadwords of the entry.
    public var image: (low: UInt64, high: UInt64) {
        let second = UInt64(domainID) | UInt64(flags.rawValue) << 16 | UInt64(code.rawValue) << 28
        return (UInt64(deviceID) | second << 32, address)
    }

    /// Decodes an entry; nil for an empty slot or an event code this model does not produce.
    public init?(low: UInt64, high: UInt64) {
        guard let code = AMDViEventCode(rawValue: UInt8((low >> 60) & 0xF)) else { return nil }
        self.init(code: code, deviceID: UInt16(low & 0xFFFF), domainID: UInt16((low >> 32) & 0xFFFF),
                  flags: AMDViEventFlags(rawValue: UInt16((low >> 48) & 0xFFF)), address: high)
    }
}

/// The build-time properties of an emulated AMD-Vi unit, which its extended
/// feature register advertises to the driver.
public struct AMDViUnitConfiguration: Sendable, Hashable {
    /// Deepest host page table the unit walks (4...6; HATS).
    public var maximumLevels: Int = 6
    public var supportsInvalidateAll = true
    public var iotlbSets = 64
    public var iotlbWays = 8
    /// Physical address bits the unit accepts in table pointers.
    public var physicalAddressBits = 52

    public init() {}

    /// The extended feature register image.
    public var extendedFeatureRegister: UInt64 {
        let hats = UInt64(max(0, min(2, maximumLevels - 4)))
        return (supportsInvalidateAll ? AMDViFeature.invalidateAll : 0) | hats << AMDViFeature.hostAddressTranslationSizeShift
    }

    /// The levels the extended feature register promises.
    public var advertisedLevels: Int { 4 + Int((extendedFeatureRegister >> AMDViFeature.hostAddressTranslationSizeShift) & 3) }
}

/// Counters the emulated unit keeps; reports read them.
public struct AMDViUnitStatistics: Sendable, Hashable, Codable {
    public var translations: UInt64 = 0
    public var passedThrough: UInt64 = 0
    public var excluded: UInt64 = 0
    public var iotlbHits: UInt64 = 0
    public var iotlbMisses: UInt64 = 0
    public var pageWalks: UInt64 = 0
    public var deviceTableReads: UInt64 = 0
    public var commandsProcessed: UInt64 = 0
    public var completionWaits: UInt64 = 0
    public var pageInvalidations: UInt64 = 0
    public var domainInvalidations: UInt64 = 0
    public var globalInvalidations: UInt64 = 0
    public var deviceTableInvalidations: UInt64 = 0
    public var iotlbEntriesDropped: UInt64 = 0
    public var eventsLogged: UInt64 = 0
    public var eventsOverflowed: UInt64 = 0
    public var eventsSuppressed: UInt64 = 0
    public var illegalCommands: UInt64 = 0
}
