#!/usr/bin/env bash
# Build the "real programs" benchmark drivers (bench/real/*.c) with
# gcc -O2 -static against Debian's static libraries (lua5.4, sqlite3, zlib,
# liblzma, libzstd, libcrypto, libgmp, libpython3.11), for
# `bench/run --suite real`.
#
#   bench/real/build.sh [OUTDIR]      (default OUTDIR: bench/build/real)
#
# A program whose header or static library (.a) is missing is skipped with a
# message naming the Debian package to install; the others are still built
# and the script succeeds.  A compiler or linker error in a program whose
# libraries are all there is a real failure: the others are still built,
# then the script exits with status 1.  A binary is rebuilt only when it is
# missing or older than its source, data.h, this script or one of the
# static libraries it links; it is written to a temporary name and renamed
# into place.  glibc's warnings about getpwnam/dlopen in static programs
# are not shown.
#
# Environment: CC (default gcc), EXTRA_CFLAGS (appended), PYTHON_CONFIG
# (default /usr/bin/python3.11-config when it exists, else
# python3.11-config on PATH).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$(cd "$here/.." && pwd)/build/real}"
cc="${CC:-gcc}"
# shellcheck disable=SC2206  # word splitting of EXTRA_CFLAGS is intended
extra=(${EXTRA_CFLAGS:-})
cflags=(-O2 -static -Wall -Wextra -Wno-unused-parameter)
pyconfig="${PYTHON_CONFIG:-}"
if [[ -z "$pyconfig" ]]; then
    if [[ -x /usr/bin/python3.11-config ]]; then
        pyconfig=/usr/bin/python3.11-config
    else
        pyconfig=python3.11-config
    fi
fi

# The programs: NAME, Debian package(s), header, extra compiler flags,
# libraries that must exist as static archives (libX.a), link flags.
# python's flags come from python3.11-config (see below).
programs=(
    "lua|liblua5.4-dev|lua.h|-I/usr/include/lua5.4|lua5.4|-llua5.4 -lm -ldl"
    "sqlite|libsqlite3-dev|sqlite3.h||sqlite3|-lsqlite3 -lm -lpthread -ldl"
    "zlib|zlib1g-dev|zlib.h||z|-lz"
    "xz|liblzma-dev|lzma.h||lzma|-llzma -lpthread"
    "zstd|libzstd-dev|zstd.h||zstd|-lzstd -lpthread"
    "openssl|libssl-dev|openssl/evp.h||crypto|-lcrypto -lpthread -ldl"
    "gmp|libgmp-dev|gmp.h||gmp|-lgmp"
    "python|libpython3.11-dev libexpat1-dev zlib1g-dev|Python.h|PYTHON|python3.11 expat z|PYTHON"
)

# static_lib NAME [DIR...]: the path of libNAME.a in DIRs or the compiler's
# library path, or nothing
static_lib() {
    local name="$1" d p
    shift
    for d in "$@"; do
        [[ -e "$d/lib$name.a" ]] && { echo "$d/lib$name.a"; return; }
    done
    p="$("$cc" -print-file-name="lib$name.a")"
    [[ "$p" == /* && -e "$p" ]] && echo "$p"
    return 0
}

mkdir -p "$out"
built=0
fresh_count=0
skipped=()
failed=()
for entry in "${programs[@]}"; do
    IFS='|' read -r name pkgs header pcflags libs ldflags <<<"$entry"
    src="$here/$name.c"
    [[ -e "$src" ]] || continue
    ldirs=()
    if [[ "$pcflags" == PYTHON ]]; then
        if ! command -v "$pyconfig" >/dev/null 2>&1; then
            echo "build.sh: $name skipped: $pyconfig not found (apt-get install $pkgs)" >&2
            skipped+=("$name")
            continue
        fi
        pcflags="$("$pyconfig" --includes)"
        ldflags="$("$pyconfig" --ldflags --embed) -lexpat -lz"
        for f in $ldflags; do
            [[ "$f" == -L* ]] && ldirs+=("${f#-L}")
        done
    fi
    # the header, found with these flags?
    # shellcheck disable=SC2086  # word splitting of pcflags is intended
    if ! echo "#include <$header>" | "$cc" -E $pcflags -x c - >/dev/null 2>&1; then
        echo "build.sh: $name skipped: <$header> not found (apt-get install $pkgs)" >&2
        skipped+=("$name")
        continue
    fi
    archives=()
    missing=""
    for lib in $libs; do
        a="$(static_lib "$lib" ${ldirs[@]+"${ldirs[@]}"})"
        if [[ -z "$a" ]]; then
            missing="$missing lib$lib.a"
        else
            archives+=("$a")
        fi
    done
    if [[ -n "$missing" ]]; then
        echo "build.sh: $name skipped: no${missing} (apt-get install $pkgs)" >&2
        skipped+=("$name")
        continue
    fi
    bin="$out/$name"
    fresh=1
    for dep in "$src" "$here/data.h" "$here/build.sh" "${archives[@]}"; do
        [[ -x "$bin" && "$bin" -nt "$dep" ]] || { fresh=0; break; }
    done
    if [[ $fresh == 1 ]]; then
        fresh_count=$((fresh_count + 1))
        continue
    fi
    tmp="$(mktemp "$out/.$name.XXXXXX")"
    log="$(mktemp)"
    # shellcheck disable=SC2086  # word splitting of pcflags and ldflags is intended
    if "$cc" "${cflags[@]}" $pcflags ${extra[@]+"${extra[@]}"} -o "$tmp" "$src" $ldflags 2>"$log"; then
        chmod 755 "$tmp"
        mv -f "$tmp" "$bin"
        built=$((built + 1))
        # compiler warnings, not glibc's link-time notes about static programs
        grep -v -e 'statically linked applications requires at runtime' \
                -e ': in function `' -e '^collect2' "$log" >&2 || true
    else
        cat "$log" >&2
        rm -f "$tmp"
        echo "build.sh: failed to build $name" >&2
        failed+=("$name")
    fi
    rm -f "$log"
done
msg="build.sh: $built built, $fresh_count up to date in $out"
[[ ${#skipped[@]} -eq 0 ]] || msg="$msg; skipped (missing library): ${skipped[*]}"
[[ ${#failed[@]} -eq 0 ]] || msg="$msg; FAILED: ${failed[*]}"
echo "$msg"
[[ ${#failed[@]} -eq 0 ]]
