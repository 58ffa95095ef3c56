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

# The classifier sweep's report (merge maps, images/s): the tiny ViT fixture on three fixture images.
fixtures="$(pwd)/Tests/Fixtures/images"
for f in rgb_40x30.png wide_300x120.png photo_131x190.jpg; do
    echo "{\"image\": \"$fixtures/$f\", \"answer\": \"LABEL_0\"}"
done >"$out/classes.jsonl"
swift run -q tokc bench --model Tests/Fixtures/models/vit --task "$out/classes.jsonl" --methods tome,evit --batch 2 --out "$out/classifier" >/dev/null 2>"$out/classifier.log" \
    || { cat "$out/classifier.log" >&2; exit 1; }
python3 tools/report/check_in_browser.py "$out/classifier/report.html" --screenshot "$out/classifier.png"
