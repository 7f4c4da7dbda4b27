/* procself: a program that looks at itself through /proc/self: its exe
 * link, cmdline, environ, auxv, maps, and reads and writes its own memory
 * through /proc/self/mem (a debugger's and a JIT's trick).  Under a
 * translator these must describe the guest, never the translator's host
 * process: /proc/self/mem at an address the guest has not mapped is EIO
 * however much host memory lies there.  The output is the same on every
 * run. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static volatile int secret = 0x1234;
static const int constant = 0x4321;

static ssize_t slurp(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    ssize_t total = 0, n;
    while ((n = read(fd, buf + total, size - total)) > 0)
        total += n;
    close(fd);
    return total;
}

int main(int argc, char **argv);

/* The maps line holding ``addr``, parsed; 0 when there is none. */
struct area { unsigned long start, end, offset, inode; unsigned major, minor; char perms[5], path[512];
              int name_column; };

static int area_of(const char *maps, unsigned long addr, struct area *a) {
    for (const char *line = maps; *line; line = strchr(line, '\n') + 1) {
        int used = 0;
        a->path[0] = 0;
        if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu %n", &a->start, &a->end, a->perms, &a->offset,
                   &a->major, &a->minor, &a->inode, &used) < 7)
            return 0;
        const char *eol = strchr(line, '\n');
        a->name_column = line + used < eol ? used : -1;   /* (%n counted the newline too) */
        if (a->name_column > 0)
            snprintf(a->path, sizeof a->path, "%.*s", (int)(eol - line - used), line + used);
        if (a->start <= addr && addr < a->end)
            return 1;
    }
    return 0;
}

static int lines_with(const char *maps, const char *what) {
    int n = 0;
    for (const char *p = maps; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* What /proc/self/maps says of the program's own code, its heap and an
 * area split by mprotect and joined again, as Linux words it. */
static void maps_lines(const char *real) {
    static char maps[1 << 16];
    struct area a;
    struct stat st;
    for (int i = 0; i < 24; i++)            /* grow the heap by brk, piece by piece */
        if (sbrk(4096) == (void *)-1)
            break;
    char *three = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(three + 4096, 4096, PROT_READ);
    mprotect(three + 4096, 4096, PROT_READ | PROT_WRITE);
    ssize_t n = slurp("/proc/self/maps", maps, sizeof maps - 1);
    maps[n > 0 ? n : 0] = 0;
    if (!area_of(maps, (unsigned long)&main, &a) || stat("/proc/self/exe", &st) != 0) {
        printf("maps: main's page not found\n");
        return;
    }
    unsigned char file[16] = {0};
    int fd = open(real, O_RDONLY);
    pread(fd, file, sizeof file, (off_t)(a.offset + ((unsigned long)&main - a.start)));
    close(fd);
    printf("maps: main's page: %s, named by column %d: the program %d, its device and inode %d,"
           " its offset holds main's code %d\n", a.perms, a.name_column, strcmp(a.path, real) == 0,
           a.major == major(st.st_dev) && a.minor == minor(st.st_dev) && a.inode == st.st_ino,
           memcmp(file, (void *)&main, sizeof file) == 0);
    printf("maps: [heap] lines after brk grew it 24 times: %d\n", lines_with(maps, "[heap]"));
    int whole = area_of(maps, (unsigned long)three, &a) && a.start <= (unsigned long)three
                && a.end >= (unsigned long)three + 3 * 4096;
    printf("maps: three anonymous pages split by mprotect and joined again: one line %d, %s, %s\n",
           whole, a.perms, a.name_column < 0 ? "unnamed" : "named");
}

int main(int argc, char **argv) {
    static char buf[1 << 16];
    char path[64];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    char *real = realpath(argv[0], NULL);
    printf("exe is this program: %s\n", real && strcmp(buf, real) == 0 ? "yes" : "no");
    snprintf(path, sizeof path, "/proc/%d/exe", getpid());
    n = readlink(path, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("/proc/PID/exe too: %s\n", real && strcmp(buf, real) == 0 ? "yes" : "no");
    struct stat via_link, direct, link;
    int same = stat("/proc/self/exe", &via_link) == 0 && real && stat(real, &direct) == 0
               && via_link.st_dev == direct.st_dev && via_link.st_ino == direct.st_ino;
    printf("stat of /proc/self/exe is the program's: %s; lstat sees a link: %s\n", same ? "yes" : "no",
           lstat("/proc/self/exe", &link) == 0 && S_ISLNK(link.st_mode) ? "yes" : "no");

    n = slurp("/proc/self/cmdline", buf, sizeof buf);
    printf("cmdline: %zd bytes:", n);
    for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1)
        printf(" [%s]", buf + i);
    printf("\n");

    n = slurp("/proc/self/environ", buf, sizeof buf);
    int vars = 0;
    for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1)
        vars++;
    int envc = 0;
    for (char **e = __environ; *e; e++)
        envc++;
    printf("environ entries match the initial environment: %s\n", vars == envc ? "yes" : "no");

    unsigned long aux[1024];
    n = slurp("/proc/self/auxv", (char *)aux, sizeof aux);
    int found = 0, terminated = 0;
    for (ssize_t i = 0; i + 1 < n / 8; i += 2) {
        if (aux[i] == AT_ENTRY && aux[i + 1] == getauxval(AT_ENTRY))
            found = 1;
        if (aux[i] == AT_NULL)
            terminated = 1;
    }
    printf("auxv: AT_ENTRY matches getauxval %d, ends with AT_NULL %d\n", found, terminated);

    n = slurp("/proc/self/maps", buf, sizeof buf);
    buf[n > 0 ? n : 0] = 0;
    char own[32];
    snprintf(own, sizeof own, "%lx-", (unsigned long)&secret & ~0xfffUL);
    printf("maps: has [stack] %d, has the page of a global %d\n", strstr(buf, "[stack]") != NULL,
           strstr(buf, own) != NULL);
    maps_lines(real);

    int fd = open("/proc/self/mem", O_RDWR);
    int v = 0;
    n = pread(fd, &v, sizeof v, (off_t)(unsigned long)&secret);
    printf("mem: read %zd bytes: %x\n", n, v);
    v = 0x5678;
    n = pwrite(fd, &v, sizeof v, (off_t)(unsigned long)&secret);
    printf("mem: wrote %zd bytes, the global is now %x\n", n, secret);
    v = 0x1111;
    n = pwrite(fd, &v, sizeof v, (off_t)(unsigned long)&constant);
    printf("mem: wrote %zd bytes into read-only data, it is now %x\n", n, *(volatile const int *)&constant);
    unsigned long probes[] = {0x10, 0x7f0000000000UL, 0x7ffffffff000UL, 0xffffffffff600000UL};
    for (unsigned i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        errno = 0;
        n = pread(fd, buf, 64, (off_t)probes[i]);
        printf("mem: read at %#lx: %zd (%s)\n", probes[i], n, n < 0 ? strerror(errno) : "data");
    }
    lseek(fd, (off_t)(unsigned long)&secret, SEEK_SET);
    n = read(fd, &v, sizeof v);
    printf("mem: lseek+read %zd bytes: %x\n", n, v);
    close(fd);
    return 0;
}
