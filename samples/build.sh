#!/usr/bin/env bash
# Build every samples/*.c (or every *.c of the given SRCDIRs) as a static
# x86-64 binary, and every *.cc with g++ the same way (C++ samples).
# bench/build.sh uses it for the benchmark programs.
#
#   samples/build.sh [OUTDIR [SRCDIR...]]   (default: samples/build, samples)
#
# A binary is rebuilt only when it is missing or older than its source or this
# script, so a second run is a no-op.  Each binary is written to a temporary
# name and renamed into place, so concurrent runs never expose a half-written
# file.  Environment: CC (default gcc), CXX (default g++), EXTRA_CFLAGS
# (appended), LINK (static, the default, or dynamic: no -static), SUFFIX
# (appended to every binary's name), DEPS (more files every binary depends
# on, e.g. shared headers).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/build}"
srcdirs=("${@:2}")
[[ ${#srcdirs[@]} -gt 0 ]] || srcdirs=("$here")
cc="${CC:-gcc}"
cxx="${CXX:-g++}"
cflags=(-O2 -Wall -Wextra -Wno-unused-parameter)
[[ "${LINK:-static}" == dynamic ]] || cflags+=(-static)
suffix="${SUFFIX:-}"
# shellcheck disable=SC2206  # word splitting of DEPS is intended
deps=(${DEPS:-})
# shellcheck disable=SC2206  # word splitting of EXTRA_CFLAGS is intended
extra=(${EXTRA_CFLAGS:-})

mkdir -p "$out"
built=0
skipped=0
for dir in "${srcdirs[@]}"; do for src in "$dir"/*.c "$dir"/*.cc; do
    [[ -e "$src" ]] || continue
    compiler="$cc"
    name="$(basename "$src" .c)"
    if [[ "$src" == *.cc ]]; then
        compiler="$cxx"
        name="$(basename "$src" .cc)"
        if ! command -v "$cxx" >/dev/null; then
            echo "build.sh: $cxx not found, $name not built (apt-get install g++)" >&2
            continue
        fi
    fi
    name="$name$suffix"
    bin="$out/$name"
    fresh=1
    for dep in "$src" "$here/build.sh" ${deps[@]+"${deps[@]}"}; do
        [[ -x "$bin" && "$bin" -nt "$dep" ]] || { fresh=0; break; }
    done
    if [[ $fresh == 1 ]]; then
        skipped=$((skipped + 1))
        continue
    fi
    tmp="$(mktemp "$out/.$name.XXXXXX")"
    if ! "$compiler" "${cflags[@]}" ${extra[@]+"${extra[@]}"} -o "$tmp" "$src" -lm; then
        rm -f "$tmp"
        echo "build.sh: failed to build $name" >&2
        exit 1
    fi
    chmod 755 "$tmp"
    mv -f "$tmp" "$bin"
    built=$((built + 1))
done; done
echo "build.sh: $built built${suffix:+ ($suffix)}, $skipped up to date in $out"
