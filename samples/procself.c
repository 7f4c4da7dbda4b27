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
