extension AttackOutcome {
    /// Per scenario: what was attempted, then one row per family and strategy, then the notes.
    public static func renderText(_ outcomes: [AttackOutcome]) -> String {
        var out = ""
        var seen: [String] = []
        for outcome in outcomes where !seen.contains(outcome.scenario) { seen.append(outcome.scenario) }
        for scenario in seen {
            let rows = outcomes.filter { $0.scenario == scenario }
            out += "\n== \(scenario): \(rows.first?.attempted ?? "")\n"
            var table = TextTable(["family", "strategy", "attempts", "blocked", "faults", "bytes tried", "leaked (window)",
                                   "leaked (undocumented)", "verdict"])
            for row in rows {
                let windowed = row.bytesLeakedInWindows.values.reduce(0, +)
                table.add([row.family, row.strategy, "\(row.attempts)", "\(row.blocked)", "\(row.faults)", "\(row.bytesAttempted)",
                           "\(windowed)", "\(row.bytesLeakedUndocumented)", row.verdict])
            }
            out += table.render() + "\n"
            for row in rows {
                for note in row.notes { out += "  \(row.family)/\(row.strategy): \(note)\n" }
            }
        }
        let leaks = outcomes.filter { $0.bytesLeakedUndocumented > 0 }
        out += "\n\(outcomes.count) runs, \(leaks.count) with an undocumented leak\n"
        return out
    }
}
