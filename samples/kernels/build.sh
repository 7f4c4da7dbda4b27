#!/usr/bin/env bash
# Build the sample kernels: each NAME.c is linked twice with the shared
# library in lib/ and kernel.ld:
#   NAME.elf  ELF64, bttool boot protocol (entered in 64-bit long mode)
#   NAME.mb   ELF32 with a Multiboot v1 header (entered in 32-bit protected
#             mode, switches to long mode itself; QEMU's -kernel boots it)
#
#   samples/kernels/build.sh [OUTDIR]      (default: samples/kernels/build)
#
# An object or image is rebuilt only when it is missing or older than one of
# its inputs (sources, lib/kernel.h, kernel.ld, this script), so a second run
# is a no-op.  Outputs are written to a temporary name and renamed into
# place.  Environment: CC (default gcc), LD (ld), OBJCOPY (objcopy).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/build}"
cc="${CC:-gcc}"
ld="${LD:-ld}"
objcopy="${OBJCOPY:-objcopy}"
cflags=(-std=gnu11 -O2 -ffreestanding -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only
        -fno-stack-protector -fno-asynchronous-unwind-tables
        -fno-builtin -nostdlib -nostdinc -Wall -Wextra -Wno-unused-parameter
        -I"$here/lib")
ldflags=(-nostdlib -static -no-pie -z max-page-size=0x1000 -z noexecstack --build-id=none
         -T "$here/kernel.ld")
common_deps=("$here/lib/kernel.h" "$here/kernel.ld" "$here/build.sh" "$here/../../bench/crc32_loop.h")

mkdir -p "$out/obj"
built=0
skipped=0

# up_to_date TARGET DEP...: TARGET exists and is newer than every DEP
up_to_date() {
    local t="$1" d
    shift
    [[ -e "$t" ]] || return 1
    for d in "$@"; do
        [[ "$t" -nt "$d" ]] || return 1
    done
}

# compile SRC OBJ
compile() {
    local src="$1" obj="$2" tmp
    if up_to_date "$obj" "$src" "${common_deps[@]}"; then
        return 0
    fi
    tmp="$(mktemp "$out/obj/.tmp.XXXXXX")"
    if ! "$cc" "${cflags[@]}" -c -o "$tmp" "$src"; then
        rm -f "$tmp"
        echo "build.sh: failed to compile $src" >&2
        exit 1
    fi
    mv -f "$tmp" "$obj"
}

for s in boot64.S multiboot.S isr.S lib.c; do
    compile "$here/lib/$s" "$out/obj/${s%.*}.o"
done
libobjs=("$out/obj/isr.o" "$out/obj/lib.o")

for src in "$here"/*.c; do
    [[ -e "$src" ]] || continue
    name="$(basename "$src" .c)"
    obj="$out/obj/$name.o"
    compile "$src" "$obj"
    deps=("$obj" "${libobjs[@]}" "${common_deps[@]}")

    # NAME.elf: bttool boot protocol
    if up_to_date "$out/$name.elf" "$out/obj/boot64.o" "${deps[@]}"; then
        skipped=$((skipped + 1))
    else
        tmp="$(mktemp "$out/.$name.XXXXXX")"
        if ! "$ld" "${ldflags[@]}" -e _start -o "$tmp" "$out/obj/boot64.o" "$obj" "${libobjs[@]}"; then
            rm -f "$tmp"
            echo "build.sh: failed to link $name.elf" >&2
            exit 1
        fi
        chmod 644 "$tmp"
        mv -f "$tmp" "$out/$name.elf"
        built=$((built + 1))
    fi

    # NAME.mb: Multiboot v1, linked as ELF64 then converted to ELF32
    if up_to_date "$out/$name.mb" "$out/obj/multiboot.o" "${deps[@]}"; then
        skipped=$((skipped + 1))
    else
        tmp="$(mktemp "$out/.$name.XXXXXX")"
        tmp64="$tmp.64"
        if ! "$ld" "${ldflags[@]}" -e _mb_start -o "$tmp64" "$out/obj/multiboot.o" "$obj" "${libobjs[@]}" ||
           ! "$objcopy" -O elf32-i386 "$tmp64" "$tmp"; then
            rm -f "$tmp" "$tmp64"
            echo "build.sh: failed to link $name.mb" >&2
            exit 1
        fi
        rm -f "$tmp64"
        # the Multiboot header must lie 4-aligned in the first 8192 bytes
        off="$(LC_ALL=C grep -obUaP '\x02\xb0\xad\x1b' "$tmp" | head -n 1 | cut -d: -f1 || true)"
        if [[ -z "$off" || "$off" -ge 8192 || $((off % 4)) -ne 0 ]]; then
            rm -f "$tmp"
            echo "build.sh: $name.mb: no Multiboot header in the first 8 KiB" >&2
            exit 1
        fi
        chmod 644 "$tmp"
        mv -f "$tmp" "$out/$name.mb"
        built=$((built + 1))
    fi
done
# btboot.mb: the bttool boot protocol as a Multiboot kernel, so that QEMU can
# boot the NAME.elf variants (qemu ... -kernel btboot.mb -initrd NAME.elf)
bsrc="$here/btboot/btboot.S"
bdeps=("$bsrc" "$here/btboot/btboot.ld" "$here/build.sh")
if up_to_date "$out/btboot.mb" "${bdeps[@]}"; then
    skipped=$((skipped + 1))
else
    tmp="$(mktemp "$out/.btboot.XXXXXX")"
    if ! "$cc" -c -o "$tmp.o" "$bsrc" ||
       ! "$ld" -nostdlib -static -no-pie -z max-page-size=0x1000 -z noexecstack --build-id=none \
            -T "$here/btboot/btboot.ld" -e _start -o "$tmp.64" "$tmp.o" ||
       ! "$objcopy" -O elf32-i386 "$tmp.64" "$tmp"; then
        rm -f "$tmp" "$tmp.o" "$tmp.64"
        echo "build.sh: failed to build btboot.mb" >&2
        exit 1
    fi
    rm -f "$tmp.o" "$tmp.64"
    chmod 644 "$tmp"
    mv -f "$tmp" "$out/btboot.mb"
    built=$((built + 1))
fi

echo "build.sh: $built built, $skipped up to date in $out"
