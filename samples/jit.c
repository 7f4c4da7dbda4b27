/* A small JIT: machine code written into memory, run, rewritten and run
 * again; in another page and in the page of the running code itself (an
 * instruction that patches the next one), with the page writable and
 * executable at once or switched with mprotect; hot code replaced by
 * mmap(MAP_FIXED) and by mremap over it, the program's own text made
 * writable and patched, a read-modify-write of code, and code written
 * through a second, writable mapping of the same memfd (mapped before the
 * code runs, after it, and made writable later), and hot code replaced
 * while its optimised translation is still being compiled.  Prints every
 * result; the
 * output must be the same natively and under bttool. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int (*fn_t)(void);

/* in a page of its own in the program's text; noipa: calls really run it */
__attribute__((noipa, aligned(4096))) int text_fn(void) { return 11; }

/* mov eax, imm32; ret */
static void emit_return(unsigned char *p, int32_t v)
{
    p[0] = 0xB8;
    memcpy(p + 1, &v, 4);
    p[5] = 0xC3;
}

int main(void)
{
    long page = 4096;
    unsigned char *rwx = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE | PROT_EXEC,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rwx == MAP_FAILED)
        return 1;
    fn_t f = (fn_t)rwx;
    emit_return(rwx, 7);
    printf("first %d\n", f());
    emit_return(rwx, 11);
    printf("rewritten %d\n", f());

    long sum = 0;
    for (int i = 0; i < 2000; i++) {
        emit_return(rwx + 64, i * 3);
        sum += ((fn_t)(rwx + 64))();
    }
    printf("rewritten in a loop: sum %ld\n", sum);

    /* code that patches its own next instruction:
     *   mov byte ptr [rip + 1], 0x2a   (C6 05 01 00 00 00 2A)
     *   mov eax, 1                     (B8 01 00 00 00)   -> becomes mov eax, 42
     *   ret */
    static const unsigned char selfmod[] = {0xC6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x2A,
                                            0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3};
    memcpy(rwx + 256, selfmod, sizeof selfmod);
    printf("patched itself: %d\n", ((fn_t)(rwx + 256))());
    rwx[256 + 6] = 0x2B;
    printf("patched itself again: %d\n", ((fn_t)(rwx + 256))());

    /* code in one page rewriting a function in the next:
     *   mov dword ptr [rip + X], 99   then call the function there */
    emit_return(rwx + page, 5);
    printf("other page before: %d\n", ((fn_t)(rwx + page))());
    unsigned char *w = rwx + 512;
    int32_t disp = (int32_t)((rwx + page + 1) - (w + 10));
    w[0] = 0xC7; w[1] = 0x05; memcpy(w + 2, &disp, 4);      /* mov dword [rip+disp], 99 */
    int32_t v = 99; memcpy(w + 6, &v, 4);
    w[10] = 0xC3;
    ((fn_t)w)();
    printf("other page after: %d\n", ((fn_t)(rwx + page))());

    /* W^X: write, make executable, run; make writable, rewrite, run */
    unsigned char *wx = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    emit_return(wx, 1234);
    mprotect(wx, page, PROT_READ | PROT_EXEC);
    printf("w^x first %d\n", ((fn_t)wx)());
    mprotect(wx, page, PROT_READ | PROT_WRITE);
    emit_return(wx, 4321);
    mprotect(wx, page, PROT_READ | PROT_EXEC);
    printf("w^x rewritten %d\n", ((fn_t)wx)());

    /* hot code (run often enough to be optimised) replaced by a new
     * mapping at the same address */
    unsigned char *a = mmap(NULL, page, PROT_READ | PROT_WRITE | PROT_EXEC,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    emit_return(a, 21);
    long hot = 0;
    for (int i = 0; i < 30000; i++)
        hot += ((fn_t)a)();
    printf("hot before MAP_FIXED %ld\n", hot);
    unsigned char *b = mmap(a, page, PROT_READ | PROT_WRITE | PROT_EXEC,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    emit_return(b, 22);
    printf("after MAP_FIXED %d\n", ((fn_t)a)());

    /* hot code replaced while its optimised translation is still being
     * made: a long function (slow to optimise) made hot, replaced at once
     * by a new mapping and run again and again, with a system call between
     * runs (where a finished compilation could be installed) */
    unsigned char *h = mmap(NULL, page, PROT_READ | PROT_WRITE | PROT_EXEC,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *q = h;
    *q++ = 0x89; *q++ = 0xF8;                               /* mov eax, edi */
    for (int i = 0; i < 300; i++) {
        int32_t k = 0x11111 * (i + 1);
        *q++ = 0x05; memcpy(q, &k, 4); q += 4;              /* add eax, k */
        *q++ = 0x6B; *q++ = 0xC0; *q++ = 0x03;              /* imul eax, eax, 3 */
    }
    *q = 0xC3;
    long long_sum = 0;
    for (int i = 0; i < 30000; i++)
        long_sum += ((int (*)(int))h)(i);
    mmap(h, page, PROT_READ | PROT_WRITE | PROT_EXEC,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    emit_return(h, 61);
    int wrong = 0;
    for (int i = 0; i < 20000; i++) {
        wrong += ((fn_t)h)() != 61;
        getppid();
    }
    printf("replaced while compiling %ld, %d stale\n", long_sum, wrong);

    /* mremap moves one function's page over another's */
    unsigned char *c = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE | PROT_EXEC,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    emit_return(c, 31);
    emit_return(c + page, 32);
    printf("before mremap %d %d\n", ((fn_t)c)(), ((fn_t)(c + page))());
    unsigned char *d = mremap(c, page, page, MREMAP_MAYMOVE | MREMAP_FIXED, c + page);
    printf("after mremap %d\n", ((fn_t)d)());

    /* the program's own text made writable and patched */
    unsigned char *t = (unsigned char *)((uintptr_t)text_fn & ~(uintptr_t)(page - 1));
    hot = 0;
    for (int i = 0; i < 30000; i++)
        hot += text_fn();
    printf("text %ld\n", hot);
    if (mprotect(t, page, PROT_READ | PROT_WRITE | PROT_EXEC) == 0) {
        emit_return((unsigned char *)text_fn, 12);
        printf("text patched %d\n", text_fn());
    }

    /* code read, then changed by a read-modify-write (wx made writable
     * and executable at once) */
    mprotect(wx, page, PROT_READ | PROT_WRITE | PROT_EXEC);
    emit_return(wx, 41);
    int before = ((fn_t)wx)();
    wx[1] += 1;
    printf("read-modify-write %d %d\n", before, ((fn_t)wx)());

    /* double mapping: write through one view of a memfd, run the other */
    int mfd = memfd_create("jit", 0);
    if (mfd < 0 || ftruncate(mfd, page) != 0)
        return 1;
    unsigned char *rw = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    unsigned char *rx = mmap(NULL, page, PROT_READ | PROT_EXEC, MAP_SHARED, mfd, 0);
    emit_return(rw, 51);
    hot = 0;
    for (int i = 0; i < 30000; i++)
        hot += ((fn_t)rx)();
    printf("double mapped %ld\n", hot);
    emit_return(rw, 52);
    printf("rewritten through the other view %d\n", ((fn_t)rx)());
    unsigned char *late = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    emit_return(late, 53);
    printf("through a view mapped later %d\n", ((fn_t)rx)());
    unsigned char *ro = mmap(NULL, page, PROT_READ, MAP_SHARED, mfd, 0);
    printf("still %d\n", ((fn_t)rx)());
    mprotect(ro, page, PROT_READ | PROT_WRITE);
    emit_return(ro, 54);
    printf("through a view made writable %d\n", ((fn_t)rx)());
    return 0;
}
