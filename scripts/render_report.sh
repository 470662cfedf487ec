#!/usr/bin/env bash
# Renders the example experiment report in headless Chromium (Debian's `chromium`), checks
# that the rendered page holds every table and chart, and saves a screenshot.
#
#   scripts/render_report.sh [OUT_DIR]   (default target/report; screenshot OUT_DIR/report.png)
#
# Needs: apt-get install -y chromium. Exits non-zero when a table or chart is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/report}"
cargo run --quiet --example render_report -- "$out" >/dev/null
html="$(realpath "$out/report.html")"

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --hide-scrollbars --user-data-dir="$profile")

chromium "${flags[@]}" --dump-dom "file://$html" > "$out/dom.html" 2>/dev/null
missing=0
for id in table-results table-backends table-split table-timings table-manifest chart-hit-rate chart-curves; do
  if ! grep -q "id=\"$id\"" "$out/dom.html"; then
    echo "missing in the rendered DOM: #$id" >&2
    missing=1
  fi
done
svgs=$(grep -o '<svg' "$out/dom.html" | wc -l)
rows=$(grep -o '<tr' "$out/dom.html" | wc -l)
if [ "$svgs" -lt 2 ]; then echo "expected 2 charts, found $svgs" >&2; missing=1; fi
[ "$missing" -eq 0 ] || exit 1

chromium "${flags[@]}" --window-size=1280,2400 --screenshot="$(realpath "$out")/report.png" \
  "file://$html" 2>/dev/null
echo "ok: 5 tables, $svgs charts, $rows table rows rendered; screenshot $out/report.png"
