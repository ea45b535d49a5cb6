#!/usr/bin/env bash
# The results the project publishes agree with each other: docs/results.md ends with
# docs/results-reading.md (tools/results.sh appends it; an edit to one alone leaves the page
# stale), and each model card's test counts are the summary row of its family there.
set -u
src="${LPM_SOURCE_DIR:?LPM_SOURCE_DIR is set by CTest}"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

results="$src/docs/results.md"
reading="$src/docs/results-reading.md"
tail_=$(sed -n '/^## Reading the numbers$/,$p' "$results")
if [ -n "$tail_" ] && [ "$tail_" = "$(cat "$reading")" ]; then
  ok "docs/results.md ends with docs/results-reading.md"
else
  bad "docs/results.md's 'Reading the numbers' differs from docs/results-reading.md (splice it in or rerun tools/results.sh):"
  diff <(printf '%s\n' "$tail_") "$reading" | head -20 >&2
fi

# Summary rows: | family | pairs | average | max | pca | dwt | laplacian | guided | seam ... |
for family in mri ct-mr pet-mr pet-ct; do
  row=$(grep "^| $family | [0-9]" "$results" | head -1)
  counts=$(printf '%s\n' "$row" | awk -F'|' '{ gsub(/ /, ""); print $4 " / " $5 " / " $6 " / " $7 " / " $8 " / " $9 }')
  card="$src/models/lpmnet-$family.md"
  # the card's Test: paragraph, joined onto one line
  test_=$(sed -n '/^Test:/,/^[A-Z][a-z]*:/p' "$card" | tr '\n' ' ' | tr -s ' ')
  if [ -n "$row" ] && printf '%s\n' "$test_" | grep -qF "$counts of 8"; then
    ok "$family: card and docs/results.md agree ($counts)"
  else
    bad "$family: docs/results.md says '$counts', models/lpmnet-$family.md says: $test_"
  fi
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
