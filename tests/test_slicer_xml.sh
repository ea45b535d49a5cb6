#!/usr/bin/env bash
# lpmnet fuse --xml, the 3D Slicer command-line module description: well-formed XML, one
# parameter for every option that lpmnet fuse --help lists (so a new fuse option without a
# Slicer parameter fails here), every flag of the XML accepted by fuse, and a run with the
# arguments Slicer would pass, through the lpmnet-fuse name Slicer calls.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
tmp="${LPM_TMP:-/tmp}/test_slicer_xml.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }
command -v xmllint >/dev/null || { echo "skip: xmllint is not installed (Debian: libxml2-utils)"; exit 77; }

# Options of fuse --help that make no sense as a Slicer parameter.
not_in_slicer=(-h --help --xml --list)

"$bin" fuse --xml >"$tmp/fuse.xml"; rc=$?
[ "$rc" -eq 0 ] && ok "fuse --xml exits 0" || bad "fuse --xml: exit $rc"
if xmllint --noout - <"$tmp/fuse.xml" 2>"$tmp/lint"; then ok "the XML is well formed (xmllint)"; else bad "xmllint: $(cat "$tmp/lint")"; fi
# The elements Slicer reads, in the order of its schema's executable sequence.
order=$(xmllint --xpath 'name(/*)' - <"$tmp/fuse.xml")
[ "$order" = executable ] && ok "root element <executable>" || bad "root element is <$order>"
heads=$(xmllint --xpath '/executable/*' - <"$tmp/fuse.xml" | grep -oE '^<[a-z-]+' | tr -d '<' | uniq | tr '\n' ' ')
[ "$heads" = "category title description version documentation-url license contributor parameters " ] \
  && ok "executable holds category..contributor, then parameters" || bad "executable's children: $heads"

# Every option fuse --help lists, long and short.
"$bin" fuse --help >"$tmp/help"
mapfile -t options < <(grep -oE '^  (-[a-zA-Z], )?--[a-z][a-z-]*' "$tmp/help" | tr ',' '\n' | tr -d ' ' | grep .)
[ "${#options[@]}" -ge 20 ] && ok "fuse --help lists ${#options[@]} options" || bad "fuse --help lists only: ${options[*]}"
# The XML's flags and long flags.
mapfile -t longflags < <(xmllint --xpath '//longflag/text()' - <"$tmp/fuse.xml" | tr ' ' '\n' | grep .)
mapfile -t flags < <(xmllint --xpath '//flag/text()' - <"$tmp/fuse.xml" | tr ' ' '\n' | grep .)
for opt in "${options[@]}"; do
  skip=0; for x in "${not_in_slicer[@]}"; do [ "$opt" = "$x" ] && skip=1; done
  [ "$skip" -eq 1 ] && continue
  found=0
  if [[ "$opt" == --* ]]; then
    for f in "${longflags[@]}"; do [ "--$f" = "$opt" ] && found=1; done
  else
    for f in "${flags[@]}"; do [ "-$f" = "$opt" ] && found=1; done
  fi
  [ "$found" -eq 1 ] && ok "fuse option $opt is a Slicer parameter" \
    || bad "fuse option $opt has no parameter in fuse --xml (add one in src/cli/slicer.c, or list it in not_in_slicer here)"
done

# Each parameter with a flag as Slicer passes it: "--longflag value" (a boolean: the flag
# alone). The value: the default, else the first enumeration element, else a sample.
"$py" - "$tmp/fuse.xml" >"$tmp/params" <<'PY' || bad "reading the XML with python"
import sys, xml.etree.ElementTree as ET
samples = {"clip": "0.5,99.5", "ct-window": "bone", "max-memory": "4G", "components": "parts",
           "preview": "p.png", "out": "o.nii", "mask": "m.nii"}
for group in ET.parse(sys.argv[1]).getroot().findall("parameters"):
    for p in group:
        if p.tag in ("label", "description"):
            continue
        assert p.findtext("label") and p.findtext("description") and p.findtext("name"), p.tag
        long = p.findtext("longflag")
        index = p.findtext("index")
        assert bool(long) != bool(index), f"{p.findtext('name')}: a flag or an index, not both"
        if not long:
            continue
        assert not long.startswith("-"), long  # Slicer adds the dashes
        if p.tag.endswith("-enumeration"):
            elements = [e.text for e in p.findall("element")]
            assert p.findtext("default") in elements, (long, p.findtext("default"), elements)
        value = p.findtext("default") or samples.get(long, "")
        if p.tag.endswith("-enumeration") and not value:
            value = p.find("element").text
        print(p.tag, long, value if p.tag != "boolean" else "-")
PY
while read -r tag long value; do
  args=(--"$long"); [ "$tag" = boolean ] || args+=("$value")
  msg=$("$bin" fuse a.nii "${args[@]}" 2>&1 >/dev/null); rc=$?
  # with one input the option is parsed, then the missing input B is named
  if [ "$rc" -eq 1 ] && grep -q "missing input B" <<<"$msg"; then ok "fuse accepts ${args[*]}"
  else bad "fuse ${args[*]}: exit $rc: $msg"; fi
done <"$tmp/params"
grep -q "string-enumeration model" "$tmp/params" && grep -q "string-enumeration method" "$tmp/params" \
  && grep -q "string-enumeration color" "$tmp/params" && ok "model, method and color are enumerations" \
  || bad "model/method/color enumerations: $(cat "$tmp/params")"
for m in lpmnet average max pca dwt laplacian guided; do
  grep -q "<element>$m</element>" "$tmp/fuse.xml" || bad "method $m is not an element"
done
for m in mri ct-mr pet-mr pet-ct none hot jet gray; do
  grep -q "<element>$m</element>" "$tmp/fuse.xml" || bad "element $m is missing"
done

# Slicer runs the module as lpmnet-fuse (a link to lpmnet), with every enumeration and integer
# at its default, the output as --out, the inputs last.
ln -s "$bin" "$tmp/lpmnet-fuse"
if cmp -s <("$tmp/lpmnet-fuse" --xml) "$tmp/fuse.xml"; then ok "lpmnet-fuse --xml = lpmnet fuse --xml"; else bad "lpmnet-fuse --xml differs"; fi
"$bin" phantom -q -o "$tmp/ph" --shape 16,16,16 || bad "phantom"
"$py" - "$tmp/ph" <<'PY' || bad "converting the phantom to .nii"
import sys, nibabel as nib
for m in ("t1", "t2"):
    nib.save(nib.load(f"{sys.argv[1]}/{m}.nii.gz"), f"{sys.argv[1]}/{m}.nii")
PY
args=()
while read -r tag long value; do
  case "$tag" in
    *-enumeration|integer) args+=(--"$long" "$value") ;;
  esac
done <"$tmp/params"
if "$tmp/lpmnet-fuse" "${args[@]}" --out "$tmp/fused.nii" "$tmp/ph/t1.nii" "$tmp/ph/t2.nii" 2>"$tmp/log" && [ -s "$tmp/fused.nii" ]; then
  ok "a Slicer-style run (${args[*]}) writes the output"
else
  bad "Slicer-style run ${args[*]}: $(cat "$tmp/log")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
