/// The K8/family 10h northbridge GART registers (function 3 configuration
/// space, AMD BKDG "GART Aperture Control" F3x90-F3x9C) and the GATT entry
/// format. The emulated unit decodes them and the driver programs them.
public enum GARTRegister {
    /// F3x90: GartEn, GartSize, DisGartCpu, DisGartIO, DisTlbWalkPrb.
    public static let apertureControl = 0x90
    /// F3x94: aperture base bits 39:25 in bits 14:0.
    public static let apertureBase = 0x94
    /// F3x98: GATT base bits 39:12 in bits 31:4.
    public static let tableBase = 0x98
    /// F3x9C: InvGart (bit 0) and GartPteErr (bit 1).
    public static let cacheControl = 0x9C
    /// Emulator-only: the error log status (bit 0 pending, bit 1 overflowed, bits 63:32 records dropped).
    public static let errorLogStatus = 0x200
    /// Emulator-only: error records, 16 bytes each (low = address, high = valid | access | requester).
    public static let errorLogBase = 0x210
}

public enum GARTControl {
    public static let enable: UInt32 = 1 << 0
    /// GartSize occupies bits 3:1: the aperture is 32 MiB << GartSize.
    public static let sizeShift: UInt32 = 1
    public static let sizeMask: UInt32 = 0x7 << 1
    public static let disableCPUAccess: UInt32 = 1 << 4
    public static let disableIOAccess: UInt32 = 1 << 5
    public static let disableTableWalkProbe: UInt32 = 1 << 6
}

public enum GARTCacheControl {
    /// Written as 1 to invalidate the GART TLB; reads back 0 once done.
    public static let invalidate: UInt32 = 1 << 0
    /// Set by the hardware when an access used an entry without the valid bit; write 1 to clear.
    public static let pteError: UInt32 = 1 << 1
}

public enum GARTErrorLogStatus {
    public static let pending: UInt64 = 1 << 0
    public static let overflowed: UInt64 = 1 << 1
}

/// Aperture sizes the GartSize field can encode: 32 MiB to 2 GiB.
public enum GARTApertureSize {
    public static let smallest: UInt64 = 32 << 20
    public static let largest: UInt64 = 2 << 30

    /// The GartSize encoding of `bytes`, nil unless it is a power of two from 32 MiB to 2 GiB.
    public static func encoding(of bytes: UInt64) -> UInt32? {
        guard bytes.nonzeroBitCount == 1, bytes >= smallest, bytes <= largest else { return nil }
        return UInt32(bytes.trailingZeroBitCount - smallest.trailingZeroBitCount)
    }

    public static func bytes(forEncoding encoding: UInt32) -> UInt64 { smallest << UInt64(encoding & 7) }
}

/// One 32-bit GATT entry: bit 0 valid, bit 1 coherent, bits 31:12 physical
/// bits 31:12, bits 11:4 physical bits 39:32. No permission bits: a valid
/// entry allows reads and writes alike.
public enum GARTEntry {
    public static let valid: UInt32 = 1 << 0
    public static let coherent: UInt32 = 1 << 1
    /// The GART can reach the first terabyte of physical memory only.
    public static let physicalAddressBits = 40

    @inlinable
    public static func encode(physical: UInt64, coherent isCoherent: Bool = true) -> UInt32 {
        let low = UInt32(truncatingIfNeeded: physical) & 0xFFFF_F000
        let high = UInt32(truncatingIfNeeded: (physical >> 32) & 0xFF) << 4
        return low | high | valid | (isCoherent ? coherent : 0)
    }

    @inlinable
    public static func physical(of entry: UInt32) -> UInt64 {
        UInt64(entry & 0xFFFF_F000) | UInt64(entry & 0xFF0) << 28
    }
}
