import Emulation
import Synchronization
import Testing

@Suite struct InterruptLineTests {
    /// A closure kept directly in a Mutex grows a thunk per read on this
    /// toolchain; the line must cost the same on the last raise as on the first.
    @Test func raisingManyTimesStaysCheapAndCallsTheHandlerEachTime() {
        let line = InterruptLine()
        let count = Atomic<Int>(0)
        line.raise() // nothing connected: nothing happens
        line.connect { count.add(1, ordering: .relaxed) }
        let clock = ContinuousClock()
        let first = clock.measure { for _ in 0..<20_000 { line.raise() } }
        let later = clock.measure { for _ in 0..<20_000 { line.raise() } }
        #expect(count.load(ordering: .relaxed) == 40_000)
        #expect(later < first * 4 + .milliseconds(50), "raising got slower: \(first) then \(later)")
        line.connect(nil)
        line.raise()
        #expect(count.load(ordering: .relaxed) == 40_000)
    }
}
