#!/usr/bin/env bash
# Build the benchmark programs (bench/*.c) and the start-up probe
# (bench/support/*.c) with gcc -O2 -static, through samples/build.sh, and
# each of them once more dynamically linked (gcc -O2, no -static) as
# NAME-dyn, for `bench/run --dynamic`.
#
#   bench/build.sh [OUTDIR]      (default OUTDIR: bench/build)
#
# Like samples/build.sh, a NAME-dyn is rebuilt only when it is missing or
# older than its source, a bench/*.h header or this script, and is written to
# a temporary name and renamed into place.  Environment: CC (default gcc),
# EXTRA_CFLAGS (appended, to both builds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/build}"
"$here/../samples/build.sh" "$out" "$here" "$here/support"

cc="${CC:-gcc}"
cflags=(-O2 -Wall -Wextra -Wno-unused-parameter)
# shellcheck disable=SC2206  # word splitting of EXTRA_CFLAGS is intended
extra=(${EXTRA_CFLAGS:-})
built=0
skipped=0
for src in "$here"/*.c "$here"/support/*.c; do
    [[ -e "$src" ]] || continue
    name="$(basename "$src" .c)-dyn"
    bin="$out/$name"
    fresh=1
    for dep in "$src" "$here/build.sh" "$here"/*.h; do
        [[ -e "$dep" ]] || continue
        [[ -x "$bin" && "$bin" -nt "$dep" ]] || { fresh=0; break; }
    done
    if [[ $fresh == 1 ]]; then
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
echo "build.sh: $built dynamically linked built, $skipped up to date in $out"
