#!/usr/bin/env bash
# Puts the pinned NiiVue viewer script at vendor/niivue/niivue.umd.js (vendor/niivue/README.md):
# the npm tarball of @niivue/niivue, checked against the SHA-256s recorded here, then its
# single-file build. Does nothing when the file is already there with the right checksum.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.69.0
tarball_sha=6e9a6a471b428eb3b258a0086beca9187d95e43a781a39e8a519c6da246af485
file_sha=47b896b77ec4a5be3ef1949c33ad393b6f45629921f326c279000bcf51bdb4af
dest=vendor/niivue/niivue.umd.js

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest" ]; then
    [ "$(sha "$dest")" = "$file_sha" ] && exit 0
    echo "lpmnet: $dest is not NiiVue $version (checksum differs): fetching it again" >&2
fi
if ! command -v npm >/dev/null; then
    echo "lpmnet: npm is needed once to fetch the NiiVue viewer script (apt-get install npm)," \
         "or put NiiVue $version's dist/niivue.umd.js at $dest" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "lpmnet: fetching @niivue/niivue@$version (npm) for the --html viewer"
if ! (cd "$tmp" && npm pack --silent "@niivue/niivue@$version" >/dev/null); then
    echo "lpmnet: npm pack @niivue/niivue@$version failed (is the npm registry reachable?)" >&2
    exit 1
fi
tgz="$tmp/niivue-niivue-$version.tgz"
if [ "$(sha "$tgz")" != "$tarball_sha" ]; then
    echo "lpmnet: the npm tarball of @niivue/niivue@$version has an unexpected SHA-256; not used" >&2
    exit 1
fi
tar -xzf "$tgz" -C "$tmp" package/dist/niivue.umd.js
if [ "$(sha "$tmp/package/dist/niivue.umd.js")" != "$file_sha" ]; then
    echo "lpmnet: dist/niivue.umd.js of @niivue/niivue@$version has an unexpected SHA-256; not used" >&2
    exit 1
fi
mv "$tmp/package/dist/niivue.umd.js" "$dest.tmp.$$"
mv "$dest.tmp.$$" "$dest"
