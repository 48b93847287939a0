/// Count, mean and sum of squared deviations of a stream of values (Welford's method), and
/// the merge of two such streams (Chan et al.): what a benchmark needs for a mean and a
/// standard deviation without keeping the values.
struct RunningMoments: Sendable, Equatable {
    private(set) var count = 0
    private(set) var mean = 0.0
    private var squaredDeviations = 0.0

    mutating func add(_ value: Double) {
        count += 1
        let delta = value - mean
        mean += delta / Double(count)
        squaredDeviations += delta * (value - mean)
    }

    func merged(with other: RunningMoments) -> RunningMoments {
        guard other.count > 0 else { return self }
        guard count > 0 else { return other }
        var result = RunningMoments()
        result.count = count + other.count
        let delta = other.mean - mean
        result.mean = mean + delta * Double(other.count) / Double(result.count)
        result.squaredDeviations = squaredDeviations + other.squaredDeviations
            + delta * delta * Double(count) * Double(other.count) / Double(result.count)
        return result
    }

    /// The standard deviation of the values seen (not of a sample's estimate); 0 when none were.
    var populationDeviation: Double { count > 0 ? (squaredDeviations / Double(count)).squareRoot() : 0 }
}
