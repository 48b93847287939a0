import Emulation
import IOMMUCore
import IOPageTable

/// An SMMU domain. A translating one owns a context descriptor (its ASID,
/// TCR fields and TTB0) and an AArch64 stage-1 table; the STEs of every
/// attached stream point at that one CD, which never changes while it lives. Identity and blocked domains are
/// just STE configurations (bypass, abort) and own nothing.
final class ARMSMMUDomain: IOMMUDomain, @unchecked Sendable {
    struct Context: Sendable {
        let asid: UInt16
        let granule: ARMTranslationGranule
        let table: ARMLPAETable
        let descriptor: PhysicalAddress
        let pages: PhysicalPageAllocator

        /// MAIR with Linux's io-pgtable indices: 0 non-cacheable, 1 write-back cacheable, 2 device.
        static let memoryAttributes: UInt64 = 0x44 | 0xFF << 8 | 0x04 << 16

        /// Allocates the table and writes the CD, word 0 (with V) last.
        /// - Throws: ``PageTableError`` when memory runs out.
        init(asid: UInt16, granule: ARMTranslationGranule, outputAddressBits: Int,
             pages: PhysicalPageAllocator) throws(PageTableError) {
            self.asid = asid
            self.granule = granule
            self.pages = pages
            table = try ARMLPAETable(memory: pages.memory, pageAllocator: pages, granule: granule,
                                     inputAddressBits: ARMSMMUDriver.inputAddressBits,
                                     physicalAddressBits: outputAddressBits)
            do {
                descriptor = try pages.allocate()
                let memory = pages.memory
                try memory.store64(descriptor + 8, table.root.value & ARMSMMUCD.ttbMask)
                try memory.store64(descriptor + 24, Self.memoryAttributes)
                let word0 = UInt64(64 - ARMSMMUDriver.inputAddressBits) | granule.tg0Encoding << ARMSMMUCD.tg0Shift
                    | ARMSMMUCD.innerWriteBack | ARMSMMUCD.outerWriteBack | ARMSMMUCD.innerShareable | ARMSMMUCD.epd1
                    | ARMSMMUCD.valid | ARMSMMUIdentification.addressSizeEncoding(bits: outputAddressBits) << ARMSMMUCD.ipsShift
                    | ARMSMMUCD.aarch64 | ARMSMMUCD.recordFaults | ARMSMMUCD.abortOnFault
                    | UInt64(asid) << ARMSMMUCD.asidShift
                try memory.store64(descriptor, word0)
            } catch {
                table.destroy()
                throw .memory(error)
            }
        }
    }

    let context: Context?
    /// `context.table`, borrowed by the per-page calls: copying the context out would retain its references.
    let tableReference: UnretainedReference<ARMLPAETable>?
    /// Every unit a stream was ever attached to the domain through. The unit's
    /// TLB tags entries by ASID, not by stream, so they outlive a detach: unmaps
    /// must still be invalidated there, or a re-attach would meet stale entries.
    private let units = AttachedUnits<ARMSMMUDriver.UnitState>()
    /// `context`'s ASID and granule, for the invalidation path: binding the context would
    /// retain its table and allocator on every strict unmap.
    private let asid: UInt16
    private let granule: ARMTranslationGranule

    init(kind: DomainKind, context: Context?, pageSizes: PageSizeSet) {
        self.context = context
        tableReference = context.map { UnretainedReference($0.table) }
        asid = context?.asid ?? 0
        granule = context?.granule ?? .size4K
        let aperture: ClosedRange<UInt64> = context == nil ? 0...UInt64.max : 0...((1 << UInt64(ARMSMMUDriver.inputAddressBits)) - 1)
        super.init(kind: kind, geometry: DomainGeometry(aperture: aperture, outside: .blocked, enforcesAperture: true),
                   pageSizes: pageSizes, driverName: ARMSMMUDriver.driverName)
    }

    func use(_ state: ARMSMMUDriver.UnitState) { units.add(ObjectIdentifier(state), state) }

    override func mapPage(iova: UInt64, physical: UInt64, pageSize: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        try mapPage(in: tableReference, iova: iova, physical: physical, pageSize: pageSize, permissions: permissions)
    }

    override func unmapPage(iova: UInt64, pageSize: UInt64) -> UInt64 { unmapPage(in: tableReference, iova: iova, pageSize: pageSize) }

    override func lookup(_ iova: UInt64) -> PageTableLookup? { lookup(in: tableReference, iova) }

    override func mapGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        try mapGranule(in: tableReference, iova: iova, physical: physical, permissions: permissions, exclusive: false)
    }

    override func mapOwnedGranule(iova: UInt64, physical: UInt64, permissions: AccessPermissions) throws(IOMMUError) {
        try mapGranule(in: tableReference, iova: iova, physical: physical, permissions: permissions, exclusive: true)
    }

    override func unmapGranule(iova: UInt64, gather: inout IOTLBGather) -> PhysicalAddress? {
        unmapGranule(in: tableReference, iova: iova, gather: &gather)
    }

    /// Above this many commands a whole-ASID invalidation is cheaper.
    static let addressInvalidationLimit: UInt64 = 64

    /// Invalidates the gathered range's last-level TLB entries: with range
    /// commands when the unit has them (SMMUv3.2 RIL), one command per granule
    /// otherwise, the whole ASID when that would take too many commands.
    override func flush(_ gather: IOTLBGather) {
        guard !gather.isEmpty, tableReference != nil else { return }
        let granule = granule, asid = asid
        let first = gather.first & ~(granule.rawValue - 1)
        let count = ((gather.last - first) >> UInt64(granule.shift)) + 1
        submitToUnits { state, writer throws(MemoryError) in
            if state.supportsRangeInvalidation, count < 1 << 31 {
                // Each command covers NUM × 2^SCALE granules, NUM taken from the five bits at the lowest set bit
                // of what remains, so any count needs at most one command per five bits.
                var address = first, remaining = count
                while remaining > 0 {
                    let scale = UInt64(remaining.trailingZeroBitCount)
                    let number = (remaining >> scale) & 31
                    try writer.add(ARMSMMUCommandQueue.invalidateAddress(address, asid: asid,
                                                                  range: (granule, number, scale)))
                    address &+= (number << scale) << UInt64(granule.shift)
                    remaining -= number << scale
                }
            } else if count <= Self.addressInvalidationLimit {
                for page in 0..<count {
                    try writer.add(ARMSMMUCommandQueue.invalidateAddress(first + page << UInt64(granule.shift), asid: asid))
                }
            } else {
                try writer.add(ARMSMMUCommandQueue.invalidateASID(asid))
            }
        }
    }

    override func flushAll() {
        guard tableReference != nil else { return }
        let asid = asid
        submitToUnits { _, writer throws(MemoryError) in try writer.add(ARMSMMUCommandQueue.invalidateASID(asid)) }
    }

    /// Frees the table and CD after making every unit it was used on forget the ASID,
    /// so no stale translation can point into the freed memory.
    override func destroy() {
        guard let context else { return }
        flushAll()
        context.table.destroy()
        try? context.pages.free(context.descriptor)
    }

    @inline(__always)
    private func submitToUnits(_ emit: (ARMSMMUDriver.UnitState, inout ARMSMMUCommandQueue.Writer) throws(MemoryError) -> Void) {
        units.forEach { state in try? state.commands.submit { writer throws(MemoryError) in try emit(state, &writer) } }
    }
}
