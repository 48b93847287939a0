#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress display on a terminal for runs longer than two
/// seconds: elapsed time and work done, redrawn in place at most ten times a
/// second and erased when the run ends. Silent when its output is not a
/// terminal or when told to be quiet, so that pipes and logs stay clean.
public final class ProgressLine {
    /// Runs shorter than this never show a line.
    public static let delaySeconds = 2.0
    static let redrawSeconds = 0.1

    public let isEnabled: Bool
    private let write: (String) -> Void
    private var lastDrawn = -1.0
    private var width = 0

    /// - Parameters:
    ///   - isTerminal: whether the output is a terminal (see ``standardErrorIsTerminal``).
    ///   - quiet: `--quiet`.
    ///   - write: where the text goes; standard error by default.
    public init(isTerminal: Bool, quiet: Bool, write: @escaping (String) -> Void = ProgressLine.writeStandardError) {
        isEnabled = isTerminal && !quiet
        self.write = write
    }

    public static var standardErrorIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    public static func writeStandardError(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(STDERR_FILENO, base + offset, raw.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    /// Shows `progress` if the run has lasted long enough and the last redraw is old enough.
    public func update(_ progress: ScenarioProgress) {
        guard isEnabled, progress.elapsedSeconds >= Self.delaySeconds,
              progress.elapsedSeconds - lastDrawn >= Self.redrawSeconds else { return }
        lastDrawn = progress.elapsedSeconds
        let text = Self.describe(progress)
        let padding = String(repeating: " ", count: max(0, width - text.count))
        width = text.count
        write("\r" + text + padding)
    }

    /// Erases the line, if one was drawn.
    public func finish() {
        guard isEnabled, width > 0 else { return }
        write("\r" + String(repeating: " ", count: width) + "\r")
        width = 0
        lastDrawn = -1
    }

    /// "nvme vtd/strict  3.2 s  1200/3000 commands (40%)".
    public static func describe(_ progress: ScenarioProgress) -> String {
        var text = "\(progress.label)  \(String(oneDecimal: progress.elapsedSeconds)) s  \(progress.done)"
        if let total = progress.total, total > 0 {
            text += "/\(total) \(progress.unit) (\(progress.done * 100 / total)%)"
        } else {
            text += " \(progress.unit)"
            if let duration = progress.duration { text += " of \(String(oneDecimal: duration)) s" }
        }
        return text
    }
}
