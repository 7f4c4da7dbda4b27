/* sysfuzz SEED [N]: N (default 2000) random system calls with random
 * arguments, drawn from integers, descriptors (among them the numbers
 * where a translator keeps its own) and pointers of every class: NULL,
 * guest-valid (a scratch area), read-only, unmapped, host-like (where a
 * translator's own memory would be if an address were not translated),
 * huge, kernel and wrapping.  The calls run in a child; the parent prints
 * how the child ended and whether a canary the calls never point at is
 * intact.  Files the calls make land in the current directory (run it
 * in an empty one).  Calls that block forever, end or split the process, or change
 * its limits are left out.  Results differ from a native run (host-like
 * addresses may be valid there): what matters is that the child ends, by
 * itself, and the translator neither crashes nor hangs. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const int calls[] = {
    0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 25, 26, 28,
    32, 33, 36, 39, 40, 63, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86,
    87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 102, 104, 107, 108, 110,
    111, 115, 121, 124, 127, 131, 132, 137, 138, 140, 157, 158, 162, 186, 191, 192,
    193, 194, 195, 196, 201, 204, 217, 218, 228, 229, 235, 257, 258, 259, 260, 262,
    263, 264, 265, 266, 267, 268, 269, 273, 280, 285, 292, 309, 316, 318, 326, 332,
    334, 435, 436, 439, 500,
};

static uint64_t state;
static uint64_t rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static char *scratch, *ro, *gone;
static volatile unsigned char canary[4096];

static long raw(long nr, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
                     "r"(r9) : "rcx", "r11", "memory");
    return ret;
}

static long arg(void) {
    switch (rnd() % 12) {
    case 0: return 0;
    case 1: return rnd() % 4096;                                  /* small */
    case 2: { static const long fds[] = {0, 1, 2, 3, 4, 5, -1, -100, 960, 961, 962, 963,
                                         1000, 1023, 2000};
              return fds[rnd() % (sizeof fds / sizeof *fds)]; }
    case 3: return (long)(scratch + rnd() % 65536);               /* guest-valid */
    case 4: return (long)(scratch + (rnd() % 16) * 4096);         /* page aligned */
    case 5: return (long)(ro + rnd() % 4096);                     /* read-only */
    case 6: return (long)(gone + rnd() % 4096);                   /* unmapped */
    case 7: { static const long host[] = {0x7f0000000000L, 0x7ff000000000L, 0x555555554000L,
                                          0x10000000000L, 0xffffffffff600000L};
              return host[rnd() % 5] + (long)(rnd() % 65536); }   /* host-like */
    case 8: return (long)(0x8000000000000000UL + rnd() % 4096);  /* huge */
    case 9: return (long)(0xffff800000000000UL + rnd() % 65536); /* kernel */
    case 10: return -(long)(rnd() % 8192) - 1;                    /* wrapping */
    default: return (long)rnd();
    }
}

static void fuzz(long n) {
    long fs;
    raw(SYS_arch_prctl, 0x1003, (long)&fs, 0, 0, 0, 0);
    long ok = 0, err = 0;
    for (long i = 0; i < n; i++) {
        int nr = calls[rnd() % (sizeof calls / sizeof *calls)];
        long a[6];
        for (int j = 0; j < 6; j++)
            a[j] = arg();
        if (nr == 13 || nr == 14)
            a[3] = rnd() % 2 ? 8 : a[3];           /* sigsetsize: often right */
        if (nr == 9 && rnd() % 2)
            a[3] = 0x22;                           /* MAP_PRIVATE|MAP_ANONYMOUS */
        if (nr == 14 && a[0] == 2 && a[1])
            a[0] = 0;                              /* no SIG_SETMASK: keep signals */
        long r = raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r < 0 && r > -4096)
            err++;
        else
            ok++;
        if (nr == 158)                             /* arch_prctl: keep the TLS */
            raw(SYS_arch_prctl, 0x1002, fs, 0, 0, 0, 0);
    }
    char line[96];
    int len = snprintf(line, sizeof line, "calls %ld: %ld ok, %ld errors\n", n, ok, err);
    raw(SYS_write, 2, (long)line, len, 0, 0, 0);
}

int main(int argc, char **argv) {
    state = strtoull(argc > 1 ? argv[1] : "1", NULL, 0) * 2654435761u + 88172645463325252ull;
    long n = argc > 2 ? atol(argv[2]) : 2000;
    for (unsigned i = 0; i < sizeof canary; i++)
        canary[i] = (unsigned char)(i * 7 + 1);
    scratch = mmap(NULL, 65536 + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    gone = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, 4096);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fuzz(n);
        int intact = 1;
        for (unsigned i = 0; i < sizeof canary; i++)
            intact &= canary[i] == (unsigned char)(i * 7 + 1);
        raw(SYS_exit_group, intact ? 0 : 3, 0, 0, 0, 0, 0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (WIFSIGNALED(st))
        printf("fuzz child: signal %d\n", WTERMSIG(st));
    else
        printf("fuzz child: exit %d\n", WEXITSTATUS(st));
    int intact = 1;
    for (unsigned i = 0; i < sizeof canary; i++)
        intact &= canary[i] == (unsigned char)(i * 7 + 1);
    printf("canary %s\nfuzz done\n", intact ? "intact" : "CHANGED");
    return 0;
}
