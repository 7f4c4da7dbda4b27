/* tablesweep: every system call of a list, called with every pointer
 * argument of one class at a time: NULL, unmapped, read-only, writable,
 * past the user address space, kernel addresses, wrapping.  Integers are 0;
 * descriptors are a scratch file's.  It prints what the kernel answered,
 * so a run under bttool can be compared with the native one line by line.
 *
 *   tablesweep < LIST     LIST: one call per line, "NR KIND..." with the
 *                         kinds of bttool's syscall table (i f s pN pN*K
 *                         p:K lN); each line must end in a newline. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *class_names[] = {"null", "unmapped", "read-only", "writable", "past-user",
                                    "kernel", "wrapping", "top-edge"};
#define NCLASSES (sizeof class_names / sizeof *class_names)

static long pointer_of(unsigned c, char *ro, char *rw) {
    switch (c) {
    case 0: return 0;
    case 1: return 0x10000;                    /* below every mapping */
    case 2: return (long)ro;
    case 3: return (long)rw;
    case 4: return 0x800000000000L;            /* first address past user space */
    case 5: return (long)0xffff880000000000UL; /* the kernel's direct map */
    case 6: return (long)0xfffffffffffff000UL; /* wraps with any length */
    default: return 0x7ffffffffff8L;           /* the last bytes a user pointer may name */
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *ro = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *rw = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open("tablesweep.scratch", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (ro == MAP_FAILED || rw == MAP_FAILED || fd < 0) {
        perror("setup");
        return 1;
    }
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        char *save = NULL, *tok = strtok_r(line, " \n", &save);
        if (!tok)
            continue;
        long nr = strtol(tok, NULL, 10);
        char kinds[6][16];
        int n = 0;
        while (n < 6 && (tok = strtok_r(NULL, " \n", &save)))
            snprintf(kinds[n++], sizeof kinds[0], "%s", tok);
        for (unsigned c = 0; c < NCLASSES; c++) {
            long a[6] = {0};
            for (int i = 0; i < n; i++) {
                if (kinds[i][0] == 'f')
                    a[i] = fd;
                else if (kinds[i][0] != 'i')
                    a[i] = pointer_of(c, ro, rw);
            }
            memset(rw, 0, 8192);
            errno = 0;
            long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            printf("%ld %s: %s\n", nr, class_names[c], r < 0 && errno ? strerrorname_np(errno) : "ok");
            fflush(stdout);
        }
    }
    close(fd);
    unlink("tablesweep.scratch");
    return 0;
}
