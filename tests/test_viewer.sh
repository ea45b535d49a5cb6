#!/usr/bin/env bash
# The web pages of fuse --html and eval --html (docs/viewer.md): written self-contained, and in
# headless Chromium they load every volume with no script error, the views share one
# crosshair, and a screenshot shows the volumes. Skipped (77) without Chromium.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
tmp="${LPM_TMP:-/tmp}/test_viewer.$$"
chromium="${LPM_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$chromium" ] || [ ! -x "$chromium" ]; then
    echo "skip: no Chromium (install Debian's chromium, or set LPM_CHROMIUM to a Chromium binary)"
    exit 77
fi
"$py" -c "import numpy" 2>/dev/null || { echo "skip: $py lacks numpy (to read the screenshot)"; exit 77; }
rm -rf "$tmp"; mkdir -p "$tmp"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

# WebGL2 without a GPU: SwiftShader, Chromium's software renderer. --no-sandbox: CI runs as root.
# Each run gets its own profile so that parallel tests do not share one.
browse() {
    timeout 180 "$chromium" --headless=new --no-sandbox --disable-gpu --use-angle=swiftshader \
        --enable-unsafe-swiftshader --user-data-dir="$tmp/profile" --no-first-run \
        --virtual-time-budget=15000 "$@" 2>>"$tmp/chromium.log"
}

# The page's title once its script is done: "lpmnet: loaded N volumes[, crosshair shared]" or
# "lpmnet: error: ...". #selftest makes the page move the first view's crosshair and check
# that the last view followed.
page_title() {
    browse --dump-dom "file://$1#selftest" | grep -o '<title>[^<]*</title>' | head -1 |
        sed 's/<[^>]*>//g'
}

"$bin" phantom --out "$tmp/ph" --shape 40,56,56 >/dev/null 2>&1 || { echo "FAIL phantom"; exit 1; }

# ---- fuse --html DIR
if "$bin" fuse "$tmp/ph/t1.nii.gz" "$tmp/ph/pet.nii.gz" -o "$tmp/fused.nii.gz" --method average \
        --html "$tmp/fuse page" 2>"$tmp/fuse.err"; then
    ok "fuse --html exits 0"
else
    bad "fuse --html: exit $? ($(cat "$tmp/fuse.err"))"
fi
fpage="$tmp/fuse page/index.html"
if [ -s "$fpage" ] && [ -s "$tmp/fused.nii.gz" ]; then ok "fuse wrote the volume and index.html"
else bad "fuse --html: $fpage or the fused volume is missing"; fi

# Self-contained: no script, style or image from elsewhere; three embedded volumes; the labels
# and the metrics table.
if grep -qiE '<(script|link|img)[^>]* (src|href)=' "$fpage"; then bad "the page loads something from elsewhere"
else ok "the page references no other file"; fi
n=$(grep -c '<script type="application/octet-stream" id="volume' "$fpage")
[ "$n" = 3 ] && ok "3 volumes embedded" || bad "$n volumes embedded, want 3"
for text in "A: t1.nii.gz" "B: pet.nii.gz" "average: fused.nii.gz" "<th>ssim</th>" "<th>seam_z</th>"; do
    grep -qF "$text" "$fpage" && ok "the page shows '$text'" || bad "the page lacks '$text'"
done

# The embedded volumes read back (as nibabel would) as A, B and the result on A's grid.
if "$py" - "$fpage" "$tmp/fused.nii.gz" <<'PY'; then ok "the embedded volumes read back on A's grid"; else bad "embedded volumes"; fi
import sys, re, base64, gzip, struct, numpy as np
page, fused_path = sys.argv[1], sys.argv[2]
html = open(page).read()
blocks = re.findall(r'id="volume\d+">\n(.*?)</script>', html, re.S)
def read_nii(raw):
    assert struct.unpack('<i', raw[:4])[0] == 348 and raw[344:347] == b'n+1'
    dim = struct.unpack('<8h', raw[40:56])
    dtype, = struct.unpack('<h', raw[70:72])
    slope, inter = struct.unpack('<2f', raw[112:120])
    vox = int(struct.unpack('<f', raw[108:112])[0])
    assert dtype == 2, dtype  # uint8
    n = dim[1] * dim[2] * dim[3]
    data = np.frombuffer(raw[vox:vox + n], np.uint8).astype(np.float64) * slope + inter
    return dim[1:4], data
dims, vals = set(), []
for b in blocks:
    d, v = read_nii(gzip.decompress(base64.b64decode(b)))
    dims.add(d); vals.append(v)
assert dims == {(56, 56, 40)}, dims
# the third volume is the fused one: within half a grey level (1/255 of its range) of the
# float32 file fuse wrote
raw = gzip.decompress(open(fused_path, 'rb').read())
vox = int(struct.unpack('<f', raw[108:112])[0])
assert struct.unpack('<h', raw[70:72])[0] == 16  # float32
ref = np.frombuffer(raw[vox:vox + 4 * vals[2].size], '<f4').astype(np.float64)
step = (ref.max() - ref.min()) / 255
err = np.abs(vals[2] - ref).max()
assert err <= 0.5 * step + 1e-6, (err, step)
PY

# ---- eval --html: a page per case and an index
printf 'a,b\n%s,%s\n' "$tmp/ph/t1.nii.gz" "$tmp/ph/t2.nii.gz" >"$tmp/cases.csv"
if "$bin" eval --data "$tmp/cases.csv" --methods average,max --out "$tmp/eval" --html 2>"$tmp/eval.err"; then
    ok "eval --html exits 0"
else
    bad "eval --html: exit $? ($(cat "$tmp/eval.err"))"
fi
epage=$(ls "$tmp"/eval/viewer_*.html 2>/dev/null | head -1)
if [ -n "$epage" ] && [ -s "$tmp/eval/index.html" ] && [ -s "$tmp/eval/metrics.csv" ]; then
    ok "eval wrote index.html and $(basename "$epage") beside metrics.csv"
else
    bad "eval --html: index.html or a viewer_<case>.html is missing: $(ls "$tmp/eval" 2>&1)"
fi
if [ -n "$epage" ] && grep -qF "href=\"$(basename "$epage")\"" "$tmp/eval/index.html"; then
    ok "index.html links to the case's page"
else
    bad "index.html does not link to the case's page"
fi

# ---- headless Chromium: every volume loads, no script error, one crosshair
if [ -s "$fpage" ]; then
    t=$(page_title "$fpage")
    case "$t" in *WebGL2*)  # NiiVue's message: this Chromium has no (software) WebGL2
        echo "skip: $chromium gives the page no WebGL2 ($t)"; rm -rf "$tmp"; exit 77 ;;
    esac
    [ "$t" = "lpmnet: loaded 3 volumes, crosshair shared" ] && ok "fuse page in Chromium: $t" \
        || bad "fuse page in Chromium: title '$t' (log: $(tail -3 "$tmp/chromium.log"))"
fi
if [ -n "$epage" ]; then
    t=$(page_title "$epage")
    [ "$t" = "lpmnet: loaded 4 volumes, crosshair shared" ] && ok "eval page in Chromium: $t" \
        || bad "eval page in Chromium: title '$t' (log: $(tail -3 "$tmp/chromium.log"))"

    # A screenshot shows the volumes: mid-grey anatomy and NiiVue's red crosshair lines,
    # neither of which the page draws without WebGL (the views' boxes are plain black).
    browse --hide-scrollbars --window-size=1280,900 --screenshot="$tmp/viewer.png" "file://$epage" >/dev/null
    if "$py" - "$tmp/viewer.png" <<'PY'; then ok "the screenshot shows the volumes"; else bad "screenshot $tmp/viewer.png"; fi
import sys, struct, zlib, numpy as np

def read_png(path):
    """8-bit RGB/RGBA, not interlaced (what Chromium writes)."""
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, header = 8, b'', None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        if kind == b'IHDR': header = struct.unpack('>IIBBBBB', data[pos + 8:pos + 8 + n])
        elif kind == b'IDAT': idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = header
    assert depth == 8 and ctype in (2, 6) and interlace == 0, header
    ch = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * ch)
    out, prev = np.zeros((h, w * ch), np.uint8), np.zeros(w * ch, np.uint8)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:]
        if f == 0: cur = line
        elif f == 1: cur = (np.cumsum(line.reshape(w, ch), axis=0, dtype=np.int64) & 255).astype(np.uint8).ravel()
        elif f == 2: cur = line + prev
        else:  # Average, Paeth: each byte depends on the one decoded before it
            L, B, c = line.tolist(), prev.tolist(), [0] * (w * ch)
            for x in range(w * ch):
                a = c[x - ch] if x >= ch else 0
                if f == 3: p = (a + B[x]) >> 1
                else:
                    ul = B[x - ch] if x >= ch else 0
                    pa, pb, pc = abs(B[x] - ul), abs(a - ul), abs(a + B[x] - 2 * ul)
                    p = a if pa <= pb and pa <= pc else (B[x] if pb <= pc else ul)
                c[x] = (L[x] + p) & 255
            cur = np.array(c, np.uint8)
        out[y], prev = cur, cur
    return out.reshape(h, w, ch)[:, :, :3].astype(np.int32)

img = read_png(sys.argv[1])
r, g, b = img[..., 0], img[..., 1], img[..., 2]
grey = (abs(r - g) < 8) & (abs(g - b) < 8) & (r > 60) & (r < 230)
red = (r > 230) & (g < 60) & (b < 60)  # the crosshair (255, 0, 0), not the error text (187, 0, 0)
print(f"  screenshot {img.shape[1]}x{img.shape[0]}: {grey.mean():.1%} mid-grey, {red.sum()} red pixels")
assert grey.mean() > 0.05 and red.sum() > 200
PY
    # LPM_VIEWER_SHOT=FILE.png keeps a copy of the screenshot to look at
    [ -n "${LPM_VIEWER_SHOT:-}" ] && cp "$tmp/viewer.png" "$LPM_VIEWER_SHOT"
fi

echo "test_viewer: $pass passed, $fail failed"
if [ "$fail" -eq 0 ]; then rm -rf "$tmp"; exit 0; fi
echo "kept $tmp for inspection" >&2
exit 1
