#!/bin/sh
# Replays every oracle trace in full (release build) on every emulated driver and on strict/lazy,
# fails on any malformed line or replay error, and prints agreement with Linux and replay speed.
set -eu
cd "$(dirname "$0")/.."
ORACLE=${ORACLE:-../shared/oracle}
swift build -c release --product iommu-sim >/dev/null
BIN=$(swift build -c release --show-bin-path)/iommu-sim
for run in intel-strict intel-passthrough amd; do
    trace="$ORACLE/$run/trace.txt"
    [ -f "$trace" ] || { echo "missing $trace" >&2; exit 1; }
    for driver in vtd amd smmu gart calgary; do
        for policy in strict lazy; do
            out=$("$BIN" replay "$trace" --driver "$driver" --policy "$policy" --json 2>&1) || {
                case "$out" in *"unknown --driver"*) continue ;; esac
                echo "$out" >&2; exit 1; }
            echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["malformedLines"] == 0 and r["replayErrors"] == 0, (r["malformed"], r["errors"])
print("%-18s %-8s %-7s calls=%d peakLive=%d events/s=%d events/CPU-s=%d" % (sys.argv[1], sys.argv[2], sys.argv[3],
      r["replayedCalls"], r["peakLiveMappings"], r["eventsPerSecond"], r["eventsPerCPUSecond"]))' "$run" "$driver" "$policy"
        done
    done
    "$BIN" replay "$trace" --groups "$ORACLE/$run/groups.txt" --pci-windows "$ORACLE/$run/dmesg.txt" --compare --json | python3 -c '
import json, sys
r = json.load(sys.stdin); c = r["comparison"]
m = c["linuxModel"]
print("%-18s with Linux groups: identical bus addresses %d/%d (%.2f%%), Linux placement model %d/%d (%.2f%%), "
      "IOMMU map calls linux %d ours %d" % (sys.argv[1], c["identical"], c["compared"], c["identicalPercent"],
      m["identical"], m["compared"], m["identicalPercent"], c["linuxMapCalls"], c["ourMapCalls"]))
assert m["identical"] == m["compared"] and m["modelFailures"] == 0, m["firstDifferences"]
if sys.argv[1] == "intel-passthrough": assert c["identical"] == c["compared"]' "$run"
done
