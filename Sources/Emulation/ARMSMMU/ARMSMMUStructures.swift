/// Stream table entry fields (IHI 0070, 5.2). An STE is 64 bytes; only the
/// words the stage-1 model reads are described.
public enum ARMSMMUSTE {
    /// Word 0 bit 0: V.
    public static let valid: UInt64 = 1 << 0
    /// Word 0 bits 3:1: Config.
    public static let configShift: UInt64 = 1
    public static let configMask: UInt64 = 0x7 << 1
    /// Word 0 bits 5:4: S1Fmt (0 = a single CD or a linear CD table).
    public static let stage1FormatShift: UInt64 = 4
    /// Word 0 bits 51:6: S1ContextPtr.
    public static let contextPointerMask: UInt64 = 0x000F_FFFF_FFFF_FFC0
    /// Word 0 bits 63:59: S1CDMax (log2 of the CD count; 0 = one CD, no substreams).
    public static let contextCountShift: UInt64 = 59

    /// STE.Config values.
    public enum Config: UInt64, Sendable, CaseIterable {
        /// Every transaction is terminated, with no event.
        case abort = 0b000
        /// Both stages bypassed: the input address is the output address.
        case bypass = 0b100
        /// Stage-1 translation, stage 2 bypassed.
        case stage1 = 0b101
        /// Stage-2 only; this model has no stage 2.
        case stage2 = 0b110
        /// Both stages; this model has no stage 2.
        case nested = 0b111
    }

    /// Word 0 of an STE with `config`, pointing at a single CD when translating.
    public static func word0(config: Config, contextDescriptor: UInt64 = 0) -> UInt64 {
        valid | config.rawValue << configShift | (contextDescriptor & contextPointerMask)
    }
}

/// Context descriptor fields (IHI 0070, 5.4). A CD is 64 bytes.
public enum ARMSMMUCD {
    /// Word 0 bits 5:0: T0SZ, the TTB0 region is 2^(64 - T0SZ) bytes.
    public static let t0szMask: UInt64 = 0x3F
    /// Word 0 bits 7:6: TG0.
    public static let tg0Shift: UInt64 = 6
    /// Word 0 bits 9:8, 11:10, 13:12: IR0, OR0, SH0 (walk cacheability and shareability).
    public static let innerWriteBack: UInt64 = 1 << 8
    public static let outerWriteBack: UInt64 = 1 << 10
    public static let innerShareable: UInt64 = 3 << 12
    /// Word 0 bit 14: EPD0, walks through TTB0 disabled.
    public static let epd0: UInt64 = 1 << 14
    /// Word 0 bit 30: EPD1, walks through TTB1 disabled.
    public static let epd1: UInt64 = 1 << 30
    /// Word 0 bit 31: V.
    public static let valid: UInt64 = 1 << 31
    /// Word 0 bits 34:32: IPS, the intermediate (here: output) physical address size.
    public static let ipsShift: UInt64 = 32
    /// Word 0 bit 35: AFFD, access-flag faults disabled.
    public static let accessFlagFaultDisable: UInt64 = 1 << 35
    /// Word 0 bit 41: AA64, AArch64 tables.
    public static let aarch64: UInt64 = 1 << 41
    /// Word 0 bit 45: R, record faults of this context in the event queue.
    public static let recordFaults: UInt64 = 1 << 45
    /// Word 0 bit 46: A, abort (rather than stall) faulting transactions.
    public static let abortOnFault: UInt64 = 1 << 46
    /// Word 0 bit 47: ASET, the ASID is shared with the CPUs.
    public static let asidShared: UInt64 = 1 << 47
    /// Word 0 bits 63:48: ASID.
    public static let asidShift: UInt64 = 48
    /// Word 1 bits 51:4: TTB0.
    public static let ttbMask: UInt64 = 0x000F_FFFF_FFFF_FFF0
    /// T0SZ range this model accepts: 48-bit down to 25-bit input spaces.
    public static let t0szRange: ClosedRange<UInt64> = 16...39
}

/// Command opcodes and fields (IHI 0070, 4.1-4.7). Commands are 16 bytes.
public enum ARMSMMUCommand {
    public static let prefetchConfig: UInt64 = 0x01
    public static let configInvalidateSTE: UInt64 = 0x03
    /// CMD_CFGI_STE_RANGE; with Range = 31 it is CMD_CFGI_ALL.
    public static let configInvalidateSTERange: UInt64 = 0x04
    public static let configInvalidateCD: UInt64 = 0x05
    public static let configInvalidateCDAll: UInt64 = 0x06
    public static let tlbiNonHypAll: UInt64 = 0x10
    public static let tlbiNonHypASID: UInt64 = 0x11
    public static let tlbiNonHypVA: UInt64 = 0x12
    public static let tlbiNonSecureNonHypAll: UInt64 = 0x30
    public static let sync: UInt64 = 0x46

    /// Word 0 bits 63:32: StreamID (CFGI); bits 31:12: SubstreamID (CFGI_CD).
    public static let streamIDShift: UInt64 = 32
    public static let substreamIDShift: UInt64 = 12
    /// Word 1 bits 4:0: Range of CFGI_STE_RANGE (2^(Range+1) StreamIDs); 31 = all.
    public static let rangeMask: UInt64 = 0x1F
    /// Word 1 bit 0: Leaf (CFGI: only the STE/CD; TLBI: only last-level entries).
    public static let leaf: UInt64 = 1 << 0
    /// TLBI word 0: NUM [16:12], SCALE [24:20], VMID [47:32], ASID [63:48].
    public static let numberShift: UInt64 = 12
    public static let scaleShift: UInt64 = 20
    public static let asidShift: UInt64 = 48
    /// TLBI word 1: TTL [9:8], TG [11:10], Address [63:12].
    public static let granuleShift: UInt64 = 10
    public static let addressMask: UInt64 = ~0xFFF
    /// CMD_SYNC word 0: CS [13:12] (0 none, 1 SIG_IRQ: write MSIData to MSIAddress, 2 SIG_SEV), MSIData [63:32].
    public static let syncSignalShift: UInt64 = 12
    public static let syncSignalIRQ: UInt64 = 1
    public static let syncDataShift: UInt64 = 32
    /// CMD_SYNC word 1: MSIAddress [51:2].
    public static let syncAddressMask: UInt64 = 0x000F_FFFF_FFFF_FFFC
}
