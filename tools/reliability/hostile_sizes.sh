#!/usr/bin/env bash
# Hostile sizes (issue #17): files whose size or whose header's claims are absurd, each fed to tokc,
# which must refuse it with a clear error (or, for the million merges, load it) in bounded memory.
# Prints one line per case: what was fed, tokc's exit status, its peak RSS (GNU time), its message.
#
#   tools/reliability/hostile_sizes.sh [TOKC]      (default .build/debug/tokc; run from anywhere)
#
# The large inputs (a 1 GB JSONL line, a tokenizer.json with a million merges) are generated here into
# a temporary folder and deleted afterwards; nothing large is committed. Exit status 1 when a case is
# not refused (or the merges do not load), or its peak RSS is over its stated bound.
set -uo pipefail
cd "$(dirname "$0")/../.."
TOKC="${1:-.build/debug/tokc}"
[ -x "$TOKC" ] || { echo "no tokc at $TOKC (swift build first)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time; apt-get install time)" >&2; exit 2; }
WORK="$(mktemp -d /tmp/tokc-hostile-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
status=0

python3 - "$WORK" <<'PY'
import json, os, struct, sys, zlib
work = sys.argv[1]

def write(name, data):
    with open(os.path.join(work, name), "wb") as f:
        f.write(data)

def st(header, data=b""):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data

# safetensors: a 10^12-element tensor, header lengths of 2^63 and of 2^63 - 1
write("tensor-1e12.safetensors", st({"t": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 4 * 10**12]}}, bytes(16)))
body = json.dumps({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode() + bytes(4)
write("header-2p63.safetensors", struct.pack("<Q", 1 << 63) + body)
write("header-2p63-1.safetensors", struct.pack("<Q", (1 << 63) - 1) + body)

# PNG claiming 100000 x 100000 (valid chunk CRCs, one small IDAT)
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
def png(w, h):
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(3 * 64 + 64))) + chunk(b"IEND", b""))
write("png-100000x100000.png", png(100000, 100000))
write("png-16000x16000.png", png(16000, 16000))

# JPEG: sizes are 16-bit, so 65535 x 65535 is the largest claim; and 16000 x 16000 (under the pixel cap)
from io import BytesIO
try:
    from PIL import Image
    buf = BytesIO(); Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG"); jpeg = bytearray(buf.getvalue())
    sof = jpeg.index(b"\xff\xc0")
    for name, (w, h) in {"jpeg-65535x65535.jpg": (65535, 65535), "jpeg-60000x60000.jpg": (60000, 60000),
                           "jpeg-16000x16000.jpg": (16000, 16000)}.items():
        j = bytearray(jpeg); j[sof + 5:sof + 9] = struct.pack(">HH", h, w); write(name, bytes(j))
except ImportError:
    print("(Pillow missing: JPEG cases skipped)", file=sys.stderr)

# bench task: one 1 GB line (streamed to disk, never held here)
with open(os.path.join(work, "line-1GB.jsonl"), "wb") as f:
    f.write(b'{"id": "a", "image": "a.png", "question": "')
    block = b"a" * (1 << 20)
    for _ in range(1024):
        f.write(block)
    f.write(b'"}\n')

# tokenizer.json with a million merges: the built-in tokenizer plus the decimal numbers 10 ... 1000009,
# each merged from its leading digits and its last digit (so every merge is valid and reachable).
tok = json.load(open("builtin/models/llava/tokenizer.json"))
vocab = tok["model"]["vocab"]
next_id = max(max(vocab.values()), max(t["id"] for t in tok.get("added_tokens", []))) + 1
merges = tok["model"]["merges"]
for n in range(10, 1_000_010):
    s = str(n)
    if s not in vocab:
        vocab[s] = next_id; next_id += 1
    merges.append([s[:-1], s[-1]])
model_dir = os.path.join(work, "million-merges")
os.makedirs(model_dir)
for name in os.listdir("builtin/models/llava"):
    if name != "tokenizer.json":
        os.symlink(os.path.abspath(os.path.join("builtin/models/llava", name)), os.path.join(model_dir, name))
with open(os.path.join(model_dir, "tokenizer.json"), "w") as f:
    json.dump(tok, f)
print(f"generated: tokenizer.json with {len(merges)} merges, {len(vocab)} tokens, "
      f"{os.path.getsize(os.path.join(model_dir, 'tokenizer.json')) / 1e6:.0f} MB; task line of "
      f"{os.path.getsize(os.path.join(work, 'line-1GB.jsonl')) / 2**30:.2f} GiB")
PY
[ $? -eq 0 ] || { echo "could not generate the inputs" >&2; exit 2; }

# case NAME BOUND_MB EXPECT(refused|loads) MESSAGE_FRAGMENT -- tokc arguments...
case_() {
    local name="$1" bound="$2" expect="$3" fragment="$4"; shift 5
    /usr/bin/time -f "%M" -o "$WORK/rss" "$TOKC" "$@" >"$WORK/out" 2>&1 </dev/null
    local rc=$?
    local rss_mb=$(( $(tail -1 "$WORK/rss") / 1024 ))
    local message
    message="$(grep -v '^\s*$' "$WORK/out" | grep -iE "error|$fragment" | head -1 | cut -c1-150)"
    local verdict=ok
    if [ "$expect" = refused ] && { [ $rc -eq 0 ] || ! grep -q -- "$fragment" "$WORK/out"; }; then verdict="NOT REFUSED AS EXPECTED"; fi
    if [ "$expect" = loads ] && [ $rc -ne 0 ]; then verdict="DID NOT LOAD"; fi
    [ "$rss_mb" -le "$bound" ] || verdict="$verdict; PEAK RSS OVER ${bound} MB"
    [ "$verdict" = ok ] || status=1
    printf '%-26s exit %-3s peak RSS %5s MB (bound %5s MB)  %s\n    %s\n' "$name" "$rc" "$rss_mb" "$bound" "$verdict" "$message"
}

echo "tokc: $TOKC"
case_ "baseline: inspect" 200 loads "" -- inspect builtin/models/llava
case_ "safetensors 10^12 elems" 200 refused "run past the data area" -- inspect "$WORK/tensor-1e12.safetensors"
case_ "safetensors header 2^63" 200 refused "runs past the end of the file" -- inspect "$WORK/header-2p63.safetensors"
case_ "safetensors header 2^63-1" 200 refused "runs past the end of the file" -- inspect "$WORK/header-2p63-1.safetensors"
case_ "baseline: run (image)" 600 loads "" -- run --image builtin/tasks/scenes/images/$(ls builtin/tasks/scenes/images | head -1) --max-new-tokens 1
case_ "PNG 100000x100000" 600 refused "unsupported image size" -- run --image "$WORK/png-100000x100000.png" --max-new-tokens 1
case_ "PNG 16000x16000 (lying)" 600 refused "deflate cannot expand" -- run --image "$WORK/png-16000x16000.png" --max-new-tokens 1
if [ -f "$WORK/jpeg-65535x65535.jpg" ]; then
    case_ "JPEG 65535x65535" 600 refused "65500 pixels" -- run --image "$WORK/jpeg-65535x65535.jpg" --max-new-tokens 1
    case_ "JPEG 60000x60000" 600 refused "unsupported image size" -- run --image "$WORK/jpeg-60000x60000.jpg" --max-new-tokens 1
    # Scan data for 16x16 under a 16000x16000 header: libjpeg pads the missing rows (a warning, no error),
    # and so does PIL, so this decodes; its cost is bounded by the pixel cap (2^28 pixels, 768 MB here).
    case_ "JPEG 16000x16000 (16x16 data)" 1200 loads "" -- run --image "$WORK/jpeg-16000x16000.jpg" --max-new-tokens 1
fi
case_ "task: one 1 GB line" 200 refused "line longer than" -- bench --task "$WORK/line-1GB.jsonl" --out "$WORK/bench" --limit 1
case_ "tokenizer: 1M merges" 2000 loads "" -- run --model "$WORK/million-merges" --max-new-tokens 1
exit $status
