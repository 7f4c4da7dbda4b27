/* XSAVE state: the xsave and xrstor instructions, and the XSAVE-format FPU
 * state of a signal frame (Linux's sigframe on a CPU with XSAVE: the
 * fxsave region with its software bytes, the XSAVE header, the AVX state
 * and FP_XSTATE_MAGIC2).  Every ymm value is set and read with xrstor and
 * xsave themselves (inline assembly), so the program needs no AVX
 * instruction of its own, and no library code runs between setting a
 * state and reading it back.
 *
 *   xstate        every case, printed (run with AVX state: XSAVE, OSXSAVE
 *                 and XCR0 x87|SSE|AVX; otherwise it says so and stops)
 *   xstate ud     one xsave without looking at CPUID first
 *   xstate compact  xsaveopt, and xsavec with the compacted form of xrstor
 *                 (each only where CPUID.(0DH,1).EAX reports it)
 *
 * What a CPU may do differently is left out: MXCSR_MASK's bit 17 (AMD
 * has it), XSTATE_BV of a component whose values are its initial ones but
 * which was loaded or used (Intel reports it in use, AMD not), components
 * beyond AVX, compacted-format support, and the frame's sizes and features
 * beyond x87|SSE|AVX.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define AREA 832                       /* standard format, x87|SSE|AVX */
#define HDR 512
#define AVX 576
#define SW 464                         /* struct _fpx_sw_bytes */
#define MAGIC1 0x46505853u
#define MAGIC2 0x46505845u
#define FILL 0xA5

static uint8_t img[1024] __attribute__((aligned(64)));     /* a state to load */
static uint8_t init_img[1024] __attribute__((aligned(64)));/* XSTATE_BV 0 */
static uint8_t out[2048] __attribute__((aligned(64)));
static uint8_t before[1024] __attribute__((aligned(64)));
static uint8_t moved[2048] __attribute__((aligned(64)));

static void put_bv(uint8_t *a, uint64_t v) { memcpy(a + HDR, &v, 8); }
static uint64_t get64(const uint8_t *a, int off) { uint64_t v; memcpy(&v, a + off, 8); return v; }
static uint32_t get32(const uint8_t *a, int off) { uint32_t v; memcpy(&v, a + off, 4); return v; }
static void put32(uint8_t *a, int off, uint32_t v) { memcpy(a + off, &v, 4); }
static void put64(uint8_t *a, int off, uint64_t v) { memcpy(a + off, &v, 8); }

static inline void xsave(void *p, uint64_t m)
{
    __asm__ volatile("xsave64 (%0)"
                     : : "r"(p), "a"((uint32_t)m), "d"((uint32_t)(m >> 32)) : "memory");
}

static inline void xrstor(const void *p, uint64_t m)
{
    __asm__ volatile("xrstor64 (%0)"
                     : : "r"(p), "a"((uint32_t)m), "d"((uint32_t)(m >> 32)) : "memory");
}

/* xrstor of ``load`` with ``lmask``, then xsave into ``dst`` with ``smask``,
 * with nothing in between */
static void load_and_save(const void *load, uint64_t lmask, void *dst, uint64_t smask)
{
    uint32_t lo = (uint32_t)lmask, hi = (uint32_t)(lmask >> 32);
    __asm__ volatile("xrstor64 (%2)\n\t"
                     "mov %4, %%eax\n\t"
                     "mov %5, %%edx\n\t"
                     "xsave64 (%3)"
                     : "+a"(lo), "+d"(hi)
                     : "r"(load), "r"(dst), "r"((uint32_t)smask), "r"((uint32_t)(smask >> 32))
                     : "memory");
}

/* the same pair with xsaveopt or xsavec as the save */
#define LOAD_AND(name, insn)                                                              \
    static void load_and_##name(const void *load, uint64_t lmask, void *dst, uint64_t smask) \
    {                                                                                     \
        uint32_t lo = (uint32_t)lmask, hi = (uint32_t)(lmask >> 32);                      \
        __asm__ volatile("xrstor64 (%2)\n\t"                                              \
                         "mov %4, %%eax\n\t"                                              \
                         "mov %5, %%edx\n\t" insn " (%3)"                                 \
                         : "+a"(lo), "+d"(hi)                                             \
                         : "r"(load), "r"(dst), "r"((uint32_t)smask),                      \
                           "r"((uint32_t)(smask >> 32))                                   \
                         : "memory");                                                     \
    }
LOAD_AND(saveopt, "xsaveopt64")
LOAD_AND(savec, "xsavec64")

/* the area as hex lines of 32 bytes; lines still all FILL are left out.
 * MXCSR_MASK bit 17 (AMD's MM) is masked. */
static void dump(const char *title, const uint8_t *a, int n)
{
    uint8_t c[2048];
    memcpy(c, a, n);
    c[30] &= ~2;
    printf("%s\n", title);
    for (int off = 0; off < n; off += 32) {
        int fill = 1;
        for (int i = 0; i < 32 && off + i < n; i++)
            fill &= c[off + i] == FILL;
        if (fill)
            continue;
        printf("  %03x:", off);
        for (int i = 0; i < 32 && off + i < n; i++)
            printf("%s%02x", i % 8 ? "" : " ", c[off + i]);
        printf("\n");
    }
}

static void make_images(void)
{
    memset(img, 0, sizeof img);
    put32(img, 0, 0x0000027F | (0x3900u << 16));   /* FCW 0x27F; FSW: TOP 7, C3, C0 */
    img[4] = 0x81;                               /* abridged tags: R0 and R7 valid */
    put32(img, 24, 0x3F80);                      /* MXCSR: round down, all masked */
    for (int i = 0; i < 8; i++)                  /* ST0..ST7: 80 bits each */
        for (int j = 0; j < 10; j++)
            img[32 + 16 * i + j] = (uint8_t)(0x11 * (i + 1) + j);
    for (int i = 0; i < 256; i++)                /* xmm0..15 */
        img[160 + i] = (uint8_t)(i * 7 + 3);
    for (int i = 0; i < 256; i++)                /* ymmh0..15 */
        img[AVX + i] = (uint8_t)(0xC0 ^ (i * 13));
    put_bv(img, 7);
    memset(init_img, 0, sizeof init_img);        /* XSTATE_BV 0: everything init */
    put32(init_img, 24, 0x1F80);
}

/* -- xsave and xrstor ------------------------------------------------------- */

static void save_case(const char *title, uint64_t mask)
{
    memset(out, FILL, AREA + 64);
    load_and_save(img, 7, out, mask);
    dump(title, out, AREA + 64);
}

static void restore_case(const char *title, uint64_t bv, uint64_t mask, const uint8_t *start)
{
    static uint8_t src[1024] __attribute__((aligned(64)));
    memcpy(src, img, sizeof src);
    put_bv(src, bv);
    put32(src, 24, 0x5F80);                      /* MXCSR: round up */
    memset(out, FILL, AREA);
    xrstor(start, 7);
    load_and_save(src, mask, out, 7);
    dump(title, out, AREA);
}

static sigjmp_buf env;
static volatile int caught_sig, caught_code;
static volatile unsigned long caught_trapno, caught_err;
static uint8_t after[1024] __attribute__((aligned(64)));

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    caught_sig = sig;
    caught_code = si->si_code;
    caught_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
    caught_err = uc->uc_mcontext.gregs[REG_ERR];
    memcpy(after, uc->uc_mcontext.fpregs, AREA);    /* the state at the fault */
    siglongjmp(env, 1);
}

/* SIGSEGV to on_fault (1) or its default action again (0) */
static void catch_faults(int on)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (on) {
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO;
    } else {
        sa.sa_handler = SIG_DFL;
    }
    sigaction(SIGSEGV, &sa, NULL);
}

/* a faulting xsave/xrstor: the signal, and whether the state at the fault
 * (in the signal frame: siglongjmp leaves the handler's own) is the one
 * before the instruction */
static void fault_case(const char *title, int save, void *area, uint64_t mask)
{
    xrstor(img, 7);
    xsave(before, 7);
    caught_sig = caught_code = 0;
    caught_trapno = caught_err = 0;
    if (!sigsetjmp(env, 1)) {
        if (save == 2)
            __asm__ volatile("xsavec64 (%0)" : : "r"(area), "a"((uint32_t)mask),
                             "d"((uint32_t)(mask >> 32)) : "memory");
        else if (save)
            xsave(area, mask);
        else
            xrstor(area, mask);
        xsave(after, 7);
    }
    /* the legacy region's x87 and SSE parts and the AVX state */
    int same = !memcmp(before, after, 416) && !memcmp(before + AVX, after + AVX, AREA - AVX);
    printf("%s: signal %d code %#x trapno %lu err %lu, state %s\n", title, caught_sig, caught_code,
           caught_trapno, caught_err, same ? "unchanged" : "changed");
}

static void instructions(void)
{
    save_case("xsave rfbm 7", 7);
    save_case("xsave rfbm 3 (x87, SSE)", 3);
    save_case("xsave rfbm 4 (AVX, with MXCSR)", 4);
    save_case("xsave rfbm 1 (x87)", 1);
    save_case("xsave rfbm 2 (SSE)", 2);
    save_case("xsave rfbm 0 (the header only)", 0);
    save_case("xsave edx:eax 1<<63|7", 0x8000000000000007ull);

    memset(out, FILL, AREA);
    load_and_save(init_img, 7, out, 7);
    dump("xrstor of xstate_bv 0: every component init", out, AREA);

    restore_case("xrstor xstate_bv 7 rfbm 7", 7, 7, init_img);
    restore_case("xrstor xstate_bv 1 rfbm 7 (SSE, AVX init; MXCSR loaded)", 1, 7, img);
    restore_case("xrstor xstate_bv 6 rfbm 7 (x87 init)", 6, 7, img);
    restore_case("xrstor xstate_bv 3 rfbm 7 (AVX init)", 3, 7, img);
    restore_case("xrstor xstate_bv 5 rfbm 7 (SSE init)", 5, 7, img);
    restore_case("xrstor xstate_bv 7 rfbm 4 (AVX and MXCSR only)", 7, 4, init_img);
    restore_case("xrstor xstate_bv 7 rfbm 1 (x87 only, no MXCSR)", 7, 1, init_img);
    restore_case("xrstor xstate_bv 0 rfbm 2 (SSE init, MXCSR loaded)", 0, 2, img);
    restore_case("xrstor xstate_bv 7 rfbm 0 (nothing)", 7, 0, init_img);

    catch_faults(1);
    static uint8_t bad[2048] __attribute__((aligned(64)));
    fault_case("xsave at 16 mod 64", 1, out + 16, 7);
    fault_case("xsave at 32 mod 64, rfbm 0", 1, out + 32, 0);
    memcpy(bad + 16, img, AREA);
    fault_case("xrstor at 16 mod 64", 0, bad + 16, 7);
    memcpy(bad, img, AREA);
    put64(bad, HDR + 8, 1);
    fault_case("xrstor xcomp_bv 1", 0, bad, 7);
    memcpy(bad, img, AREA);
    bad[HDR + 16] = 1;
    fault_case("xrstor header byte 16", 0, bad, 7);
    memcpy(bad, img, AREA);
    bad[HDR + 23] = 0x80;
    fault_case("xrstor header byte 23", 0, bad, 7);
    memcpy(bad, img, AREA);
    put_bv(bad, 7 | 1ull << 62);
    fault_case("xrstor xstate_bv bit 62", 0, bad, 7);
    memcpy(bad, img, AREA);
    put_bv(bad, 7 | 1ull << 62);
    fault_case("xrstor xstate_bv bit 62, rfbm 1", 0, bad, 1);
    memcpy(bad, img, AREA);
    put32(bad, 24, 0x11F80);
    fault_case("xrstor mxcsr bit 16", 0, bad, 7);
    fault_case("xrstor mxcsr bit 16, rfbm 4", 0, bad, 4);
    fault_case("xrstor mxcsr bit 16, rfbm 1 (not loaded)", 0, bad, 1);
    catch_faults(0);
}

/* -- xsaveopt, xsavec and the compacted form of xrstor ------------------------ */

static void saveopt_case(const char *title, const uint8_t *load, uint64_t mask)
{
    memset(out, FILL, AREA + 64);
    load_and_saveopt(load, 7, out, mask);
    dump(title, out, AREA + 64);
}

static void savec_case(const char *title, const uint8_t *load, uint64_t mask)
{
    memset(out, FILL, AREA + 64);
    load_and_savec(load, 7, out, mask);
    dump(title, out, AREA + 64);
}

/* xrstor of ``src`` (compacted when xsavec wrote it) with ``mask`` over
 * the state of ``start``, then the standard xsave of everything */
static void compact_restore_case(const char *title, const uint8_t *src, uint64_t mask,
                                 const uint8_t *start)
{
    memset(out, FILL, AREA);
    xrstor(start, 7);
    load_and_save(src, mask, out, 7);
    dump(title, out, AREA);
}

static void compacted(void)
{
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(1));
    printf("compacted size for XCR0 at least x87|SSE|AVX's 832 bytes: %s\n", b >= AREA ? "yes" : "no");
    static uint8_t mx[1024] __attribute__((aligned(64)));     /* all init but MXCSR */
    memcpy(mx, init_img, sizeof mx);
    put32(mx, 24, 0x3F80);
    if (a & 1) {
        saveopt_case("xsaveopt rfbm 7", img, 7);
        saveopt_case("xsaveopt rfbm 3", img, 3);
        saveopt_case("xsaveopt rfbm 4 (AVX, with MXCSR)", img, 4);
        saveopt_case("xsaveopt rfbm 2", img, 2);
    }
    if (!(a & 2))
        return;
    savec_case("xsavec rfbm 7", img, 7);
    savec_case("xsavec rfbm 3 (x87, SSE)", img, 3);
    savec_case("xsavec rfbm 5 (x87, AVX)", img, 5);
    savec_case("xsavec rfbm 4 (AVX, no MXCSR)", img, 4);
    savec_case("xsavec rfbm 2 (SSE)", img, 2);
    savec_case("xsavec rfbm 1 (x87)", img, 1);
    savec_case("xsavec rfbm 0 (the header only)", img, 0);
    savec_case("xsavec rfbm 7, every component init", init_img, 7);
    savec_case("xsavec rfbm 7, init but MXCSR", mx, 7);
    savec_case("xsavec rfbm 4, init but MXCSR", mx, 4);

    static uint8_t packed[1024] __attribute__((aligned(64)));
    const uint64_t masks[] = {7, 3, 5, 4, 2, 1, 0};
    for (int i = 0; i < 7; i++) {
        char title[80];
        memset(packed, 0, sizeof packed);
        load_and_savec(img, 7, packed, masks[i]);
        snprintf(title, sizeof title, "xrstor of xsavec rfbm %llu, over the init state",
                 (unsigned long long)masks[i]);
        compact_restore_case(title, packed, 7, init_img);
        snprintf(title, sizeof title, "xrstor rfbm 2 of xsavec rfbm %llu, over img",
                 (unsigned long long)masks[i]);
        compact_restore_case(title, packed, 2, img);
    }
    memset(packed, 0, sizeof packed);
    load_and_savec(img, 7, packed, 7);
    put_bv(packed, 5);              /* SSE init: MXCSR 1F80 too */
    compact_restore_case("xrstor compacted xstate_bv 5 (SSE and MXCSR init)", packed, 7, img);
    put32(packed, 24, 0x5F80);
    put_bv(packed, 3);
    compact_restore_case("xrstor compacted xstate_bv 3 rfbm 4 (MXCSR not loaded)", packed, 4, img);

    catch_faults(1);
    static uint8_t bad[2048] __attribute__((aligned(64)));
    fault_case("xsavec at 16 mod 64", 2, out + 16, 7);
    load_and_savec(img, 7, packed, 7);
    memcpy(bad, packed, AREA);
    put64(bad, HDR + 8, 0x8000000000000000ull | 7 | 1ull << 9);
    fault_case("xrstor compacted, xcomp_bv bit 9", 0, bad, 7);
    memcpy(bad, packed, AREA);
    put64(bad, HDR + 8, 0x8000000000000000ull | 3);
    fault_case("xrstor compacted, xstate_bv 7 xcomp_bv 3", 0, bad, 7);
    memcpy(bad, packed, AREA);
    put64(bad, HDR + 8, 0x8000000000000000ull | 3);
    fault_case("xrstor compacted, xstate_bv 7 xcomp_bv 3, rfbm 1", 0, bad, 1);
    memcpy(bad, packed, AREA);
    bad[HDR + 40] = 1;
    fault_case("xrstor compacted, header byte 40", 0, bad, 7);
    memcpy(bad, packed, AREA);
    bad[HDR + 63] = 0x80;
    fault_case("xrstor compacted, header byte 63", 0, bad, 7);
    memcpy(bad, packed, AREA);
    put32(bad, 24, 0x11F80);
    fault_case("xrstor compacted, mxcsr bit 16", 0, bad, 7);
    fault_case("xrstor compacted, mxcsr bit 16, rfbm 4 (not loaded)", 0, bad, 4);
    memcpy(bad, packed, AREA);
    put32(bad, 24, 0x11F80);
    put_bv(bad, 5);
    fault_case("xrstor compacted, mxcsr bit 16, xstate_bv 5 (not loaded)", 0, bad, 7);
    catch_faults(0);
}

/* -- signal frames ------------------------------------------------------------ */

enum { KEEP, EDIT, AVX_INIT, SSE_INIT, FX_ONLY, FEATURES_3, MOVE, MOVE_MISALIGNED, BAD_BV };
static const char *const mode_names[] = {
    "unchanged", "edited", "xstate_bv without AVX", "xstate_bv without SSE",
    "magic1 cleared (fxsave only)", "features x87|SSE", "moved to another buffer",
    "moved to 16 mod 64", "xstate_bv bit 62",
};
static int mode;
static uint8_t handler_state[1024] __attribute__((aligned(64)));

static void dump_bytes(const char *what, const uint8_t *p, int n)
{
    printf("    %s:", what);
    for (int i = 0; i < n; i++)
        printf("%s%02x", i % 8 ? "" : " ", p[i]);
    printf("\n");
}

static void on_usr1(int sig, siginfo_t *si, void *ucv)
{
    /* first of all: the state the handler starts with (no memset before
     * it: that would use xmm registers) */
    xsave(handler_state, 7);
    ucontext_t *uc = ucv;
    uint8_t *fp = (uint8_t *)uc->uc_mcontext.fpregs;
    uint32_t size = get32(fp, SW + 16);
    printf("  handler (%s): uc_flags&UC_FP_XSTATE %d, fpstate aligned %d\n", mode_names[mode],
           (int)(uc->uc_flags & 1), (int)(((uintptr_t)fp & 63) == 0));
    printf("    magic1 %s, extended size %s, features&7 %#llx, size %s, magic2 %s\n",
           get32(fp, SW) == MAGIC1 ? "ok" : "wrong",
           get32(fp, SW + 4) == size + 4 ? "size+4" : "wrong",
           (unsigned long long)(get64(fp, SW + 8) & 7), size >= AREA ? ">= 832" : "too small",
           get32(fp, size) == MAGIC2 ? "ok" : "wrong");
    printf("    xstate_bv&7 %#llx, xcomp_bv %#llx, fcw %#x, mxcsr %#x\n",
           (unsigned long long)(get64(fp, HDR) & 7), (unsigned long long)get64(fp, HDR + 8),
           get32(fp, 0) & 0xFFFF, get32(fp, 24));
    dump_bytes("st0", fp + 32, 10);
    dump_bytes("xmm1", fp + 160 + 16, 16);
    dump_bytes("ymmh1", fp + AVX + 16, 16);
    dump_bytes("ymmh15", fp + AVX + 240, 16);
    printf("    handler's own state: xstate_bv %#llx, fcw %#x, mxcsr %#x\n",
           (unsigned long long)(get64(handler_state, HDR) & 7), get32(handler_state, 0) & 0xFFFF,
           get32(handler_state, 24));
    dump_bytes("its ymmh1", handler_state + AVX + 16, 16);

    switch (mode) {
    case EDIT:
        put64(fp, AVX + 16, 0x0123456789ABCDEFull);     /* ymmh1, low half */
        put64(fp, 160 + 32, 0xFEDCBA9876543210ull);     /* xmm2, low half */
        put32(fp, 24, 0x7F80);                          /* MXCSR: toward zero */
        fp[32] ^= 0xFF;                                 /* ST0 */
        break;
    case AVX_INIT:
        put64(fp, HDR, get64(fp, HDR) & ~4ull);
        break;
    case SSE_INIT:
        put64(fp, HDR, get64(fp, HDR) & ~2ull);
        break;
    case FX_ONLY:
        put32(fp, SW, 0);
        put32(fp, 24, 0x1F80);
        put64(fp, 160 + 32, 0x1111111111111111ull);
        break;
    case FEATURES_3:
        put64(fp, SW + 8, 3);
        put32(fp, 24, 0x1F80);
        break;
    case MOVE:
        memcpy(moved, fp, size + 4);
        put64(moved, AVX + 32, 0x2222222222222222ull);  /* ymmh2 */
        uc->uc_mcontext.fpregs = (fpregset_t)moved;
        break;
    case MOVE_MISALIGNED:
        memcpy(moved + 16, fp, size + 4);
        uc->uc_mcontext.fpregs = (fpregset_t)(moved + 16);
        break;
    case BAD_BV:
        put64(fp, HDR, get64(fp, HDR) | 1ull << 62);
        break;
    }
}

static void on_segv(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    uint8_t *fp = (uint8_t *)uc->uc_mcontext.fpregs;
    printf("  SIGSEGV after rt_sigreturn: code %#x; the registers are the frame's: %s;"
           " its FPU state: xstate_bv&7 %#llx, mxcsr %#x\n", si->si_code,
           uc->uc_mcontext.gregs[REG_R12] == 0x1234 ? "yes" : "no",
           (unsigned long long)(get64(fp, HDR) & 7), get32(fp, 24));
    dump_bytes("ymmh1", fp + AVX + 16, 16);
    siglongjmp(env, 1);
}

static void frames(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    long pid = getpid();
    for (mode = KEEP; mode <= BAD_BV; mode++) {
        memset(out, FILL, AREA);
        if (sigsetjmp(env, 1)) {
            printf("  (%s) ended in the SIGSEGV handler\n", mode_names[mode]);
            continue;
        }
        /* load the state, kill(getpid(), SIGUSR1): the handler runs as the
         * system call returns; then save the state it came back with */
        register long r12 __asm__("r12") = 0x1234;
        unsigned long ax = 7, dx = 0;
        __asm__ volatile("xrstor64 (%3)\n\t"
                         "mov %4, %%rdi\n\t"
                         "mov %5, %%esi\n\t"
                         "mov %6, %%eax\n\t"
                         "syscall\n\t"
                         "mov $7, %%eax\n\t"
                         "xor %%edx, %%edx\n\t"
                         "xsave64 (%7)"
                         : "+r"(r12), "+a"(ax), "+d"(dx)
                         : "r"(img), "r"(pid), "i"(SIGUSR1), "i"(SYS_kill), "r"(out)
                         : "rdi", "rsi", "rcx", "r11", "memory");
        dump("  state after the handler returned", out, AREA);
    }
}

static int have_avx_state(void)
{
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 26)) || !(c & (1u << 27)))
        return 0;
    __asm__("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
    return (a & 7) == 7;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "ud")) {
        printf("xsave without asking CPUID\n");
        xsave(out, 7);
        printf("xsave ran\n");
        return 0;
    }
    if (!have_avx_state()) {
        printf("no AVX state (XSAVE, OSXSAVE and XCR0 x87|SSE|AVX needed)\n");
        return 0;
    }
    make_images();
    if (argc > 1 && !strcmp(argv[1], "compact")) {
        compacted();
        return 0;
    }
    instructions();
    /* Linux's AT_MINSIGSTKSZ (init_sigframe_size): a frame overhead of
       about 940 bytes plus the XSAVE area CPUID leaf 0xD reports for XCR0,
       16-aligned.  The overhead's exact value shows only through the
       rounding: 1776 for an 832-byte area (Linux 6.x, XCR0 x87|SSE|AVX),
       3376 for 2440 bytes (Linux 6.18 with PKRU enabled), so the check
       allows the range. */
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(0));
    unsigned long got = getauxval(AT_MINSIGSTKSZ);
    int fits = got % 16 == 0 && got >= b + 928 && got <= b + 944;
    printf("AT_MINSIGSTKSZ is the frame overhead plus the XSAVE size: %s\n",
           fits ? "yes" : "no");
    printf("signal frames:\n");
    frames();
    return 0;
}
