#!/usr/bin/env bash
# The HTML report in a real browser: a tiny sweep on the built-in model, then the page opened in
# headless Chromium (console errors, images, plots, table, sorting, no network). Run from the
# repository root after a debug build; .ci/run calls it.
set -euo pipefail
bash tools/report/setup.sh
out="$(mktemp -d)"
swift run -q tokc bench --methods fastv,visionzip --budgets 0.5,0.25 --limit 3 --max-new-tokens 2 --out "$out/sweep" >/dev/null 2>"$out/bench.log" \
    || { cat "$out/bench.log" >&2; exit 1; }
python3 tools/report/check_in_browser.py "$out/sweep/report.html" --screenshot "$out/report.png"
