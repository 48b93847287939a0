#!/usr/bin/env bash
# The protection fuzzer at full size, in release (the debug unit suite runs 240 thousand operations):
# FUZZ_OPS operations (default one million) per family and strategy, every emulated family and the
# strict, lazy, shadow and passthrough strategies (ProtectionStrategy.fuzzed: `fuzz` without --policy
# runs them all), the families two at a time on CI's two cores; then a fault
# storm of a million faults per family and strategy whose resident memory must stay within 64 MiB.
# A disagreement with the model prints the seed and the command that replays it, and fails the step.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${FUZZ_SEED:-1}"
OPS="${FUZZ_OPS:-1000000}"
swift build -c release --product iommu-sim
BIN=.build/release/iommu-sim
FAMILIES=$("$BIN" fuzz --ops 0 --json | grep -o '"family":"[a-z]*"' | cut -d'"' -f4 | sort -u)

echo "protection fuzzer: seed $SEED, $OPS operations per family and strategy"
LOGS=$(mktemp -d)
status=0
running=0
for family in $FAMILIES; do
    "$BIN" fuzz --driver "$family" --ops "$OPS" --seed "$SEED" > "$LOGS/$family.log" 2>&1 &
    running=$((running + 1))
    if [ "$running" -ge 2 ]; then wait -n || status=1; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n || status=1; running=$((running - 1)); done
cat "$LOGS"/*.log
rm -rf "$LOGS"
[ "$status" -eq 0 ] || { echo "FAILED: the stack disagreed with the reference model (replay lines above)"; exit 1; }

echo "fault storm: a million faults per family and strategy"
"$BIN" attack fault-storm --faults 1000000 | tee .ci-storm.log
awk '/resident memory/ { before = $(NF-5); after = $(NF-2); if (after - before > 64) { print "FAILED: " $0; bad = 1 } }
     END { exit bad }' .ci-storm.log
rm -f .ci-storm.log
echo "protection fuzzing passed"
