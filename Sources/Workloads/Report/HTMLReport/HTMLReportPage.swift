/// One self-contained HTML page for a ``RunReport``: inline CSS, inline SVG
/// charts and one small inline script, no external script, style sheet,
/// font or image, so that the file can be mailed or archived as it is.
///
/// Charts (`data-chart` ids): `map-latency`, `unmap-latency` (HdrHistogram
/// buckets), `iova-occupancy`, `iotlb-hit-rate`, `faults` (over time); with
/// more than one run also `compare-throughput`, `compare-map-p99`,
/// `compare-unmap-p99`, `compare-iotlb-hit-rate`, `compare-invalidations`,
/// `compare-faults`. The inline script counts each chart's data marks and
/// sets `#render-check[data-status]` to `ok`, or to `error` with the charts
/// that have none, which is what the headless-browser check reads.
public struct HTMLReportPage {
    public let report: RunReport

    public init(_ report: RunReport) { self.report = report }

    /// The ids of the charts the page contains.
    public var chartIDs: [String] {
        var ids = ["map-latency", "unmap-latency", "iova-occupancy", "iotlb-hit-rate", "faults"]
        if report.runs.count > 1 { ids += Self.comparisonIDs }
        return ids
    }

    static let comparisonIDs = ["compare-throughput", "compare-map-p99", "compare-unmap-p99", "compare-iotlb-hit-rate",
                                "compare-invalidations", "compare-faults"]

    public func render() -> String {
        var html = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="expected-charts" content="\(chartIDs.joined(separator: ","))">
        <title>\(escapeHTML(report.title))</title>
        <style>\(Self.style)</style>
        </head>
        <body>
        <header><h1>\(escapeHTML(report.title))</h1>
        <p class="source">\(escapeHTML(report.source)) · \(report.parameters.map { "\(escapeHTML($0.name)) <b>\(escapeHTML($0.value))</b>" }.joined(separator: " · "))</p>
        <p class="verdict \(report.checksFailed == 0 ? "pass" : "fail")">\(report.checksPassed) checks passed, \(report.checksFailed) failed</p>
        </header>

        """
        html += summaryTable()
        html += "<section class=\"charts\">\n" + charts() + "</section>\n"
        html += findings()
        html += "<p id=\"render-check\" data-status=\"pending\">charts not checked (scripts disabled)</p>\n"
        html += "<script>\(Self.checkScript)</script>\n</body>\n</html>\n"
        return html
    }

    func summaryTable() -> String {
        var html = "<table class=\"summary\">\n<thead><tr><th>run</th><th>operations</th><th>ops/s</th><th>MB/s</th>"
        html += "<th>map p50 / p99 / p99.9</th><th>unmap p50 / p99 / p99.9</th><th>IOTLB hit rate</th>"
        html += "<th>invalidations</th><th>faults</th><th>checks</th></tr></thead>\n<tbody>\n"
        for run in report.runs {
            let cells = [run.label, "\(run.operations)", String(Int(run.operationsPerSecond.rounded())),
                         String(oneDecimal: run.bytesPerSecond / 1e6), latency(run.mapLatency), latency(run.unmapLatency),
                         "\(String(oneDecimal: run.iotlbHitRate * 100))%", "\(run.invalidations)", "\(run.faults)",
                         run.checksFailed == 0 ? "\(run.checksPassed) ok" : "\(run.checksFailed) FAILED"]
            html += "<tr>" + cells.map { "<td>\(escapeHTML($0))</td>" }.joined() + "</tr>\n"
        }
        return html + "</tbody>\n</table>\n"
    }

    func latency(_ summary: LatencySummary) -> String {
        guard summary.count > 0 else { return "-" }
        return [summary.p50, summary.p99, summary.p999].map { SVGChart.format(nanoseconds: $0) }.joined(separator: " / ")
    }

    func charts() -> String {
        let runs = report.runs
        var html = SVGChart.histogram(id: "map-latency", title: "Map latency (HdrHistogram)",
                                      series: runs.map { ($0.label, $0.mapLatencyHistogram) })
        html += SVGChart.histogram(id: "unmap-latency", title: "Unmap latency (HdrHistogram)",
                                   series: runs.map { ($0.label, $0.unmapLatencyHistogram) })
        html += SVGChart.line(id: "iova-occupancy", title: "I/O virtual address space in use", xLabel: "elapsed",
                              yLabel: "bytes mapped",
                              series: runs.map { run in
                                  ChartSeries(name: run.label, points: run.timeline.map { ($0.elapsedSeconds, Double($0.iovaBytesInUse)) })
                              }) { SVGChart.format(bytes: $0) }
        html += SVGChart.line(id: "iotlb-hit-rate", title: "IOTLB hit rate of device translations", xLabel: "elapsed",
                              yLabel: "hit rate", series: runs.map { run in
                                  ChartSeries(name: run.label, points: run.timeline.map { ($0.elapsedSeconds, $0.iotlbHitRate * 100) })
                              }, yMaximum: 100) { "\(Int($0.rounded()))%" }
        // Counts take whole-number ticks: at least 0...4 even when nothing faulted.
        let mostFaults = runs.flatMap(\.timeline).map(\.faults).max() ?? 0
        html += SVGChart.line(id: "faults", title: "IOMMU faults recorded (cumulative)", xLabel: "elapsed", yLabel: "faults",
                              series: runs.map { run in
                                  ChartSeries(name: run.label, points: run.timeline.map { ($0.elapsedSeconds, Double($0.faults)) })
                              }, yMaximum: mostFaults < 4 ? 4 : nil) { SVGChart.format(count: $0) }
        guard runs.count > 1 else { return html }
        let labels = runs.map(\.label)
        func compare(_ id: String, _ title: String, _ unit: String, _ value: (RunSeries) -> Double,
                     _ format: (Double) -> String) -> String {
            SVGChart.bars(id: id, title: title, yLabel: unit, labels: labels, series: [(title, runs.map(value))],
                          rotateLabels: runs.count > 6, colorPerLabel: true, yFormat: format)
        }
        html += compare("compare-throughput", "Throughput", "operations/s", \.operationsPerSecond) { SVGChart.format(count: $0) }
        html += compare("compare-map-p99", "Map latency p99", "ns", { Double($0.mapLatency.p99) }) {
            SVGChart.format(nanoseconds: UInt64($0))
        }
        html += compare("compare-unmap-p99", "Unmap latency p99", "ns", { Double($0.unmapLatency.p99) }) {
            SVGChart.format(nanoseconds: UInt64($0))
        }
        html += compare("compare-iotlb-hit-rate", "IOTLB hit rate", "%", { $0.iotlbHitRate * 100 }) { "\(Int($0.rounded()))%" }
        html += SVGChart.bars(id: "compare-invalidations", title: "IOTLB invalidations", yLabel: "count", labels: labels,
                              series: [("IOTLB invalidations", runs.map { Double($0.invalidations) })],
                              rotateLabels: runs.count > 6, colorPerLabel: true,
                              yMaximum: runs.map(\.invalidations).max() ?? 0 < 4 ? 4 : nil) { SVGChart.format(count: $0) }
        html += SVGChart.bars(id: "compare-faults", title: "Faults", yLabel: "count", labels: labels,
                              series: [("Faults", runs.map { Double($0.faults) })], rotateLabels: runs.count > 6,
                              colorPerLabel: true, yMaximum: runs.map(\.faults).max() ?? 0 < 4 ? 4 : nil) {
            SVGChart.format(count: $0)
        }
        return html
    }

    func findings() -> String {
        var html = ""
        for run in report.runs where !run.findings.isEmpty || !run.notes.isEmpty {
            html += "<section class=\"run\"><h2>\(escapeHTML(run.label))</h2>\n"
            if !run.findings.isEmpty {
                html += "<dl>" + run.findings.sorted { $0.key < $1.key }.map {
                    "<div><dt>\(escapeHTML($0.key))</dt><dd>\($0.value)</dd></div>"
                }.joined() + "</dl>\n"
            }
            if !run.notes.isEmpty {
                html += "<ul>" + run.notes.map { "<li>\(escapeHTML($0))</li>" }.joined() + "</ul>\n"
            }
            html += "</section>\n"
        }
        return html
    }

    static let style = """
    body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;background:#fff;max-width:1360px}
    h1{font-size:1.35em;margin:0 0 4px}h2{font-size:1.05em;margin:16px 0 4px}
    .source{color:#555;margin:0 0 6px}.verdict{font-weight:600}.pass{color:#1a7f37}.fail{color:#cf222e}
    table.summary{border-collapse:collapse;margin:12px 0;font-size:.9em}
    .summary th,.summary td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
    .summary th:first-child,.summary td:first-child{text-align:left}.summary thead{background:#f6f8fa}
    .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
    figure.chart{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px}
    figcaption{font-weight:600;font-size:.95em;margin-bottom:4px}
    svg{width:100%;height:auto;font-size:11px}
    .grid{stroke:#eaeef2}.axis{stroke:#57606a}.tick,.anchor-end,.anchor-middle{fill:#57606a}
    .anchor-end{text-anchor:end}.anchor-middle{text-anchor:middle}.label{fill:#24292f}
    .legend{font-size:.85em;color:#444}.legend span{margin-right:12px}
    .legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
    dl{display:flex;flex-wrap:wrap;gap:4px 18px;margin:4px 0}dl div{display:flex;gap:6px}dt{color:#555}dd{margin:0;font-weight:600}
    #render-check{color:#888;font-size:.8em;margin-top:18px}
    """

    static let checkScript = """
    (function(){var status=document.getElementById('render-check');
    function fail(message){status.setAttribute('data-status','error');status.textContent='render-error: '+message;}
    window.addEventListener('error',function(event){fail(String(event.message));});
    try{var expected=document.querySelector('meta[name="expected-charts"]').content.split(',');var problems=[];
    expected.forEach(function(id){var figure=document.getElementById('chart-'+id);
    if(!figure){problems.push(id+' missing');return;}var svg=figure.querySelector('svg');
    if(!svg){problems.push(id+' has no svg');return;}var count=svg.querySelectorAll('.datum').length;
    svg.querySelectorAll('polyline.series').forEach(function(line){count+=line.points.numberOfItems;});
    var box=svg.getBoundingClientRect();figure.setAttribute('data-rendered',String(count));
    if(count<1){problems.push(id+' has no data');}if(!(box.width>0&&box.height>0)){problems.push(id+' is not drawn');}});
    if(problems.length){fail(problems.join('; '));}
    else{status.setAttribute('data-status','ok');status.textContent='render-ok: '+expected.length+' charts drawn with data';}
    }catch(error){fail(String(error));}})();
    """
}
