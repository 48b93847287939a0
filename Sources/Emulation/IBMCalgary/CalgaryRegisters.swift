/// Register offsets and fields of an IBM Calgary PCI host bridge chip, in
/// its 1 MiB register space (BBAR), as Linux's pci-calgary_64.c and
/// calgary.h use them. Calgary has four PHBs (PCI host bridges); each has a
/// table address register (TAR) and its own register block.
public enum CalgaryRegister {
    public static let phbCount = 4

    /// TAR of PHB `phb`: TCE table base bits 47:15 and the table size code in bits 2:0.
    /// Writing it (even the same value) invalidates the PHB's TCE cache.
    public static func tableAddress(phb: Int) -> Int { 0x0580 + 8 * phb }
    /// The register block of PHB `phb`.
    public static func phbBase(_ phb: Int) -> Int { 0x8000 + 0x1000 * phb }
    /// PHB configuration: TCE enable, slot disable, DAC disable, MCSR enable.
    public static func phbConfiguration(phb: Int) -> Int { phbBase(phb) + 0x0160 }
    /// Channel status: non-zero while the PHB holds an unreported DMA error; write 0 to reset.
    public static func channelStatus(phb: Int) -> Int { phbBase(phb) + 0x0110 }
    /// Bus range the PHB decodes: start bus in bits 23:16, end bus in bits 15:8 (0: a single bus);
    /// bit 31 (an emulator addition) is set when the PHB is wired to any bus at all.
    public static func busRange(phb: Int) -> Int { 0x4000 + 0x1000 * phb + 0x20 }
    /// Emulator-only: error log status (bit 0 pending, bit 1 overflowed, bits 63:32 records dropped).
    public static let errorLogStatus = 0xF_0000
    /// Emulator-only: error records, 16 bytes each (low = address, high = valid | kind | PHB | access | requester).
    public static let errorLogBase = 0xF_0010
}

public enum CalgaryBusRange {
    public static let present: UInt64 = 1 << 31

    /// The buses a bus-range register value describes, nil for an unwired PHB.
    public static func decode(_ value: UInt64) -> ClosedRange<UInt8>? {
        guard value & present != 0 else { return nil }
        let start = UInt8((value >> 16) & 0xFF), end = UInt8((value >> 8) & 0xFF)
        return end > start ? start...end : start...start
    }
}

public enum CalgaryPHBConfiguration {
    public static let tceEnable: UInt32 = 0x2000_0000
    public static let slotDisable: UInt32 = 0x1C00_0000
    /// Dual-address-cycle (64-bit) bus addresses refused: the window is all a device can reach.
    public static let dacDisable: UInt32 = 0x0100_0000
    public static let memory2Enable: UInt32 = 0x0040_0000
    public static let mcsrEnable: UInt32 = 0x0010_0000
}

public enum CalgaryTableAddress {
    /// The bits software controls: base bits 47:15 and bits 3:0.
    public static let softwareBits: UInt64 = 0x0000_FFFF_FFFF_800F
    public static let baseMask: UInt64 = 0x0000_FFFF_FFFF_8000
    public static let sizeMask: UInt64 = 0x7

    /// Entries for a size code: code 0 is a 64 KiB table of 8K entries, each step doubles it.
    public static func entries(sizeCode: UInt64) -> UInt64 { 8192 << (sizeCode & 7) }
    /// The DMA window a size code gives: 32 MiB (code 0) to 4 GiB (code 7), from bus address 0.
    public static func windowBytes(sizeCode: UInt64) -> UInt64 { entries(sizeCode: sizeCode) << 12 }

    /// The size code for a window of `bytes`, nil unless a power of two from 32 MiB to 4 GiB.
    public static func sizeCode(windowBytes bytes: UInt64) -> UInt64? {
        guard bytes.nonzeroBitCount == 1, bytes >= 32 << 20, bytes <= 4 << 30 else { return nil }
        return UInt64(bytes.trailingZeroBitCount - 25)
    }
}

public enum CalgaryErrorLogStatus {
    public static let pending: UInt64 = 1 << 0
    public static let overflowed: UInt64 = 1 << 1
}

/// One translation control entry: bit 0 read, bit 1 write (both clear: not
/// valid), bits 47:12 the real page number. Bits 11:2 and 63:48 are unused.
public enum CalgaryTCE {
    public static let read: UInt64 = 1 << 0
    public static let write: UInt64 = 1 << 1
    public static let pageMask: UInt64 = 0x0000_FFFF_FFFF_F000
    public static let physicalAddressBits = 48

    @inlinable
    public static func encode(physical: UInt64, permissions: AccessPermissions) -> UInt64 {
        (physical & pageMask) | (permissions.contains(.read) ? read : 0) | (permissions.contains(.write) ? write : 0)
    }

    @inlinable
    public static func permissions(of entry: UInt64) -> AccessPermissions { AccessPermissions(rawValue: UInt8(entry & 3)) }
}
