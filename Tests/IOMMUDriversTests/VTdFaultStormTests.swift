import Emulation
import IOMMUCore
import IOMMUDrivers
import Synchronization
import Testing

@Suite struct VTdFaultStormTests {
    /// Every fault is announced and drained, so the fault recording
    /// registers never stay full while the driver keeps up.
    @Test func aLongRunOfFaultsIsRecordedAndDeliveredInFull() throws {
        let bed = try VTdBed()
        let domain = try bed.domain(of: bed.nic)
        let delivered = Atomic<Int>(0)
        domain.setFaultHandler { _ in delivered.add(1, ordering: .relaxed) }
        for page in 0..<2_000 as Range<UInt64> {
            _ = bed.nic.engine.write(to: IOVirtualAddress(0x4000_0000 + page << 12), bytes: [1])
        }
        let stats = bed.unit.statistics
        #expect(stats.faultsRecorded == 2_000)
        #expect(stats.faultsOverflowed == 0)
        #expect(delivered.load(ordering: .relaxed) == 2_000)
    }
}
