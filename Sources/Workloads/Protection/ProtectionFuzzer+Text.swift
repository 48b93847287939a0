extension ProtectionFuzzer.Report {
    /// One line per run for terminal output.
    public var summaryLine: String {
        let reached = ReachKind.allCases.map { "\($0.rawValue) \(bytesReached[$0.rawValue] ?? 0)" }.joined(separator: ", ")
        let rate = seconds > 0 ? Int(Double(operations) / seconds) : 0
        return "\(family)/\(strategy) seed \(seed): \(operations) ops (\(rate)/s), \(deviceAccesses) device accesses, "
            + "\(faults) faults, stale \(staleHits) hit/\(staleFaults) faulted, bytes reached: \(reached) — "
            + (passed ? "ok" : "MISMATCH")
    }
}
