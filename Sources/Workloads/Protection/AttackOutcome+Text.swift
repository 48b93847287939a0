extension AttackOutcome {
    /// Per scenario: what was attempted, then one row per family and strategy, then the notes.
    public static func renderText(_ outcomes: [AttackOutcome]) -> String {
        var out = ""
        var seen: [String] = []
        for outcome in outcomes where !seen.contains(outcome.scenario) { seen.append(outcome.scenario) }
        for scenario in seen {
            let rows = outcomes.filter { $0.scenario == scenario }
            out += "\n== \(scenario): \(rows.first?.attempted ?? "")\n"
            var table = TextTable(["family", "strategy", "attempts", "blocked", "contained", "faults", "bytes tried",
                                   "leaked (window)", "leaked (undocumented)", "verdict"])
            for row in rows {
                let windowed = row.bytesLeakedInWindows.values.reduce(0, +)
                table.add([row.family, row.strategy, "\(row.attempts)", "\(row.blocked)", "\(row.contained)", "\(row.faults)",
                           "\(row.bytesAttempted)",
                           "\(windowed)", "\(row.bytesLeakedUndocumented)", row.verdict])
            }
            out += table.render() + "\n"
            for row in rows {
                for note in row.notes { out += "  \(row.family)/\(row.strategy): \(note)\n" }
            }
        }
        out += "\n== summary per family and strategy\n" + renderSummary(outcomes) + "\n"
        let leaks = outcomes.filter { $0.bytesLeakedUndocumented > 0 }
        out += "\n\(outcomes.count) runs, \(leaks.count) with an undocumented leak\n"
        return out
    }

    /// One row per family and strategy: scenarios run, accesses tried, faults, bytes leaked by window and outside any.
    public static func renderSummary(_ outcomes: [AttackOutcome]) -> String {
        var keys: [String] = []
        for outcome in outcomes where !keys.contains(outcome.family + "/" + outcome.strategy) { keys.append(outcome.family + "/" + outcome.strategy) }
        var table = TextTable(["family", "strategy", "scenarios", "accesses", "faults", "contained", "leaked (windows)",
                               "leaked (undocumented)"])
        for key in keys {
            let rows = outcomes.filter { $0.family + "/" + $0.strategy == key }
            var windows: [String: UInt64] = [:]
            for row in rows { windows.merge(row.bytesLeakedInWindows, uniquingKeysWith: +) }
            let windowText = windows.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            table.add([rows[0].family, rows[0].strategy, "\(rows.count)", "\(rows.reduce(0) { $0 + $1.attempts })",
                       "\(rows.reduce(0) { $0 + $1.faults })", "\(rows.reduce(0) { $0 + $1.contained })", windowText.isEmpty ? "0" : windowText.joined(separator: ", "),
                       "\(rows.reduce(0) { $0 + $1.bytesLeakedUndocumented })"])
        }
        return table.render()
    }
}
