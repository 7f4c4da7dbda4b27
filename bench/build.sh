#!/usr/bin/env bash
# Build the benchmark programs (bench/*.c) and the start-up probe
# (bench/support/*.c) as static x86-64 binaries with gcc -O2 -static.
#
#   bench/build.sh [OUTDIR]      (default OUTDIR: bench/build)
#
# A binary is rebuilt only when it is missing or older than its source or this
# script, so a second run is a no-op.  Each binary is written to a temporary
# name and renamed into place, so concurrent runs never expose a half-written
# file.  Environment: CC (default gcc), EXTRA_CFLAGS (appended).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/build}"
cc="${CC:-gcc}"
cflags=(-O2 -static -Wall -Wextra -Wno-unused-parameter)
# shellcheck disable=SC2206  # word splitting of EXTRA_CFLAGS is intended
extra=(${EXTRA_CFLAGS:-})

mkdir -p "$out"
built=0
skipped=0
for src in "$here"/*.c "$here"/support/*.c; do
    [[ -e "$src" ]] || continue
    name="$(basename "$src" .c)"
    bin="$out/$name"
    if [[ -x "$bin" && "$bin" -nt "$src" && "$bin" -nt "$here/build.sh" ]]; then
        skipped=$((skipped + 1))
        continue
    fi
    tmp="$(mktemp "$out/.$name.XXXXXX")"
    if ! "$cc" "${cflags[@]}" ${extra[@]+"${extra[@]}"} -o "$tmp" "$src" -lm; then
        rm -f "$tmp"
        echo "build.sh: failed to build $name" >&2
        exit 1
    fi
    chmod 755 "$tmp"
    mv -f "$tmp" "$bin"
    built=$((built + 1))
done
echo "build.sh: $built built, $skipped up to date in $out"
