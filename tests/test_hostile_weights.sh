#!/usr/bin/env bash
# Hostile weights files at the command line: NaN/Inf values, weights scaled into absurdity,
# overlapping tensor data, truncation, duplicate names, a huge header length, a FIFO and a
# folder. `fuse -m` must refuse each with exit 2 and a message naming the file and the
# problem, leave no output (or temporary) file and change no input; `info` must not call
# any of them usable LPM-Net weights. The bundled model, rewritten unchanged by the same
# script, must still fuse (so the cases fail for what they change, not for how they are made).
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
src="${LPM_SOURCE_DIR:?}"
model="$src/models/lpmnet-mri.safetensors"
tmp="${LPM_TMP:-/tmp}/test_hostile_weights.$$"
[ -s "$model" ] || { echo "skip: no bundled model at $model"; exit 77; }
"$py" -c "import numpy" 2>/dev/null || { echo "skip: $py lacks numpy"; exit 77; }
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0

ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

# Weights files: the bundled model's header read with json and rewritten.
"$py" - "$model" "$tmp" <<'PY' || { echo "cannot make test inputs"; exit 1; }
import json, struct, sys
import numpy as np
model, tmp = sys.argv[1], sys.argv[2]
raw = open(model, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__", None)
body = raw[8 + n:]
names = list(header)

def header_bytes(h):
    if meta is not None:
        h = dict(h, __metadata__=meta)
    text = json.dumps(h).encode()
    return text + b" " * (-len(text) % 8)

def write(name, h, data, text=None):
    text = header_bytes(h) if text is None else text
    with open(f"{tmp}/{name}", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(data))

def tensor(data, name):
    b, e = header[name]["data_offsets"]
    return np.frombuffer(bytes(data[b:e]), "<f4").copy()

def put(data, name, values):
    b, e = header[name]["data_offsets"]
    data[b:e] = values.astype("<f4").tobytes()

write("same.safetensors", header, body)
for name, value in [("nan", np.nan), ("inf", np.inf)]:
    data = bytearray(body)
    t = tensor(data, "Mamba_P2.layers.0.mamba.in_proj.weight")
    t[17] = value
    put(data, "Mamba_P2.layers.0.mamba.in_proj.weight", t)
    write(f"{name}.safetensors", header, data)
for name, scale in [("scaled1e30", 1e30), ("scaled1000", 1000)]:
    data = bytearray(body)
    for k in names:
        put(data, k, tensor(data, k) * np.float32(scale))
    write(f"{name}.safetensors", header, data)
# overlap: Mamba_P1's x_proj.weight (same byte count as Conv_in.weight) given Conv_in's bytes
h = json.loads(json.dumps(header))
assert h["Conv_in.weight"]["data_offsets"][1] == h["Mamba_P1.layers.0.mamba.x_proj.weight"]["data_offsets"][1] - h["Mamba_P1.layers.0.mamba.x_proj.weight"]["data_offsets"][0]
h["Mamba_P1.layers.0.mamba.x_proj.weight"]["data_offsets"] = h["Conv_in.weight"]["data_offsets"]
write("overlap.safetensors", h, body)
# truncated inside the data
full = open(f"{tmp}/same.safetensors", "rb").read()
open(f"{tmp}/truncated.safetensors", "wb").write(full[: len(full) - 1000])
# a tensor named twice (json.dumps cannot write that: edit the text)
text = header_bytes(header).rstrip()
first = json.dumps({"cfc.fc.bias": header["cfc.fc.bias"]})[1:-1]
text = text[:-1] + b", " + first.encode() + b"}"
write("duplicate.safetensors", None, body, text + b" " * (-len(text) % 8))
# a header length of 2^63
open(f"{tmp}/hugeheader.safetensors", "wb").write(struct.pack("<Q", 1 << 63) + full[8:])
# a 9-dimensional shape
h = json.loads(json.dumps(header))
h["cfc.fc.bias"]["shape"] = [1] * 8 + [2]
write("ndim9.safetensors", h, body)
PY
mkfifo "$tmp/fifo.safetensors" || { echo "cannot make a FIFO"; exit 1; }
mkdir "$tmp/folder.safetensors"
"$bin" phantom --out "$tmp/ph" --shape 24,24,24 >/dev/null 2>&1 || { echo "cannot make a phantom"; exit 1; }
A="$tmp/ph/t1.nii.gz"; B="$tmp/ph/t2.nii.gz"; out="$tmp/out.nii.gz"

# Checksums of every input, compared after each run (only regular files: reading the FIFO
# would block).
sums() { find "$A" "$B" "$tmp" -maxdepth 1 -type f -name '*.safetensors' -o -type f -name '*.nii.gz' | sort | xargs md5sum; }
before=$(sums)

# hostile NAME PATTERN: fuse -m refuses it (exit 2, message naming the file and the problem,
# no output, inputs unchanged), and info does not call it usable.
hostile() {
  local name=$1 pattern=$2 w="$tmp/$1.safetensors" msg rc info irc
  rm -f "$out"
  msg=$(timeout 10 "$bin" fuse "$A" "$B" -o "$out" -m "$w" --threads 2 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne 2 ]; then bad "fuse -m $name: exit $rc, want 2 ($msg)"
  elif ! grep -qF -- "$w" <<<"$msg"; then bad "fuse -m $name: message '$msg' does not name $w"
  elif ! grep -qiE -- "$pattern" <<<"$msg"; then bad "fuse -m $name: message '$msg' lacks /$pattern/"
  elif compgen -G "$out*" >/dev/null || compgen -G "$tmp/.out*" >/dev/null; then bad "fuse -m $name: left an output file"
  elif [ "$(sums)" != "$before" ]; then bad "fuse -m $name: an input changed"
  else ok "fuse -m $name -> exit 2: $msg"; fi
  info=$(timeout 10 "$bin" info "$w" 2>&1); irc=$?
  if grep -q "LPM-Net weights: yes" <<<"$info"; then bad "info $name: $(grep 'LPM-Net weights' <<<"$info")"
  elif [ "$irc" -eq 0 ] && grep -qE "^LPM-Net weights: no \(.*$pattern" <<<"$info"; then
    ok "info $name -> $(grep '^LPM-Net weights' <<<"$info")"
  elif [ "$irc" -eq 2 ] && grep -qF -- "$w" <<<"$info" && grep -qiE -- "$pattern" <<<"$info"; then
    ok "info $name -> exit 2: $info"
  else bad "info $name: exit $irc, output '$info' lacks /$pattern/"; fi
}

hostile nan "tensor 'Mamba_P2.layers.0.mamba.in_proj.weight' holds a non-finite value \(NaN\) at index 17"
hostile inf "tensor 'Mamba_P2.layers.0.mamba.in_proj.weight' holds a non-finite value \(\+inf\) at index 17"
hostile scaled1e30 "tensor 'Conv_in.weight' holds .* at index 0 .*beyond the 10000"
hostile overlap "tensors 'Conv_in.weight' .* and 'Mamba_P1.layers.0.mamba.x_proj.weight' .* overlap"
hostile truncated "outside the data"
hostile duplicate "tensor 'cfc.fc.bias' appears twice"
hostile hugeheader "header length 9223372036854775808 runs past the end of the file"
hostile ndim9 "tensor 'cfc.fc.bias': shape has more than 8 entries"
hostile fifo "FIFO"
hostile folder "is a folder"

# Weights within the load bound (x1000) whose network overflows: lpm_fuse's output check.
rm -f "$out"
msg=$("$bin" fuse "$A" "$B" -o "$out" -m "$tmp/scaled1000.safetensors" --threads 2 2>&1 >/dev/null); rc=$?
if [ "$rc" -eq 2 ] && grep -q "the model gives non-finite values" <<<"$msg" && ! compgen -G "$out*" >/dev/null; then
  ok "fuse -m scaled1000 -> exit 2: $msg"
else bad "fuse -m scaled1000: exit $rc ($msg)"; fi

# The control: the bundled model rewritten by the same script fuses, and info accepts it.
rm -f "$out"
if "$bin" fuse "$A" "$B" -o "$out" -m "$tmp/same.safetensors" --threads 2 2>"$tmp/log" && [ -s "$out" ]; then
  ok "fuse -m (the bundled model, rewritten) -> exit 0"
else bad "fuse -m (the bundled model, rewritten): $(cat "$tmp/log")"; fi
"$bin" info "$tmp/same.safetensors" | grep -q "LPM-Net weights: yes" && ok "info on the rewritten model: yes" \
  || bad "info on the rewritten model does not say yes"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
