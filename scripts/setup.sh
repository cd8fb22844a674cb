#!/usr/bin/env bash
# Installs what turnstile needs from Debian's packages (only what is missing),
# then configures and builds the `default` preset into build/.
# Usage: scripts/setup.sh [preset]   (default, debug or asan-ubsan)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config python3
  libboost-fiber-dev librapidcheck-dev libfmt-dev libgtest-dev libgmock-dev
  libhiredis-dev redis-server libcurl4-openssl-dev nlohmann-json3-dev
  libcli11-dev libbenchmark-dev
  chromium
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

preset="${1:-default}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
