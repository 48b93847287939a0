import Testing
@testable import Workloads

/// The benchmark's mean and standard deviation come from running moments merged across
/// threads; they must equal the two-pass figures over all the values.
@Suite struct RunningMomentsTests {
    @Test func mergedMomentsEqualTheTwoPassFigures() {
        let first: [Double] = [12.5, 13.0, 11.75, 40.0, 12.25]
        let second: [Double] = [30.0, 29.5, 31.25]
        var a = RunningMoments(), b = RunningMoments()
        first.forEach { a.add($0) }
        second.forEach { b.add($0) }
        let all = first + second
        let mean = all.reduce(0, +) / Double(all.count)
        let deviation = (all.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(all.count)).squareRoot()
        for merged in [a.merged(with: b), b.merged(with: a)] {
            #expect(merged.count == all.count)
            #expect(abs(merged.mean - mean) < 1e-12)
            #expect(abs(merged.populationDeviation - deviation) < 1e-12)
        }
        #expect(RunningMoments().merged(with: a) == a)
        #expect(RunningMoments().populationDeviation == 0)
    }
}
