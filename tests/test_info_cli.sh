#!/usr/bin/env bash
# lpmnet info on the public API (lpm_cpu_info_get, lpm_volume_file_info_get): `info --cpu`
# with LPM_ISA unset, forced and wrong (the CPU lines still printed, exit 1 naming LPM_ISA);
# `info FILE` on a single file, a gzip-compressed file and an .hdr/.img pair (format, datatype,
# where the data is, the description).
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
tmp="${LPM_TMP:-/tmp}/test_info_cli.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

# --cpu: four lines, the chosen set among those offered
out=$(env -u LPM_ISA "$bin" info --cpu 2>&1); rc=$?
offers=$(printf '%s\n' "$out" | sed -n 's/^offers   //p')
set_=$(printf '%s\n' "$out" | sed -n 's/^kernels  \([a-z0-9]*\):.*/\1/p')
if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^cpu      .* threads by default)$' &&
   [ -n "$set_" ] && [ "${offers%% *}" = "$set_" ] &&
   printf '%s\n' "$out" | grep -q "^chosen   by the CPU's features: "; then
  ok "info --cpu: the best set offered ($set_ of $offers)"
else
  bad "info --cpu (rc $rc): $out"
fi
out=$(LPM_ISA=ref "$bin" info --cpu 2>&1); rc=$?
if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^kernels  ref: ' && printf '%s\n' "$out" | grep -q '^chosen   by LPM_ISA=ref$'; then
  ok "LPM_ISA=ref info --cpu"
else
  bad "LPM_ISA=ref info --cpu (rc $rc): $out"
fi
stdout=$(LPM_ISA=bogus "$bin" info --cpu 2>"$tmp/err"); rc=$?
if [ $rc -eq 1 ] && grep -q '^lpmnet info: LPM_ISA=bogus: unknown kernel set (one of ref, portable, avx2, avx512, neon; this CPU offers: ' "$tmp/err" &&
   printf '%s\n' "$stdout" | grep -q '^cpu      ' && printf '%s\n' "$stdout" | grep -q "^offers   $offers\$" &&
   ! printf '%s\n' "$stdout" | grep -q '^kernels'; then
  ok "LPM_ISA=bogus info --cpu: exit 1, the CPU lines, then the message"
else
  bad "LPM_ISA=bogus info --cpu (rc $rc): $stdout / $(cat "$tmp/err")"
fi

# info FILE: the header's details
"$bin" phantom -o "$tmp/ph" --shape 16,16,16 -q || bad "phantom failed"
check_info() { # check_info FILE FORMAT DATAFILE
  local out
  out=$("$bin" info "$1" 2>&1)
  if printf '%s\n' "$out" | grep -qxF "  format      $2" &&
     printf '%s\n' "$out" | grep -qxF "  datatype    NIFTI_TYPE_FLOAT32, scl_slope 1, scl_inter 0" &&
     printf '%s\n' "$out" | grep -q "^  data        4096 voxels x 4 bytes at offset [0-9]* of $3\$" &&
     printf '%s\n' "$out" | grep -qxF "  description lpmnet 0.1.0" &&
     printf '%s\n' "$out" | grep -qxF "  dims        16 x 16 x 16 (x, y, z) = D,H,W 16,16,16"; then
    ok "info $(basename "$1"): $2"
  else
    bad "info $1: $out"
  fi
}
check_info "$tmp/ph/t1.nii.gz" "NIfTI-1 single file (.nii), gzip-compressed, little-endian" "$tmp/ph/t1.nii.gz"
gzip -dc "$tmp/ph/t1.nii.gz" > "$tmp/t1.nii"
check_info "$tmp/t1.nii" "NIfTI-1 single file (.nii), uncompressed, little-endian" "$tmp/t1.nii"
# a pair: the header of t1.nii with the magic of a pair, and the voxels in their own file
make_pair() {
  local off
  off=$(od -An -t f4 -j 108 -N 4 "$tmp/t1.nii" | tr -d ' ')
  off=${off%.*}
  head -c 348 "$tmp/t1.nii" > "$tmp/p.hdr"
  printf 'ni1\0' | dd of="$tmp/p.hdr" bs=1 seek=344 conv=notrunc status=none
  printf '\0\0\0\0' | dd of="$tmp/p.hdr" bs=1 seek=108 conv=notrunc status=none
  tail -c +$((off + 1)) "$tmp/t1.nii" > "$tmp/p.img"
}
make_pair
check_info "$tmp/p.hdr" "NIfTI-1 pair (.hdr/.img), uncompressed, little-endian" "$tmp/p.img"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
