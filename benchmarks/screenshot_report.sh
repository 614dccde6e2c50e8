#!/usr/bin/env bash
# A PNG of a run's HTML report (spotart report RUN), as the README's docs/report.png was taken: headless Chromium
# (Debian's package: apt-get install chromium), 1280x1600, no network.
#   bash benchmarks/screenshot_report.sh demo_run/spot [docs/report.png]
set -euo pipefail
run=${1:?usage: screenshot_report.sh RUN_DIR [OUT.png]}
out=${2:-docs/report.png}
report=$(realpath "$run/report.html")
[ -f "$report" ] || { echo "screenshot_report.sh: no report at $run/report.html (run: spotart report $run)" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "screenshot_report.sh: no Chromium on PATH (apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d); trap 'rm -rf "$profile"' EXIT
# the flags keep a closed network quiet: no background connections, no updates, no sync
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars --window-size=1280,1600 \
  --screenshot="$(realpath -m "$out")" "file://$report" 2>/dev/null
echo "wrote $out"
