#!/usr/bin/env bash
# Renders real `iommu-sim run --html` reports in headless Chromium and checks
# that each page draws without errors and that every chart it announces is
# present with data. Installs Chromium from Debian when it is missing.
#
#   .ci/check-html.sh                 # check a single-run and a --compare page
#   UPDATE_SCREENSHOT=1 .ci/check-html.sh   # also refresh docs/report.png
#
# Uses .build/release/iommu-sim, else .build/debug/iommu-sim (built if neither exists).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "check-html: $*"; }
fail() { echo "check-html: FAILED: $*" >&2; exit 1; }

browser=""
for candidate in chromium chromium-browser; do
    if command -v "$candidate" > /dev/null; then browser=$(command -v "$candidate"); break; fi
done
if [ -z "$browser" ]; then
    log "installing chromium (Debian package)"
    [ "$(id -u)" = 0 ] || fail "chromium is missing and installing it needs root"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium > /dev/null
    browser=$(command -v chromium) || fail "chromium did not install"
fi

binary=""
for candidate in .build/release/iommu-sim .build/debug/iommu-sim; do
    if [ -x "$candidate" ]; then binary=$candidate; break; fi
done
if [ -z "$binary" ]; then
    swift build --product iommu-sim > /dev/null
    binary=.build/debug/iommu-sim
fi
log "using $binary and $("$browser" --version 2>/dev/null || echo chromium)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The browser wants a writable home and no session bus; keep it all in the scratch folder.
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_CACHE_HOME="$work/home/.cache"
mkdir -p "$HOME"

drivers=vtd
for family in smmu gart calgary amd; do
    if "$binary" run network --driver "$family" --operations 1 --quiet > /dev/null 2>&1; then drivers="$drivers,$family"; fi
done

"$binary" run nvme --operations 120 --max-size 256K --quiet --html "$work/single.html" > "$work/single.txt" \
    || fail "iommu-sim run nvme failed: $(cat "$work/single.txt")"
"$binary" run network --compare --driver "$drivers" --policy strict,lazy --operations 400 --quiet \
    --html "$work/compare.html" > "$work/compare.txt" || fail "iommu-sim run network --compare failed"

chrome() {
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
        --disable-extensions --user-data-dir="$work/profile" --virtual-time-budget=5000 "$@" 2> "$work/browser.log"
}

check_page() {
    local page=$1 dom="$work/$(basename "$1" .html).dom"
    # Nothing outside the file: no remote or relative scripts, styles, fonts or images.
    if grep -Eiq '(src|href)=["'"'"']?(https?:)?//|<script[^>]+src=|<link[^>]+stylesheet|@import|url\(' "$page"; then
        fail "$page refers to something outside itself"
    fi
    chrome --dump-dom "file://$page" > "$dom" || { cat "$work/browser.log" >&2; fail "chromium could not load $page"; }
    grep -q 'id="render-check" data-status="ok"' "$dom" \
        || fail "$page: $(grep -o 'render-error[^<]*' "$dom" || echo 'the check script did not run')"
    local expected
    expected=$(grep -o '<meta name="expected-charts" content="[^"]*"' "$page" | sed 's/.*content="//; s/"$//')
    [ -n "$expected" ] || fail "$page announces no charts"
    local id count
    for id in ${expected//,/ }; do
        grep -q "id=\"chart-$id\"" "$dom" || fail "$page: chart $id is missing"
        count=$(grep -o "id=\"chart-$id\"[^>]*data-rendered=\"[0-9]*\"" "$dom" | grep -o 'data-rendered="[0-9]*"' | grep -o '[0-9]*' || true)
        [ "${count:-0}" -gt 0 ] || fail "$page: chart $id has no drawn data"
        grep -A2 "id=\"chart-$id\"" "$dom" | grep -q "<svg" || fail "$page: chart $id has no <svg>"
    done
    log "$(basename "$page"): $(echo "${expected//,/ }" | wc -w) charts drawn with data"
}

check_page "$work/single.html"
check_page "$work/compare.html"

chrome --hide-scrollbars --window-size=1280,1700 --screenshot="$work/report.png" "file://$work/compare.html" \
    || fail "chromium could not take a screenshot"
size=$(stat -c %s "$work/report.png")
[ "$size" -gt 20000 ] || fail "the screenshot is suspiciously small ($size bytes)"
log "screenshot of the --compare page: $size bytes"
if [ "${UPDATE_SCREENSHOT:-0}" = 1 ]; then
    mkdir -p docs
    cp "$work/report.png" docs/report.png
    log "updated docs/report.png"
fi
log "passed"
