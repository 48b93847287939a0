#!/usr/bin/env bash
# Sanitizer runs, separate from the main test step (each builds the package again with its sanitizer,
# in its own scratch directory so the ordinary debug build is left alone).
#   thread:  the concurrency suites (DMA-API calls from several threads while devices DMA and fault;
#            map/unmap racing to install the same page-table levels)
#   address: the whole unit suite once
set -euo pipefail
cd "$(dirname "$0")/.."

CONCURRENCY='ProtectionConcurrencyTests|ARMSMMUConcurrencyTests|AMDViConcurrencyTests|IOVATests.ConcurrencyTests'
CONCURRENCY+='|TableTests/concurrentMaps|LazyFlushTests|ReplayRunTests/eachCPUsCallsCanRunOnAThreadOfTheirOwn'
CONCURRENCY+='|ShadowBufferTests|SpinLockTests'

# Every lock in the package is one TSan sees (HostLock, SpinLock, IOVA's Locked; no
# Synchronization.Mutex), so the suppressions file names no project code: any report fails the step.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/.ci/tsan-suppressions.txt"
swift test --scratch-path .build-tsan --sanitize=thread --filter "$CONCURRENCY"

# XCTest's own allocations make LeakSanitizer fail a clean run; leaks are not what this step checks.
ASAN_OPTIONS=detect_leaks=0 swift test --scratch-path .build-asan --sanitize=address
echo "sanitizers passed"
