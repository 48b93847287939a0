/// One named line of a chart.
struct ChartSeries {
    var name: String
    var points: [(x: Double, y: Double)]
}

/// Inline SVG charts: line charts, grouped bar charts and latency
/// histograms. Each chart is a `<figure class="chart" data-chart=ID
/// data-points=N>` whose data marks carry the class `datum` (bars) or are
/// `polyline.series` (lines), so that a browser check can count them.
enum SVGChart {
    static let width = 640.0, height = 280.0
    static let left = 70.0, right = 16.0, top = 16.0, bottom = 46.0
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    static var plotWidth: Double { width - left - right }
    static var plotHeight: Double { height - top - bottom }

    static func color(_ index: Int) -> String { palette[index % palette.count] }

    /// Lines over a shared numeric x axis.
    static func line(id: String, title: String, xLabel: String, yLabel: String, series: [ChartSeries],
                     yMaximum: Double? = nil, yFormat: (Double) -> String) -> String {
        let all = series.flatMap(\.points)
        let points = all.count
        guard points > 0 else { return empty(id: id, title: title) }
        let xMax = max(all.map(\.x).max() ?? 1, 1e-9)
        let yMax = niceCeiling(yMaximum ?? (all.map(\.y).max() ?? 0))
        var body = axes(yMax: yMax, yFormat: yFormat, xLabel: xLabel, yLabel: yLabel)
        for tick in 0...4 {
            let value = xMax * Double(tick) / 4
            body += text(x: left + plotWidth * Double(tick) / 4, y: height - bottom + 16, "anchor-middle", format(seconds: value))
        }
        for (index, line) in series.enumerated() {
            let coordinates = line.points.map { point in
                "\(fixed(left + plotWidth * point.x / xMax)),\(fixed(top + plotHeight * (1 - min(point.y, yMax) / yMax)))"
            }
            body += "<polyline class=\"series\" fill=\"none\" stroke=\"\(color(index))\" stroke-width=\"2\" points=\"\(coordinates.joined(separator: " "))\"><title>\(escapeHTML(line.name))</title></polyline>\n"
        }
        return figure(id: id, title: title, points: points, body: body, legend: series.count > 1 ? series.map(\.name) : [])
    }

    /// Bars per label; several values per label are drawn side by side, one per series.
    static func bars(id: String, title: String, yLabel: String, labels: [String], series: [(name: String, values: [Double])],
                     rotateLabels: Bool = false, colorPerLabel: Bool = false, yMaximum: Double? = nil,
                     yFormat: (Double) -> String) -> String {
        let values = series.flatMap(\.values)
        guard !labels.isEmpty, !values.isEmpty else { return empty(id: id, title: title) }
        let yMax = niceCeiling(yMaximum ?? values.max() ?? 0)
        var body = axes(yMax: yMax, yFormat: yFormat, xLabel: "", yLabel: yLabel)
        let slot = plotWidth / Double(labels.count)
        let barWidth = max(1, slot * 0.8 / Double(max(1, series.count)))
        for (labelIndex, label) in labels.enumerated() {
            for (seriesIndex, entry) in series.enumerated() where labelIndex < entry.values.count {
                let value = entry.values[labelIndex]
                let barHeight = plotHeight * min(value, yMax) / yMax
                let x = left + slot * Double(labelIndex) + slot * 0.1 + barWidth * Double(seriesIndex)
                body += "<rect class=\"datum\" x=\"\(fixed(x))\" y=\"\(fixed(top + plotHeight - barHeight))\" width=\"\(fixed(barWidth))\" height=\"\(fixed(max(barHeight, 0.5)))\" fill=\"\(color(colorPerLabel ? labelIndex : seriesIndex))\"><title>\(escapeHTML(entry.name)) \(escapeHTML(label)): \(escapeHTML(yFormat(value)))</title></rect>\n"
            }
            let center = left + slot * (Double(labelIndex) + 0.5)
            if rotateLabels {
                body += "<text class=\"tick\" text-anchor=\"end\" transform=\"translate(\(fixed(center)),\(fixed(height - bottom + 12))) rotate(-30)\">\(escapeHTML(label))</text>\n"
            } else if labels.count <= 16 || labelIndex % (labels.count / 8 + 1) == 0 {
                body += text(x: center, y: height - bottom + 16, "anchor-middle", label)
            }
        }
        return figure(id: id, title: title, points: values.count, body: body,
                      legend: series.count > 1 ? series.map(\.name) : [])
    }

    /// Latency histograms on a doubling (log2) axis, as the share of operations per bucket.
    static func histogram(id: String, title: String, series: [(name: String, buckets: [HistogramBucket])]) -> String {
        let bounds = Array(Set(series.flatMap { $0.buckets.map(\.upToNanoseconds) })).sorted()
        guard !bounds.isEmpty else { return empty(id: id, title: title) }
        let shares: [(name: String, values: [Double])] = series.map { entry in
            let total = Double(max(1, entry.buckets.reduce(0) { $0 + $1.count }))
            let byBound = Dictionary(entry.buckets.map { ($0.upToNanoseconds, $0.count) }, uniquingKeysWith: +)
            return (entry.name, bounds.map { Double(byBound[$0] ?? 0) / total * 100 })
        }
        return bars(id: id, title: title, yLabel: "% of operations", labels: bounds.map { "≤" + format(nanoseconds: $0) },
                    series: shares, rotateLabels: bounds.count > 8) { "\(String(oneDecimal: $0))%" }
    }

    static func axes(yMax: Double, yFormat: (Double) -> String, xLabel: String, yLabel: String) -> String {
        var body = ""
        for tick in 0...4 {
            let y = top + plotHeight * (1 - Double(tick) / 4)
            body += "<line class=\"grid\" x1=\"\(fixed(left))\" x2=\"\(fixed(width - right))\" y1=\"\(fixed(y))\" y2=\"\(fixed(y))\"/>\n"
            body += text(x: left - 6, y: y + 4, "anchor-end", yFormat(yMax * Double(tick) / 4))
        }
        body += "<line class=\"axis\" x1=\"\(fixed(left))\" x2=\"\(fixed(left))\" y1=\"\(fixed(top))\" y2=\"\(fixed(top + plotHeight))\"/>\n"
        body += "<line class=\"axis\" x1=\"\(fixed(left))\" x2=\"\(fixed(width - right))\" y1=\"\(fixed(top + plotHeight))\" y2=\"\(fixed(top + plotHeight))\"/>\n"
        if !xLabel.isEmpty { body += text(x: left + plotWidth / 2, y: height - 6, "anchor-middle label", xLabel) }
        body += "<text class=\"label\" text-anchor=\"middle\" transform=\"translate(14,\(fixed(top + plotHeight / 2))) rotate(-90)\">\(escapeHTML(yLabel))</text>\n"
        return body
    }

    static func figure(id: String, title: String, points: Int, body: String, legend: [String]) -> String {
        var out = "<figure class=\"chart\" id=\"chart-\(id)\" data-chart=\"\(id)\" data-points=\"\(points)\">\n"
        out += "<figcaption>\(escapeHTML(title))</figcaption>\n"
        out += "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escapeHTML(title))\">\n"
        out += body + "</svg>\n"
        if !legend.isEmpty {
            out += "<div class=\"legend\">" + legend.enumerated().map { index, name in
                "<span><i style=\"background:\(color(index))\"></i>\(escapeHTML(name))</span>"
            }.joined(separator: " ") + "</div>\n"
        }
        return out + "</figure>\n"
    }

    static func empty(id: String, title: String) -> String {
        figure(id: id, title: title, points: 0,
               body: text(x: width / 2, y: height / 2, "anchor-middle label", "no data recorded"), legend: [])
    }

    static func text(x: Double, y: Double, _ classes: String, _ content: String) -> String {
        "<text class=\"\(classes)\" x=\"\(fixed(x))\" y=\"\(fixed(y))\">\(escapeHTML(content))</text>\n"
    }

    /// 1, 2, 2.5 or 5 times a power of ten at or above `value`, so that axis ticks are round; 1 for nothing.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0, value.isFinite else { return 1 }
        if value < 1 { return value <= 0.5 ? (value <= 0.25 ? 0.25 : 0.5) : 1 }
        var power = 1.0
        while power * 10 <= value { power *= 10 }
        while power > value { power /= 10 }
        for step in [1.0, 2.0, 2.5, 5.0, 10.0] where step * power >= value { return step * power }
        return 10 * power
    }

    static func fixed(_ value: Double) -> String { String(oneDecimal: value) }

    static func format(seconds: Double) -> String {
        seconds >= 1 ? "\(String(oneDecimal: seconds)) s" : "\(Int((seconds * 1000).rounded())) ms"
    }

    static func format(nanoseconds: UInt64) -> String {
        if nanoseconds >= 1_000_000 { return "\(String(oneDecimal: Double(nanoseconds) / 1e6)) ms" }
        if nanoseconds >= 1000 { return "\(String(oneDecimal: Double(nanoseconds) / 1e3)) µs" }
        return "\(nanoseconds) ns"
    }

    static func format(bytes: Double) -> String {
        let kibibyte = 1024.0, mebibyte = kibibyte * 1024, gibibyte = mebibyte * 1024
        if bytes >= gibibyte { return "\(String(oneDecimal: bytes / gibibyte)) GiB" }
        if bytes >= mebibyte { return "\(String(oneDecimal: bytes / mebibyte)) MiB" }
        if bytes >= kibibyte { return "\(String(oneDecimal: bytes / kibibyte)) KiB" }
        return "\(Int(bytes)) B"
    }

    static func format(count: Double) -> String {
        if count >= 1e6 { return "\(String(oneDecimal: count / 1e6))M" }
        if count >= 1e4 { return "\(String(oneDecimal: count / 1e3))k" }
        return count == count.rounded() ? "\(Int(count))" : String(oneDecimal: count)
    }
}

/// Text safe inside HTML elements and attribute values.
func escapeHTML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}
