#!/usr/bin/env bash
# Build the benchmark programs (bench/*.c) and the start-up probe
# (bench/support/*.c) with gcc -O2 -static, through samples/build.sh.
#
#   bench/build.sh [OUTDIR]      (default OUTDIR: bench/build)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../samples/build.sh" "${1:-$here/build}" "$here" "$here/support"
