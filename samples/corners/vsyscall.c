/* The legacy vsyscall page at 0xffffffffff600000.  Linux's default mode
 * (vsyscall=xonly) emulates a call to its three entry points: gettimeofday
 * (+0), time (+0x400), getcpu (+0x800), returning to the caller; reading
 * the page, calling any other address in it, or passing a bad pointer is
 * SIGSEGV.
 *   vsyscall         the three calls, checked (registers kept: see below)
 *   vsyscall MODE    read, write, misaligned, offset, badptr, badtime: SIGSEGV */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define VSYSCALL 0xffffffffff600000UL
typedef long (*gtod_fn)(struct timeval *, struct timezone *);
typedef long (*time_fn)(time_t *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);

int main(int argc, char **argv) {
    gtod_fn gtod = (gtod_fn)VSYSCALL;
    time_fn tm = (time_fn)(VSYSCALL + 0x400);
    getcpu_fn gc = (getcpu_fn)(VSYSCALL + 0x800);
    if (argc < 2) {
        time_t t1 = time(NULL), t2 = 0;
        long r = tm(&t2);
        printf("time returns what it stores %d, now %d\n", r == t2, t2 - t1 >= 0 && t2 - t1 < 5);
        printf("time(NULL) now %d\n", labs(tm(NULL) - t1) < 5);
        struct timeval tv;
        struct timezone tz = {77, 77};
        r = gtod(&tv, &tz);
        printf("gettimeofday %ld now %d usec %d tz %d %d\n", r, labs(tv.tv_sec - t1) < 5,
               tv.tv_usec >= 0 && tv.tv_usec < 1000000, tz.tz_minuteswest, tz.tz_dsttime);
        printf("gettimeofday(NULL, NULL) %ld\n", gtod(NULL, NULL));
        unsigned cpu = 999, node = 999;
        r = gc(&cpu, &node, (void *)1);     /* the cache argument is ignored */
        printf("getcpu %ld cpu plausible %d node %u\n", r, cpu < 4096, node);
        printf("getcpu(NULL, NULL) %ld\n", gc(NULL, NULL, NULL));
        /* a call leaves every register but rax alone (not even rcx/r11),
         * and returns with rsp back where it was */
        uint64_t out[6];
        __asm__ volatile(
            "movabs $0x1111111111111111, %%rcx\n movabs $0x2222222222222222, %%r11\n"
            "movabs $0x3333333333333333, %%r8\n xor %%edi, %%edi\n"
            "sub $128, %%rsp\n mov %%rsp, %%r9\n"        /* keep off the red zone */
            "movabs $0xffffffffff600400, %%rax\n call *%%rax\n"
            "sub %%rsp, %%r9\n add $128, %%rsp\n"
            "mov %%rcx, 0(%0)\n mov %%r11, 8(%0)\n mov %%r8, 16(%0)\n mov %%r9, 24(%0)\n"
            "mov %%rdi, 32(%0)\n"
            : : "r"(out) : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
        printf("after call: rcx %llx r11 %llx r8 %llx rsp moved %lld rdi %llx\n",
               (unsigned long long)out[0], (unsigned long long)out[1], (unsigned long long)out[2],
               (long long)out[3], (unsigned long long)out[4]);
        return 0;
    }
    const char *m = argv[1];
    printf("%s\n", m);
    fflush(stdout);
    if (!strcmp(m, "read"))
        printf("%x\n", *(volatile unsigned char *)VSYSCALL);
    else if (!strcmp(m, "write"))
        *(volatile unsigned char *)VSYSCALL = 0xc3;
    else if (!strcmp(m, "misaligned"))
        ((long (*)(void))(VSYSCALL + 1))();
    else if (!strcmp(m, "offset"))
        ((long (*)(void))(VSYSCALL + 0xc00))();
    else if (!strcmp(m, "badptr"))
        gtod((struct timeval *)8, NULL);
    else if (!strcmp(m, "badtime"))
        tm((time_t *)(uintptr_t)0x1000);
    printf("survived\n");
    return 0;
}
