#!/usr/bin/env bash
# Installs the Debian packages lpmnet needs, only those that are missing, then fetches the
# pinned NiiVue viewer script (scripts/fetch-niivue.sh).
set -euo pipefail
pkgs=(build-essential cmake pkg-config zlib1g-dev libnifti2-dev libpng-dev libomp-dev time
      clang libclang-rt-dev
      python3 python3-torch python3-numpy python3-nibabel python3-scipy python3-skimage
      python3-pytest libxml2-utils chromium
      libopenmpi-dev openmpi-bin
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross libgomp1-arm64-cross qemu-user)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm only where none is on the PATH (a Node.js install of its own brings one)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "lpmnet: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$(dirname "$0")/fetch-niivue.sh"
