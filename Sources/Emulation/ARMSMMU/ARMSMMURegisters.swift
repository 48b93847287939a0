/// Register offsets of an SMMUv3 (Arm IHI 0070, chapter 6). Page 0 holds the
/// control registers; the event queue's PROD and CONS live in page 1 (64 KiB up).
public enum ARMSMMURegister {
    public static let idr0 = 0x00
    public static let idr1 = 0x04
    public static let idr3 = 0x0C
    public static let idr5 = 0x14
    public static let cr0 = 0x20
    public static let cr0Ack = 0x24
    public static let gbpa = 0x44
    public static let irqControl = 0x50
    public static let irqControlAck = 0x54
    public static let globalError = 0x60
    public static let globalErrorAck = 0x64
    public static let streamTableBase = 0x80
    public static let streamTableConfig = 0x88
    public static let commandQueueBase = 0x90
    public static let commandQueueProducer = 0x98
    public static let commandQueueConsumer = 0x9C
    public static let eventQueueBase = 0xA0
    public static let eventQueueProducer = 0x1_00A8
    public static let eventQueueConsumer = 0x1_00AC
}

/// CR0 / CR0ACK bits.
public enum ARMSMMUControl {
    public static let smmuEnable: UInt64 = 1 << 0
    public static let eventQueueEnable: UInt64 = 1 << 2
    public static let commandQueueEnable: UInt64 = 1 << 3
}

/// GBPA: what happens to every transaction while SMMUEN is clear.
public enum ARMSMMUGlobalBypass {
    public static let abort: UInt64 = 1 << 20
    public static let update: UInt64 = 1 << 31
}

/// IRQ_CTRL / IRQ_CTRLACK bits.
public enum ARMSMMUInterruptControl {
    public static let globalErrorEnable: UInt64 = 1 << 0
    public static let eventQueueEnable: UInt64 = 1 << 2
}

/// GERROR / GERRORN bits: an error is active while the two registers differ in its bit.
public enum ARMSMMUGlobalError {
    public static let commandQueueError: UInt64 = 1 << 0
    public static let eventQueueAbort: UInt64 = 1 << 2
}

/// CMDQ_CONS.ERR codes: why the command queue stopped.
public enum ARMSMMUCommandError: UInt64, Sendable {
    case none = 0
    /// CERROR_ILL: an unknown opcode or a malformed command.
    case illegal = 1
    /// CERROR_ABT: the command could not be fetched.
    case abort = 2

    public static let shift: UInt64 = 24
}

/// ID register fields the driver decodes.
public enum ARMSMMUIdentification {
    /// IDR0.S1P: stage-1 translation.
    public static let stage1: UInt64 = 1 << 1
    /// IDR0.TTF = 0b10: AArch64 tables.
    public static let aarch64Tables: UInt64 = 2 << 2
    /// IDR0.COHACC: coherent table and queue accesses.
    public static let coherent: UInt64 = 1 << 4
    /// IDR0.ASID16.
    public static let asid16: UInt64 = 1 << 12
    /// IDR1 field shifts: SIDSIZE [5:0], EVENTQS [20:16], CMDQS [25:21].
    public static let streamIDSizeShift: UInt64 = 0
    public static let eventQueueSizeShift: UInt64 = 16
    public static let commandQueueSizeShift: UInt64 = 21
    /// IDR3.RIL: range TLB invalidation.
    public static let rangeInvalidation: UInt64 = 1 << 10
    /// IDR5.GRAN4K / GRAN16K / GRAN64K.
    public static let granule4K: UInt64 = 1 << 4
    public static let granule16K: UInt64 = 1 << 5
    public static let granule64K: UInt64 = 1 << 6

    /// The IDR5.OAS / CD.IPS encoding of a physical address size.
    public static func addressSizeEncoding(bits: Int) -> UInt64 {
        switch bits {
        case ...32: 0
        case ...36: 1
        case ...40: 2
        case ...42: 3
        case ...44: 4
        case ...48: 5
        default: 6
        }
    }

    /// The address size an IDR5.OAS / CD.IPS value encodes.
    public static func addressSize(encoding: UInt64) -> Int {
        [32, 36, 40, 42, 44, 48, 52][Int(min(encoding, 6))]
    }
}

/// Queue base and index register layouts shared by the command and event queues.
public enum ARMSMMUQueue {
    /// Q_BASE.ADDR, bits 51:5.
    public static let baseAddressMask: UInt64 = 0x000F_FFFF_FFFF_FFE0
    /// Q_BASE.LOG2SIZE, bits 4:0.
    public static let log2SizeMask: UInt64 = 0x1F
    /// EVENTQ_PROD.OVFLG / EVENTQ_CONS.OVACKFLG, bit 31.
    public static let overflowFlag: UInt64 = 1 << 31
    public static let commandBytes: UInt64 = 16
    public static let eventBytes: UInt64 = 32
}

/// STRTAB_BASE and STRTAB_BASE_CFG layouts.
public enum ARMSMMUStreamTable {
    /// STRTAB_BASE.ADDR, bits 51:6.
    public static let baseAddressMask: UInt64 = 0x000F_FFFF_FFFF_FFC0
    /// STRTAB_BASE_CFG.LOG2SIZE, bits 5:0.
    public static let log2SizeMask: UInt64 = 0x3F
    /// STRTAB_BASE_CFG.FMT, bits 17:16: 0 linear, 1 two-level.
    public static let formatShift: UInt64 = 16
    public static let linearFormat: UInt64 = 0
    public static let entryBytes: UInt64 = 64
}
