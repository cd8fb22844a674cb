#!/usr/bin/env bash
# Runs the whole test suite of a built preset (default: build/).
# Usage: scripts/test.sh [preset] [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
shift || true
ctest --preset "$preset" --parallel "$(nproc)" "$@"
