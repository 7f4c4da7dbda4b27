#!/usr/bin/env bash
# Build the benchmark programs (bench/*.c) and the start-up probe
# (bench/support/*.c) with gcc -O2 -static, and each of them once more
# dynamically linked (gcc -O2, no -static) as NAME-dyn, for
# `bench/run --dynamic`; both through samples/build.sh, so the same rules
# hold: a binary is rebuilt only when it is missing or older than its
# source, a bench/*.h header or the build scripts, and is written to a
# temporary name and renamed into place.
#
#   bench/build.sh [OUTDIR]      (default OUTDIR: bench/build)
#
# Environment: CC (default gcc), EXTRA_CFLAGS (appended, to both builds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/build}"
headers="$(echo "$here"/*.h) $here/build.sh"
DEPS="$headers" "$here/../samples/build.sh" "$out" "$here" "$here/support"
DEPS="$headers" LINK=dynamic SUFFIX=-dyn "$here/../samples/build.sh" "$out" "$here" "$here/support"
