extension RunReport {
    /// One row per run (so `--compare` is one table), then each run's findings and notes.
    public func renderText() -> String {
        var out = "\(title)\n"
        out += parameters.map { "\($0.name) \($0.value)" }.joined(separator: ", ") + "\n\n"
        var table = TextTable(["run", "ops", "ops/s", "MB/s", "map p50/p99/p99.9 ns", "unmap p50/p99/p99.9 ns",
                               "IOTLB hit", "invalidations", "faults", "checks"])
        for run in runs {
            table.add([run.label, "\(run.operations)", String(Int(run.operationsPerSecond.rounded())),
                       String(oneDecimal: run.bytesPerSecond / 1e6), Self.percentiles(run.mapLatency),
                       Self.percentiles(run.unmapLatency), String(oneDecimal: run.iotlbHitRate * 100) + "%",
                       "\(run.invalidations)", "\(run.faults)",
                       run.checksFailed == 0 ? "\(run.checksPassed) ok" : "\(run.checksFailed) FAILED"])
        }
        out += table.render() + "\n"
        for run in runs where !run.findings.isEmpty || !run.notes.isEmpty {
            out += "\n\(run.label):\n"
            if !run.findings.isEmpty {
                out += "  " + run.findings.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
            }
            for note in run.notes { out += "  note: \(note)\n" }
        }
        out += "\n\(checksPassed) checks passed, \(checksFailed) failed\n"
        return out
    }

    static func percentiles(_ latency: LatencySummary) -> String {
        latency.count == 0 ? "-" : "\(latency.p50)/\(latency.p99)/\(latency.p999)"
    }
}
