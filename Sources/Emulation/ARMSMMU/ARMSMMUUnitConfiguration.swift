/// The build-time properties of an emulated SMMUv3, which its ID registers
/// advertise to the driver.
public struct ARMSMMUUnitConfiguration: Sendable, Hashable {
    /// Translation granules the walker supports: IDR5.GRAN4K/16K/64K.
    public var granules: Set<ARMTranslationGranule> = Set(ARMTranslationGranule.allCases)
    /// Output (physical) address size in bits: IDR5.OAS.
    public var outputAddressBits: Int = 48
    /// StreamID bits: IDR1.SIDSIZE. PCI requester IDs need 16.
    public var streamIDBits: Int = 16
    /// Largest queues the driver may configure, as log2 of entries: IDR1.CMDQS / EVENTQS.
    public var maxCommandQueueLog2: Int = 19
    public var maxEventQueueLog2: Int = 19
    /// Range invalidation (SMMUv3.2 IDR3.RIL).
    public var supportsRangeInvalidation = true
    public var tlbSets = 64
    public var tlbWays = 8

    public init() {}

    public var idr0: UInt64 {
        ARMSMMUIdentification.stage1 | ARMSMMUIdentification.aarch64Tables | ARMSMMUIdentification.coherent
            | ARMSMMUIdentification.asid16
    }

    public var idr1: UInt64 {
        UInt64(clampedStreamIDBits) << ARMSMMUIdentification.streamIDSizeShift
            | UInt64(max(0, min(maxEventQueueLog2, 19))) << ARMSMMUIdentification.eventQueueSizeShift
            | UInt64(max(0, min(maxCommandQueueLog2, 19))) << ARMSMMUIdentification.commandQueueSizeShift
    }

    public var idr3: UInt64 { supportsRangeInvalidation ? ARMSMMUIdentification.rangeInvalidation : 0 }

    public var idr5: UInt64 {
        var value = ARMSMMUIdentification.addressSizeEncoding(bits: outputAddressBits)
        if granules.contains(.size4K) { value |= ARMSMMUIdentification.granule4K }
        if granules.contains(.size16K) { value |= ARMSMMUIdentification.granule16K }
        if granules.contains(.size64K) { value |= ARMSMMUIdentification.granule64K }
        return value
    }

    var clampedStreamIDBits: Int { max(1, min(streamIDBits, 32)) }
    /// The output size the hardware really uses, rounded to an OAS encoding.
    var effectiveOutputBits: Int {
        ARMSMMUIdentification.addressSize(encoding: ARMSMMUIdentification.addressSizeEncoding(bits: outputAddressBits))
    }
}

/// Counters the emulated SMMU keeps; reports read them.
public struct ARMSMMUUnitStatistics: Sendable, Hashable, Codable {
    public var translations: UInt64 = 0
    public var tlbHits: UInt64 = 0
    public var tlbMisses: UInt64 = 0
    public var pageWalks: UInt64 = 0
    public var configCacheMisses: UInt64 = 0
    public var commandsExecuted: UInt64 = 0
    public var commandErrors: UInt64 = 0
    public var configInvalidations: UInt64 = 0
    public var addressInvalidations: UInt64 = 0
    public var asidInvalidations: UInt64 = 0
    public var globalInvalidations: UInt64 = 0
    public var syncs: UInt64 = 0
    public var tlbEntriesDropped: UInt64 = 0
    public var eventsRecorded: UInt64 = 0
    /// Events dropped because the queue was full (the queue's overflow flag was toggled).
    public var eventsLost: UInt64 = 0
    /// Events discarded because the event queue was disabled (CR0.EVENTQEN clear).
    public var eventsDiscarded: UInt64 = 0
    /// Faults of contexts whose CD asks not to record them (CD.R = 0), or of aborting STEs.
    public var faultsNotRecorded: UInt64 = 0
}
