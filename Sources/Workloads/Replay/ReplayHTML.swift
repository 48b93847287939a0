/// Feeds the generic HTML run report from a replay.
extension TraceReplayer {
    /// The replay as a one-run ``RunReport`` for ``HTMLReportPage``; latencies and the timeline are
    /// present when the configuration recorded them.
    public func runReport(_ report: ReplayReport) -> RunReport {
        let bytes = report.devices.reduce(UInt64(0)) { $0 + $1.statistics.bytesMapped }
        let units = report.units
        var findings: [String: UInt64] = [
            "replayErrors": UInt64(report.replayErrors), "malformedLines": UInt64(report.malformedLines),
            "peakLiveMappings": UInt64(report.peakLiveMappings), "peakLiveIovaBytes": report.peakLiveIovaBytes,
        ]
        if let comparison = report.comparison {
            findings["compared"] = UInt64(comparison.compared)
            findings["identical"] = UInt64(comparison.identical)
            findings["linuxMapCalls"] = UInt64(comparison.linuxMapCalls)
            findings["ourMapCalls"] = comparison.ourMapCalls
        }
        let series = RunSeries(
            label: "\(report.driver)/\(report.policy)", driver: report.driver, policy: report.policy,
            elapsedSeconds: report.replaySeconds, operations: UInt64(report.replayedCalls), bytesMoved: bytes,
            mapLatency: latencies.mapSummary, unmapLatency: latencies.unmapSummary,
            mapLatencyHistogram: latencies.mapBuckets, unmapLatencyHistogram: latencies.unmapBuckets,
            iotlbHits: units.reduce(0) { $0 + $1.iotlbHits }, iotlbMisses: units.reduce(0) { $0 + $1.iotlbMisses },
            invalidations: units.reduce(0) { $0 + $1.pageInvalidations + $1.domainInvalidations + $1.globalInvalidations },
            faults: units.reduce(0) { $0 + $1.faultsRecorded }, timeline: timeline,
            checksPassed: report.replayErrors == 0 ? 1 : 0, checksFailed: report.replayErrors == 0 ? 0 : 1,
            findings: findings, notes: report.errors + report.malformed)
        return RunReport(title: "Trace replay: \(report.trace)", source: report.trace,
                         parameters: [ReportParameter(name: "lines", value: "\(report.lines)"),
                                      ReportParameter(name: "events/s", value: "\(Int(report.eventsPerSecond))")],
                         runs: [series])
    }
}
