import Foundation
import Testing
@testable import Workloads

/// The HTML page, the JSON model and the progress line.
@Suite struct ScenarioReportTests {
    static let parameters = ScenarioParameters(devices: 1, queueDepth: 8, minSize: 64, maxSize: 1514, operations: 60, seed: 2)

    static func compared() throws -> RunReport {
        try ScenarioRunner.report(.network, parameters: parameters, families: [.intelVTd], policies: [.strict, .lazy])
    }

    /// `data-points="N"` of the chart with `id`, nil when the chart is missing.
    static func points(_ html: String, chart id: String) -> Int? {
        guard let figure = html.range(of: "id=\"chart-\(id)\" data-chart=\"\(id)\" data-points=\"") else { return nil }
        return Int(html[figure.upperBound...].prefix { $0.isNumber })
    }

    @Test func thePageHasEveryChartWithData() throws {
        let report = try Self.compared()
        let page = HTMLReportPage(report)
        let html = page.render()
        #expect(page.chartIDs.count == 11)
        for id in page.chartIDs {
            let count = try #require(Self.points(html, chart: id), "chart \(id) is missing")
            #expect(count > 0, "chart \(id) has no data")
            let start = try #require(html.range(of: "id=\"chart-\(id)\""))
            let end = try #require(html.range(of: "</figure>", range: start.upperBound..<html.endIndex))
            let figure = html[start.lowerBound..<end.lowerBound]
            #expect(figure.contains("<svg"))
            #expect(figure.contains("class=\"datum\"") || figure.contains("class=\"series\""))
        }
        #expect(html.contains("<meta name=\"expected-charts\" content=\"\(page.chartIDs.joined(separator: ","))\">"))
        #expect(html.contains("id=\"render-check\""))
    }

    @Test func thePageIsSelfContained() throws {
        let html = HTMLReportPage(try Self.compared()).render()
        for forbidden in ["http://", "https://", "<script src", "<link", "@import", "url("] {
            #expect(!html.contains(forbidden), "the page refers to something outside itself: \(forbidden)")
        }
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<script>") && html.contains("<style>"))
    }

    @Test func aSingleRunHasNoComparisonChartsAndTextIsEscaped() throws {
        var run = try ScenarioRunner.run(.legacy32, parameters: Self.parameters, family: .intelVTd, policy: .strict)
        run.notes.append("<script>alert('x')</script> & more")
        let page = HTMLReportPage(RunReport(title: "t<b>", source: "test", parameters: [], runs: [run]))
        let html = page.render()
        #expect(page.chartIDs == ["map-latency", "unmap-latency", "iova-occupancy", "iotlb-hit-rate", "faults"])
        #expect(Self.points(html, chart: "compare-throughput") == nil)
        #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"))
        #expect(html.contains("<title>t&lt;b&gt;</title>"))
        #expect(!html.contains("<script>alert"))
    }

    @Test func anEmptyRunDrawsChartsWithoutDataThatTheCheckFlags() {
        let empty = RunSeries(label: "none", driver: "vtd", policy: "strict", elapsedSeconds: 0, operations: 0,
                              bytesMoved: 0, mapLatency: .empty, unmapLatency: .empty, mapLatencyHistogram: [],
                              unmapLatencyHistogram: [], iotlbHits: 0, iotlbMisses: 0, invalidations: 0, faults: 0,
                              timeline: [], checksPassed: 0, checksFailed: 0, findings: [:], notes: [])
        let html = HTMLReportPage(RunReport(title: "empty", source: "test", parameters: [], runs: [empty])).render()
        #expect(Self.points(html, chart: "map-latency") == 0)
        #expect(html.contains("no data recorded"))
    }

    @Test func theRunReportRoundTripsThroughJSONForReplay() throws {
        let report = try Self.compared()
        let json = try JSONText.encode(report)
        #expect(json.contains("\"checksPassed\":\(report.checksPassed)"))
        #expect(json.contains("\"mapLatencyHistogram\":[{"))
        let decoded = try JSONDecoder().decode(RunReport.self, from: Data(json.utf8))
        #expect(decoded == report)
        #expect(HTMLReportPage(decoded).render() == HTMLReportPage(report).render())
    }

    @Test func latencyHistogramsHoldEveryMapAndUnmap() throws {
        let run = try ScenarioRunner.run(.nvme, parameters: ScenarioParameters(devices: 1, queueDepth: 4, minSize: 4096,
                                                                                maxSize: 64 << 10, operations: 12, seed: 4),
                                         family: .intelVTd, policy: .strict)
        #expect(run.mapLatency.count > 0)
        #expect(run.mapLatencyHistogram.reduce(0) { $0 + $1.count } == run.mapLatency.count)
        #expect(run.unmapLatencyHistogram.reduce(0) { $0 + $1.count } == run.unmapLatency.count)
        #expect(run.mapLatency.p50 <= run.mapLatency.p99 && run.mapLatency.p99 <= run.mapLatency.max)
        let bounds = run.mapLatencyHistogram.map(\.upToNanoseconds)
        #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $1 == $0 * 2 }, "buckets double in width")
        #expect(run.timeline.first?.elapsedSeconds == 0 || (run.timeline.first?.operations ?? 1) == 0)
        #expect(run.timeline.last?.iovaBytesInUse == 0, "everything is unmapped at the end")
        #expect(run.timeline.contains { $0.iovaBytesInUse > 0 })
    }

    @Test func theProgressLineIsSilentWhenNotATerminalOrQuiet() {
        for (terminal, quiet) in [(false, false), (false, true), (true, true)] {
            var written: [String] = []
            let line = ProgressLine(isTerminal: terminal, quiet: quiet) { written.append($0) }
            for second in stride(from: 0.0, through: 10.0, by: 0.5) { line.update(Self.progress(at: second)) }
            line.finish()
            #expect(written.isEmpty, "terminal \(terminal), quiet \(quiet)")
        }
    }

    @Test func theProgressLineAppearsAfterTwoSecondsAndIsErasedAtTheEnd() {
        var written: [String] = []
        let line = ProgressLine(isTerminal: true, quiet: false) { written.append($0) }
        line.update(Self.progress(at: 0.5))
        line.update(Self.progress(at: 1.9))
        #expect(written.isEmpty, "no line for the first two seconds")
        line.update(Self.progress(at: 2.1))
        line.update(Self.progress(at: 2.15))
        #expect(written == ["\rnvme vtd/strict  2.1 s  210/1000 commands (21%)"], "drawn once, then throttled")
        line.update(Self.progress(at: 3.0))
        line.finish()
        #expect(written.count == 3)
        #expect(written.last?.hasPrefix("\r ") == true && written.last?.hasSuffix("\r") == true)
    }

    static func progress(at seconds: Double) -> ScenarioProgress {
        ScenarioProgress(label: "nvme vtd/strict", elapsedSeconds: seconds, done: UInt64(seconds * 100), total: 1000,
                         duration: nil, unit: "commands")
    }

    @Test func aTimedRunStopsAtItsDuration() throws {
        var parameters = Self.parameters
        parameters.duration = 0.2
        var updates = 0
        let run = try ScenarioRunner.run(.network, parameters: parameters, family: .intelVTd, policy: .lazy) { progress in
            updates += 1
            #expect(progress.total == nil && progress.duration == 0.2)
        }
        #expect(run.elapsedSeconds >= 0.2 && run.elapsedSeconds < 5)
        #expect(UInt64(updates) == run.operations)
        #expect(run.checksFailed == 0)
        #expect(ProgressLine.describe(ScenarioProgress(label: "x", elapsedSeconds: 3, done: 7, total: nil, duration: 10,
                                                       unit: "probes")) == "x  3.0 s  7 probes of 10.0 s")
    }
}
