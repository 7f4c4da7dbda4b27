/* int 0x80 from 64-bit code: Linux runs the i386 system-call ABI (eax = the
 * i386 number, arguments in ebx ecx edx esi edi ebp truncated to 32 bits,
 * every register but rax preserved, rax = the sign-extended result).
 * Pointers must be below 4 GiB: only static data is passed.
 *   int80            the checks below, then exit(0x2a) through int 0x80
 *   int80 trap       int $3 (CD 03): SIGTRAP
 *   int80 icebp      int1 (F1, ICEBP): SIGTRAP
 *   int80 gp         int $0x81: SIGSEGV
 *   int80 exec       execve through int 0x80 (32-bit argv/envp arrays) of
 *                    this program with "execd", which prints what it got */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char msg[] = "hello via int 0x80\n";
static const char part1[] = "writev ", part2[] = "through compat iovecs\n";
static uint32_t iov32[4];
uint64_t saved[17], saved_rsp;     /* used by name in preserve()'s asm */
static unsigned char buf[4096];
static struct utsname uts;
static uint32_t mmap_args[6];
static char path[] = "/";

static uint64_t i80(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t si, uint64_t di) {
    uint64_t ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "0"(a), "b"(b), "c"(c), "d"(d), "S"(si), "D"(di)
                     : "memory");
    return ret;
}
/* six arguments: the sixth in ebp */
static uint64_t i80_6(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t si, uint64_t di,
                      uint64_t bp) {
    uint64_t ret;
    __asm__ volatile("push %%rbp\n mov %7, %%rbp\n int $0x80\n pop %%rbp"
                     : "=a"(ret) : "0"(a), "b"(b), "c"(c), "d"(d), "S"(si), "D"(di), "m"(bp)
                     : "memory");
    return ret;
}
#define P(x) ((uint64_t)(uintptr_t)(x))

static void preserve(void) {
    __asm__ volatile(
        "push %%rbp\n push %%rbx\n push %%r12\n push %%r13\n push %%r14\n push %%r15\n"
        "mov %%rsp, saved_rsp(%%rip)\n"
        "movabs $0x0101010101010101, %%rbx\n movabs $0x0202020202020202, %%rcx\n"
        "movabs $0x0303030303030303, %%rdx\n movabs $0x0404040404040404, %%rsi\n"
        "movabs $0x0505050505050505, %%rdi\n movabs $0x0606060606060606, %%rbp\n"
        "movabs $0x0707070707070707, %%r8\n movabs $0x0808080808080808, %%r9\n"
        "movabs $0x0909090909090909, %%r10\n movabs $0x0a0a0a0a0a0a0a0a, %%r11\n"
        "movabs $0x0b0b0b0b0b0b0b0b, %%r12\n movabs $0x0c0c0c0c0c0c0c0c, %%r13\n"
        "movabs $0x0d0d0d0d0d0d0d0d, %%r14\n movabs $0x0e0e0e0e0e0e0e0e, %%r15\n"
        "mov $-1, %%eax\n add $1, %%eax\n"            /* ZF CF PF AF set */
        "movabs $0xffffffff00000014, %%rax\n"          /* getpid; upper half ignored */
        "int $0x80\n"
        "pushfq\n pop saved+120(%%rip)\n"
        "mov %%rax, saved+0(%%rip)\n mov %%rbx, saved+8(%%rip)\n mov %%rcx, saved+16(%%rip)\n"
        "mov %%rdx, saved+24(%%rip)\n mov %%rsi, saved+32(%%rip)\n mov %%rdi, saved+40(%%rip)\n"
        "mov %%rbp, saved+48(%%rip)\n mov %%r8, saved+56(%%rip)\n mov %%r9, saved+64(%%rip)\n"
        "mov %%r10, saved+72(%%rip)\n mov %%r11, saved+80(%%rip)\n mov %%r12, saved+88(%%rip)\n"
        "mov %%r13, saved+96(%%rip)\n mov %%r14, saved+104(%%rip)\n mov %%r15, saved+112(%%rip)\n"
        "mov %%rsp, %%rax\n sub saved_rsp(%%rip), %%rax\n mov %%rax, saved+128(%%rip)\n"
        "pop %%r15\n pop %%r14\n pop %%r13\n pop %%r12\n pop %%rbx\n pop %%rbp\n"
        : : : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
    static const char *names[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9",
                                  "r10", "r11", "r12", "r13", "r14", "r15", "rflags", "drsp"};
    printf("getpid in rax: %d\n", saved[0] == (uint64_t)getpid());
    for (int i = 1; i < 17; i++)
        printf("%s %016llx\n", names[i], (unsigned long long)(i == 15 ? saved[i] & 0xcd5 : saved[i]));
}

static uint32_t argv32[3], envp32[3], sock_args[6];
static int32_t sv32[2], status32;
static char exe[] = "/proc/self/exe", missing[] = "/nonexistent/int80";
static char a0[] = "int80", a1[] = "execd", e0[] = "INT80_ENV=compat", e1[] = "B=2";

/* execve(/proc/self/exe, {"int80", "execd"}, {"INT80_ENV=compat", "B=2"}) */
static int exec_mode(void) {
    argv32[0] = (uint32_t)P(a0); argv32[1] = (uint32_t)P(a1); argv32[2] = 0;
    envp32[0] = (uint32_t)P(e0); envp32[1] = (uint32_t)P(e1); envp32[2] = 0;
    printf("execve missing %016llx\n",
           (unsigned long long)i80(11, P(missing), P(argv32), P(envp32), 0, 0));
    fflush(stdout);
    uint64_t r = i80(11, P(exe), P(argv32), P(envp32), 0, 0);
    printf("execve returned %016llx\n", (unsigned long long)r);
    return 1;
}

static int execd_mode(int argc, char **argv, char **envp) {
    printf("execd: argc %d argv0 %s\n", argc, argv[0]);
    for (char **e = envp; *e; e++)
        printf("env %s\n", *e);
    return 0;
}

/* socketcall (102) and the direct i386 socket calls (those whose x86-64
 * twins bttool offers); clone (120) as fork */
static void sockets_and_clone(void) {
    sock_args[0] = 1; sock_args[1] = 1; sock_args[2] = 0; sock_args[3] = (uint32_t)P(sv32);
    uint64_t r = i80(102, 8, P(sock_args), 0, 0, 0);            /* socketpair */
    printf("socketcall socketpair %lld\n", (long long)r);
    sock_args[0] = sv32[0]; sock_args[1] = (uint32_t)P(msg); sock_args[2] = 5; sock_args[3] = 0;
    printf("socketcall send %lld\n", (long long)i80(102, 9, P(sock_args), 0, 0, 0));
    memset(buf, 0, 64);
    printf("read %lld %s\n", (long long)i80(3, sv32[1], P(buf), 64, 0, 0), buf);
    printf("socketcall bad call %016llx\n", (unsigned long long)i80(102, 99, P(sock_args), 0, 0, 0));
    printf("socketcall bad args %016llx\n", (unsigned long long)i80(102, 9, 0x10, 0, 0, 0));
    printf("sendto %lld\n", (long long)i80_6(369, sv32[1], P(msg) + 6, 3, 0, 0, 0));
    memset(buf, 0, 64);
    printf("read %lld %s\n", (long long)i80(3, sv32[0], P(buf), 64, 0, 0), buf);
    printf("shutdown %lld\n", (long long)i80(373, sv32[0], SHUT_RDWR, 0, 0, 0));
    close(sv32[0]); close(sv32[1]);
    printf("socket %d\n", (int64_t)(r = i80(359, 1, 1, 0, 0, 0)) >= 0);
    close((int)r);
    fflush(stdout);
    r = i80(120, SIGCHLD, 0, 0, 0, 0);                         /* clone: a fork */
    if (r == 0) {
        static const char child[] = "clone child\n";
        i80(4, 1, P(child), sizeof child - 1, 0, 0);
        i80(1, 7, 0, 0, 0, 0);
    }
    uint64_t w = i80(7, r, P(&status32), 0, 0, 0);             /* waitpid */
    printf("clone waitpid same %d status %x\n", w == r, status32);
}

int main(int argc, char **argv, char **envp) {
    if (argc > 1 && !strcmp(argv[1], "exec"))
        return exec_mode();
    if (argc > 1 && !strcmp(argv[1], "execd"))
        return execd_mode(argc, argv, envp);
    if (argc > 1 && !strcmp(argv[1], "trap")) {
        printf("int 3\n"); fflush(stdout);
        __asm__ volatile("int $3");
        printf("survived\n");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "icebp")) {
        printf("int1\n"); fflush(stdout);
        __asm__ volatile(".byte 0xf1");
        printf("survived\n");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "gp")) {
        printf("int 0x81\n"); fflush(stdout);
        __asm__ volatile("int $0x81");
        printf("survived\n");
        return 0;
    }
    /* write, with the upper halves of the registers ignored */
    printf("write -> %016llx\n", (unsigned long long)i80(4, 1, P(msg), sizeof msg - 1, 0, 0));
    fflush(stdout);
    printf(" <- %016llx\n", (unsigned long long)i80(0xdead000000000004ULL, 0xbeef00000001ULL,
                                                       P(msg), 0x100000000ULL | 6, 0, 0));
    printf("getpid same %d\n", (int)i80(20, 0, 0, 0, 0, 0) == getpid());
    printf("gettid same %d\n", (int)i80(224, 0, 0, 0, 0, 0) == getpid());
    printf("getppid same %d\n", (int)i80(64, 0, 0, 0, 0, 0) == getppid());
    printf("getuid32 same %d\n", (int)i80(199, 0, 0, 0, 0, 0) == (int)getuid());
    printf("getuid16 same %d\n", (int)i80(24, 0, 0, 0, 0, 0) == (int)(getuid() > 0xffff ? 65534 : getuid()));
    printf("bad fd %016llx\n", (unsigned long long)i80(4, 99, P(msg), 3, 0, 0));
    printf("bad pointer %016llx\n", (unsigned long long)i80(4, 1, 0x10, 3, 0, 0));
    printf("enosys %016llx\n", (unsigned long long)i80(500, 0, 0, 0, 0, 0));
    printf("enosys big %016llx\n", (unsigned long long)i80(0x7fffffff, 0, 0, 0, 0, 0));
    printf("nr -1 %016llx\n", (unsigned long long)i80(0xffffffff, 0, 0, 0, 0, 0));
    uint64_t b0 = i80(45, 0, 0, 0, 0, 0);
    printf("brk same %d below 4G %d\n", b0 == (uint64_t)sbrk(0), b0 >> 32 == 0);
    /* time32, timeval32, timespec32 */
    int32_t t32 = 0;
    static int32_t tv32[2], ts32[2];
    static int64_t ts64[2];
    uint64_t r = i80(13, P(&tv32[0]), 0, 0, 0, 0);
    t32 = tv32[0];
    printf("time %d stored %d\n", (int64_t)r - time(NULL) <= 0 && time(NULL) - (int64_t)r < 5, (int32_t)r == t32);
    r = i80(78, P(tv32), 0, 0, 0, 0);
    printf("gettimeofday %lld %d usec %d\n", (long long)r, time(NULL) - tv32[0] < 5, tv32[1] >= 0 && tv32[1] < 1000000);
    r = i80(265, CLOCK_MONOTONIC, P(ts32), 0, 0, 0);
    struct timespec now; clock_gettime(CLOCK_MONOTONIC, &now);
    printf("clock_gettime %lld %d\n", (long long)r, now.tv_sec - ts32[0] < 5 && ts32[1] < 1000000000);
    r = i80(403, CLOCK_MONOTONIC, P(ts64), 0, 0, 0);
    printf("clock_gettime64 %lld %d\n", (long long)r, now.tv_sec - ts64[0] < 5);
    /* stat64 of / against stat() */
    struct stat st; stat("/", &st);
    memset(buf, 0x5a, 96);
    r = i80(195, P(path), P(buf), 0, 0, 0);
    uint32_t mode, ino32; uint64_t ino64; int64_t size;
    memcpy(&ino32, buf + 12, 4); memcpy(&mode, buf + 16, 4);
    memcpy(&size, buf + 44, 8); memcpy(&ino64, buf + 88, 8);
    printf("stat64 %lld mode %o ino %d %d size %d pad %02x%02x\n", (long long)r, mode,
           ino32 == (uint32_t)st.st_ino, ino64 == st.st_ino, size == st.st_size, buf[8], buf[40]);
    int fd = open("/", O_RDONLY | O_DIRECTORY);
    r = i80(197, fd, P(buf), 0, 0, 0);
    memcpy(&ino64, buf + 88, 8);
    printf("fstat64 %lld ino %d\n", (long long)r, ino64 == st.st_ino);
    close(fd);
    /* _llseek on a pipe (ESPIPE) and on stdin is not portable: use /proc/self/exe */
    fd = open("/proc/self/exe", O_RDONLY);
    static int64_t off;
    r = i80(140, fd, 0, 100, P(&off), SEEK_SET);
    printf("_llseek %lld off %lld pos %lld\n", (long long)r, (long long)off, (long long)lseek(fd, 0, SEEK_CUR));
    r = i80(19, fd, (uint32_t)-10, SEEK_CUR, 0, 0);
    printf("lseek back %lld\n", (long long)r);
    close(fd);
    /* writev with compat iovecs */
    fflush(stdout);
    iov32[0] = (uint32_t)P(part1); iov32[1] = sizeof part1 - 1;
    iov32[2] = (uint32_t)P(part2); iov32[3] = sizeof part2 - 1;
    r = i80(146, 1, P(iov32), 2, 0, 0);
    printf("writev %lld\n", (long long)r);
    /* uname: same layout */
    r = i80(122, P(&uts), 0, 0, 0, 0);
    struct utsname u2; uname(&u2);
    printf("uname %lld %s %d\n", (long long)r, uts.sysname, !strcmp(uts.release, u2.release));
    /* mmap2 and old mmap land below 4 GiB and are usable; munmap */
    r = i80_6(192, 0, 8192, PROT_READ | PROT_WRITE, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
    printf("mmap2 below 4G %d aligned %d\n", r < 0x100000000ULL, (r & 4095) == 0);
    if (r < 0x100000000ULL) {
        ((volatile char *)(uintptr_t)r)[8191] = 7;
        printf("munmap %lld\n", (long long)i80(91, r, 8192, 0, 0, 0));
    }
    mmap_args[0] = 0; mmap_args[1] = 4096; mmap_args[2] = PROT_READ | PROT_WRITE;
    mmap_args[3] = 0x22; mmap_args[4] = (uint32_t)-1; mmap_args[5] = 0;
    r = i80(90, P(mmap_args), 0, 0, 0, 0);
    printf("old mmap below 4G %d\n", r < 0x100000000ULL);
    /* rt_sigaction with the compat struct: set SIG_IGN, read it back */
    static uint32_t act[5], old[5];
    act[0] = 1; act[1] = 0x04000000; act[2] = 0; act[3] = 0x200; act[4] = 0;
    r = i80(174, SIGUSR1, P(act), 0, 8, 0);
    memset(old, 0xff, sizeof old);
    uint64_t r2 = i80(174, SIGUSR1, 0, P(old), 8, 0);
    printf("rt_sigaction %lld %lld: %x %x %x %x %x\n", (long long)r, (long long)r2,
           old[0], old[1], old[2], old[3], old[4]);
    printf("rt_sigaction bad size %016llx\n", (unsigned long long)i80(174, SIGUSR1, 0, P(old), 4, 0));
    sockets_and_clone();
    preserve();
    fflush(stdout);
    __asm__ volatile("int $0x80" : : "a"(1), "b"(0x1234502a));   /* exit(0x2a) */
    return 1;
}
