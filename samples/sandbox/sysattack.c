/* sysattack: system calls given bad pointers, commands and descriptors, as
 * an attacker (or a buggy program) would give them to a translator.  Each
 * case runs in a child of its own and prints what the kernel answered; a
 * case that kills its process shows as a signal.  Natively every answer is
 * an error code or a plain success: under bttool it must be the same
 * answer, never a crash of the translator, a read or write of its memory,
 * or a broken translation cache.
 *
 *   sysattack [CASE]   (no CASE: every case, each in a child; a CASE runs in
 *                       this process) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <time.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *ro;        /* a read-only page */
static char *rw;        /* a writable page */
static char *gone;      /* an unmapped page */

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: ok\n", what);
}

#define SYS(what, ...) show(what, syscall(__VA_ARGS__))

static void crashes(void) {
    SYS("readlink exe ro", SYS_readlink, "/proc/self/exe", ro, 64);
    SYS("readlink exe unmapped", SYS_readlink, "/proc/self/exe", gone, 64);
    SYS("readlinkat exe ro", SYS_readlinkat, AT_FDCWD, "/proc/self/exe", ro, 64);
    SYS("readlink NULL path", SYS_readlink, NULL, rw, 64);
    SYS("readlink negative size", SYS_readlink, "/proc/self/exe", rw, -1L);
    SYS("prctl PR_GET_NAME ro", SYS_prctl, PR_GET_NAME, ro, 0, 0, 0);
    SYS("prctl PR_GET_NAME unmapped", SYS_prctl, PR_GET_NAME, gone, 0, 0, 0);
    SYS("prctl PR_SET_NAME NULL", SYS_prctl, PR_SET_NAME, NULL, 0, 0, 0);
    SYS("prctl PR_SET_NAME", SYS_prctl, PR_SET_NAME, "attacker", 0, 0, 0);
    memset(rw, 0, 32);
    SYS("prctl PR_GET_NAME", SYS_prctl, PR_GET_NAME, rw, 0, 0, 0);
    printf("  name %s\n", rw);
    SYS("prctl PR_SET_SECCOMP", SYS_prctl, PR_SET_SECCOMP, 2, rw, 0, 0);
    SYS("arch_prctl ARCH_GET_FS ro", SYS_arch_prctl, 0x1003, ro);
    SYS("arch_prctl ARCH_GET_FS unmapped", SYS_arch_prctl, 0x1003, gone);
    SYS("arch_prctl ARCH_GET_GS NULL", SYS_arch_prctl, 0x1004, NULL);
    SYS("rt_sigaction oldact ro", SYS_rt_sigaction, SIGUSR1, NULL, ro, 8);
    SYS("rt_sigaction act unmapped", SYS_rt_sigaction, SIGUSR1, gone, NULL, 8);
    SYS("rt_sigaction sigsetsize 4", SYS_rt_sigaction, SIGUSR1, NULL, rw, 4);
    SYS("rt_sigprocmask oldset ro", SYS_rt_sigprocmask, SIG_BLOCK, NULL, ro, 8);
    SYS("rt_sigprocmask set unmapped", SYS_rt_sigprocmask, SIG_BLOCK, gone, NULL, 8);
    SYS("rt_sigprocmask bad how", SYS_rt_sigprocmask, 7, rw, NULL, 8);
    SYS("rt_sigprocmask sigsetsize 16", SYS_rt_sigprocmask, SIG_BLOCK, NULL, rw, 16);
    SYS("sigaltstack old ro", SYS_sigaltstack, NULL, ro);
    SYS("sigaltstack new unmapped", SYS_sigaltstack, gone, NULL);
    SYS("rt_sigpending ro", SYS_rt_sigpending, ro, 8);
    SYS("rt_sigpending unmapped", SYS_rt_sigpending, gone, 8);
    SYS("rt_sigpending sigsetsize 16", SYS_rt_sigpending, rw, 16);
    SYS("execve NULL path", SYS_execve, NULL, NULL, NULL);
    SYS("execve unmapped argv", SYS_execve, "/bin/true", gone, NULL);
    SYS("madvise 0 DONTNEED", SYS_madvise, 0, 4096, MADV_DONTNEED);
    SYS("madvise 0 1MiB DONTNEED", SYS_madvise, 0, 1 << 20, MADV_DONTNEED);
    /* far above the guest window, and below where ASLR puts stacks and the
       vdso (at 0x7ff000000000 a native run hit [vvar], EINVAL, 1 run in 300) */
    SYS("madvise huge DONTNEED", SYS_madvise, 0x400000000000L, 1L << 30, MADV_DONTNEED);
    SYS("madvise wrapping", SYS_madvise, -4096L, 8192, MADV_DONTNEED);
    SYS("madvise bad advice", SYS_madvise, rw, 4096, 77);
    SYS("madvise rw WILLNEED", SYS_madvise, rw, 4096, MADV_WILLNEED);
    SYS("msync 0", SYS_msync, 0, 4096, MS_SYNC);
    SYS("msync rw", SYS_msync, rw, 4096, MS_SYNC);
    fflush(stdout);
    /* clone's parent-tid pointer in read-only memory: the child is made */
    long pid = syscall(SYS_clone, SIGCHLD | CLONE_PARENT_SETTID, 0, ro, 0, 0);
    if (pid == 0)
        _exit(7);
    int st = 0;
    if (pid > 0)
        waitpid(pid, &st, 0);
    printf("clone ptid ro: %s, child status %d\n", pid > 0 ? "ok" : strerrorname_np(errno),
           WEXITSTATUS(st));
}

static void pointers(void) {
    int fd = open("/dev/null", O_RDONLY);
    SYS("fcntl F_GETOWN_EX rw", SYS_fcntl, fd, 16, rw);
    SYS("fcntl F_GETOWN_EX unmapped", SYS_fcntl, fd, 16, gone);
    SYS("fcntl F_GETOWN_EX ro", SYS_fcntl, fd, 16, ro);
    SYS("fcntl F_SETOWN_EX unmapped", SYS_fcntl, fd, 15, gone);
    SYS("fcntl F_GET_RW_HINT unmapped", SYS_fcntl, fd, 1035, gone);
    SYS("fcntl F_SET_RW_HINT unmapped", SYS_fcntl, fd, 1036, gone);
    SYS("fcntl F_GETLK huge", SYS_fcntl, fd, F_GETLK, 0x8000000000000000L);
    SYS("fcntl unknown command", SYS_fcntl, fd, 4242, rw);
    SYS("fcntl unknown command bad fd", SYS_fcntl, 999, 4242, rw);
    SYS("ioctl TCGETS unmapped", SYS_ioctl, 1, 0x5401, gone);
    SYS("ioctl FIONREAD wrapping", SYS_ioctl, fd, 0x541B, -2L);
    /* pselect6: the sixth argument holds a sigset pointer and its size */
    struct timespec zero = {0, 0};
    sigset_t set;
    sigemptyset(&set);
    struct { void *p; size_t n; } sm = {&set, 8};
    SYS("pselect6 sigmask", SYS_pselect6, 0, NULL, NULL, NULL, &zero, &sm);
    sm.p = gone;
    SYS("pselect6 sigmask unmapped set", SYS_pselect6, 0, NULL, NULL, NULL, &zero, &sm);
    sm.p = (void *)0x7ff000001000L;
    SYS("pselect6 sigmask host-like set", SYS_pselect6, 0, NULL, NULL, NULL, &zero, &sm);
    sm.p = &set;
    sm.n = 16;
    SYS("pselect6 sigmask size 16", SYS_pselect6, 0, NULL, NULL, NULL, &zero, &sm);
    SYS("pselect6 sigmask struct unmapped", SYS_pselect6, 0, NULL, NULL, NULL, &zero, gone);
    SYS("pselect6 timeout unmapped", SYS_pselect6, 0, NULL, NULL, NULL, gone, NULL);
    SYS("select readfds unmapped", SYS_select, 1, gone, NULL, NULL, &zero);
    SYS("ppoll sigmask unmapped", SYS_ppoll, NULL, 0, &zero, gone, 8);
    /* futex: WAKE_OP and REQUEUE take an integer where WAIT takes a timeout */
    int word = 0, other = 0;
    SYS("futex WAKE", SYS_futex, &word, 1, 1, NULL, NULL, 0);
    SYS("futex REQUEUE val2=1", SYS_futex, &word, 3, 1, 1L, &other, 0);
    SYS("futex CMP_REQUEUE uaddr2 unmapped", SYS_futex, &word, 4, 1, 1L, gone, 0);
    SYS("futex WAIT timeout unmapped", SYS_futex, &word, 0, 0, gone, NULL, 0);
    SYS("futex WAIT value differs", SYS_futex, &word, 0, 1, &zero, NULL, 0);
    SYS("futex unmapped word", SYS_futex, gone, 0, 0, &zero, NULL, 0);
    SYS("futex unknown op", SYS_futex, &word, 99, 0, NULL, NULL, 0);
    SYS("getcpu unmapped", SYS_getcpu, gone, NULL, NULL);
    SYS("read wrapping", SYS_read, fd, -16L, 64);
    SYS("read huge count", SYS_read, fd, rw, 1L << 62);
    SYS("read bad fd and pointer", SYS_read, 999, gone, 64);
    SYS("fstat unmapped", SYS_fstat, fd, gone);
    SYS("stat path unmapped", SYS_stat, gone, rw);
    SYS("stat buf ro", SYS_stat, "/", ro);
    SYS("uname ro", SYS_uname, ro);
    SYS("getrlimit ro", SYS_getrlimit, RLIMIT_NOFILE, ro);
    SYS("clock_gettime wrapping", SYS_clock_gettime, CLOCK_MONOTONIC, -8L);
    SYS("readv iov unmapped", SYS_readv, fd, gone, 1);
    struct { void *b; size_t n; } iov = {gone, 16};
    SYS("writev base unmapped", SYS_writev, 1, &iov, 1);
}

static void fsbase(void) {
    SYS("ARCH_SET_FS kernel", SYS_arch_prctl, 0x1002, 0xffff800000000000UL);
    SYS("ARCH_SET_FS non-canonical", SYS_arch_prctl, 0x1002, 0x0000800000000000UL);
    SYS("ARCH_SET_GS top of user space", SYS_arch_prctl, 0x1001, 0x00007ffffffff000UL);
    SYS("arch_prctl unknown code", SYS_arch_prctl, 0x1999, 0);
    /* the TLS still works: errno and stdio live there */
    errno = 0;
    printf("tls intact: %d\n", errno);
}

/* descriptors the program never opened, among them bttool's own */
static int work(int n) {
    /* new code (needs translating and caching) after the descriptors went */
    volatile double x = 1;
    for (int i = 0; i < n; i++)
        x = x * 1.000001 + i % 7;
    return (int)x & 0xff;
}

static void fds(const char *how) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int lim = rl.rlim_cur > 4096 ? 4096 : (int)rl.rlim_cur;
    int bad = 0, ok = 0;
    if (strcmp(how, "close") == 0) {
        for (int fd = 3; fd < lim; fd++)
            if (syscall(SYS_close, fd) == 0)
                ok++;
            else if (errno == EBADF)
                bad++;
        printf("closed %d, EBADF %d\n", ok, bad);
    } else if (strcmp(how, "close_range") == 0) {
        SYS("close_range 3..~0", SYS_close_range, 3, ~0U, 0);
        SYS("close_range bad flags", SYS_close_range, 3, ~0U, 1);
        SYS("close_range first > last", SYS_close_range, 9, 3, 0);
    } else {
        int tmp = open("/dev/null", O_RDONLY);
        for (int fd = 3; fd < lim; fd++)
            if (fd != tmp) {
                if (syscall(strcmp(how, "dup3") == 0 ? SYS_dup3 : SYS_dup2, tmp, fd, 0) == fd)
                    ok++;
                else
                    bad++;
            }
        printf("%s onto every descriptor: %d ok, %d failed\n", how, ok, bad);
        SYS("dup3 same", SYS_dup3, tmp, tmp, 0);
        SYS("dup3 bad flags", SYS_dup3, tmp, tmp + 1, 1);
        for (int fd = 3; fd < lim; fd++)
            if (fd != tmp)
                close(fd);
    }
    printf("work %d\n", work(200000));
    int fd = open("/dev/null", O_RDONLY);
    printf("first open after: %d\n", fd);
}

static void print_numbers(const char *label, int *seen, int n, int more) {
    /* a listing's numbers, in order */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (seen[j] < seen[i]) {
                int t = seen[i]; seen[i] = seen[j]; seen[j] = t;
            }
    printf("%s:", label);
    for (int i = 0; i < n; i++)
        printf(" %d", seen[i]);
    printf("%s\n", more ? " ..." : "");
}

static void listing(const char *dir, const char *label) {
    /* the names a directory listing gives, in order of number */
    DIR *d = opendir(dir);
    if (!d) {
        printf("%s: %s\n", label, strerrorname_np(errno));
        return;
    }
    int seen[64], n = 0, more = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            if (n < 64)
                seen[n++] = atoi(e->d_name);
            else
                more++;
        }
    closedir(d);
    print_numbers(label, seen, n, more);
}

struct old_dirent {             /* the old getdents's record */
    unsigned long d_ino, d_off;
    unsigned short d_reclen;
    char d_name[];
};

static void old_listing(const char *dir, const char *label) {
    /* the same listing through the old getdents system call */
    int fd = open(dir, O_RDONLY | O_DIRECTORY), seen[64], n = 0;
    char buf[4096];
    long got;
    while ((got = syscall(SYS_getdents, fd, buf, sizeof buf)) > 0)
        for (long off = 0; off < got; off += ((struct old_dirent *)(buf + off))->d_reclen) {
            struct old_dirent *e = (struct old_dirent *)(buf + off);
            if (e->d_name[0] != '.' && n < 64)
                seen[n++] = atoi(e->d_name);
        }
    close(fd);
    print_numbers(label, seen, n, 0);
}

static int opens_relative_to(int dirfd, int lim) {
    /* descriptors' entries opened by number, relative to dirfd */
    char name[16];
    int opens = 0;
    for (int fd = 3; fd < lim; fd++) {
        snprintf(name, sizeof name, "%d", fd);
        int f = openat(dirfd, name, O_RDONLY);
        if (f >= 0) {
            opens++;
            close(f);
        }
    }
    return opens;
}

static void procfd_relative(int lim) {
    /* the same entries reached relative to a /proc directory: a dirfd,
     * the working directory, and /proc/self/mem opened as "mem" */
    old_listing("/proc/self/fd", "getdents /proc/self/fd");
    int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    printf("openat(/proc/self/fd, N) past 2: %d\n", opens_relative_to(dfd, lim));
    int here = open(".", O_RDONLY | O_DIRECTORY);
    if (chdir("/proc/self/fd") == 0) {
        printf("openat(AT_FDCWD in /proc/self/fd, N) past 2: %d\n", opens_relative_to(AT_FDCWD, lim));
        fchdir(here);
    }
    close(here);
    close(dfd);
    static char marker[] = "guest memory";
    char got[16] = {0};
    int self = open("/proc/self", O_RDONLY | O_DIRECTORY);
    int mem = openat(self, "mem", O_RDONLY);
    long r = mem >= 0 ? pread(mem, got, 12, (off_t)(uintptr_t)marker) : -1;
    printf("openat(/proc/self, \"mem\") reads its own memory: %s\n",
           r == 12 && !memcmp(got, marker, 12) ? "yes" : "no");
    if (mem >= 0)
        close(mem);
    close(self);
}

static void procfd(void) {
    /* /proc/self/fd and fdinfo list the program's descriptors and no
     * others; the entries of descriptors it does not have do not exist */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int lim = rl.rlim_cur > 4096 ? 4096 : (int)rl.rlim_cur;
    char path[64], buf[256];
    struct stat st;
    int links = 0, opens = 0, stats = 0, infos = 0;
    listing("/proc/self/fd", "/proc/self/fd");
    listing("/proc/self/fdinfo", "/proc/self/fdinfo");
    snprintf(path, sizeof path, "/proc/%d/fd", (int)getpid());
    listing(path, "/proc/PID/fd");
    for (int fd = 3; fd < lim; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        links += readlink(path, buf, sizeof buf) >= 0;
        stats += stat(path, &st) == 0;
        int f = open(path, O_RDONLY);
        if (f >= 0) {
            opens++;
            close(f);
        }
        snprintf(path, sizeof path, "/proc/thread-self/fdinfo/%d", fd);
        infos += access(path, F_OK) == 0;
    }
    printf("entries past 2: readlink %d, stat %d, open %d, fdinfo %d\n", links, stats, opens, infos);
    procfd_relative(lim);
}

static void procvm(void) {
    /* process_vm_readv/writev and ptrace aimed at the program itself:
     * its own memory and nothing else, with the kernel's answers */
    pid_t me = getpid();
    static char src[32] = "0123456789abcdefghijklmnopqrstu", dst[64];
    struct iovec l1 = {dst, 16}, r1 = {src, 16};
    long n = process_vm_readv(me, &l1, 1, &r1, 1, 0);
    printf("readv own: %ld %.16s\n", n, dst);
    struct iovec w1 = {(char *)"WRITTEN!", 8}, t1 = {rw, 8};
    n = process_vm_writev(me, &w1, 1, &t1, 1, 0);
    printf("writev own: %ld %.8s\n", n, rw);
    struct iovec bad = {gone, 16}, rob = {ro, 16}, low = {(void *)0x100000, 16};
    show("readv remote unmapped", process_vm_readv(me, &l1, 1, &bad, 1, 0));
    show("readv remote low", process_vm_readv(me, &l1, 1, &low, 1, 0));
    show("readv local unmapped", process_vm_readv(me, &bad, 1, &r1, 1, 0));
    show("writev remote read-only", process_vm_writev(me, &w1, 1, &rob, 1, 0));
    struct iovec two[2] = {{src, 8}, {gone, 8}}, ltwo = {dst, 16};
    printf("readv partial: %ld\n", (long)process_vm_readv(me, &ltwo, 1, two, 2, 0));
    show("readv flags", process_vm_readv(me, &l1, 1, &r1, 1, 1));
    show("readv 1025 iovecs", process_vm_readv(me, &l1, 1, &r1, 1025, 0));
    show("readv iovec array unmapped", process_vm_readv(me, &l1, 1, (struct iovec *)gone, 1, 0));
    show("readv no such process", process_vm_readv(0x3fffffff, &l1, 1, &r1, 1, 0));
    errno = 0;
    long v = syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, me, src, 0);
    printf("ptrace peek own: %ld %s\n", v, strerrorname_np(errno));
    SYS("ptrace attach own", SYS_ptrace, 16 /* PTRACE_ATTACH */, me, 0, 0);
}

static volatile unsigned long secret = 0x1122334455667788UL;

static void peek(const char *how, int fd) {
    /* the program's own variable, and an address where nothing is mapped */
    unsigned long v = 0;
    if (fd < 0) {
        printf("%s: open %s\n", how, strerrorname_np(errno));
        return;
    }
    long n = pread(fd, &v, 8, (off_t)(uintptr_t)&secret);
    printf("%s: %ld %#lx", how, n, v);
    n = pread(fd, &v, 8, 0x100000);
    printf(", unmapped %s\n", n < 0 ? strerrorname_np(errno) : "read");
    close(fd);
}

static void procmem(void) {
    /* /proc/self/mem reached by every path a program may take to it: each
     * is the program's own memory */
    peek("named", open("/proc/self/mem", O_RDONLY));
    unlink("procmem-link");
    if (symlink("/proc/self/mem", "procmem-link") == 0) {
        peek("symlink", open("procmem-link", O_RDONLY));
        unlink("procmem-link");
    }
    int dir = open("/proc/self", O_RDONLY | O_DIRECTORY);
    peek("dirfd", openat(dir, "mem", O_RDONLY));
    struct { unsigned long flags, mode, resolve; } how = {O_RDONLY, 0, 0};
    peek("openat2", (int)syscall(SYS_openat2, dir, "mem", &how, sizeof how));
    close(dir);
    peek("root", open("/proc/self/root/proc/self/mem", O_RDONLY));
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/../../mem", (int)getpid(), (int)getpid());
    peek("task/../..", open(path, O_RDONLY));
}

static volatile int thread_tid;
static volatile int thread_done;

static void *idle_thread(void *arg) {
    thread_tid = (int)syscall(SYS_gettid);
    while (!thread_done)
        usleep(1000);
    return arg;
}

static void threadmem(void) {
    /* a thread's /proc entries are the process's: its mem is the program's
     * own memory by every name Linux gives it, and process_vm_readv on the
     * thread's tid reads the same memory */
    pthread_t t;
    pthread_create(&t, NULL, idle_thread, NULL);
    while (!thread_tid)
        usleep(1000);
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/mem", (int)getpid(), thread_tid);
    peek("pid/task/tid", open(path, O_RDONLY));
    snprintf(path, sizeof path, "/proc/%d/mem", thread_tid);
    peek("tid", open(path, O_RDONLY));
    snprintf(path, sizeof path, "/proc/self/task/%d/mem", thread_tid);
    peek("self/task/tid", open(path, O_RDONLY));
    unsigned long v = 0;
    struct iovec l1 = {&v, 8}, r1 = {(void *)&secret, 8};
    long n = process_vm_readv(thread_tid, &l1, 1, &r1, 1, 0);
    printf("readv tid: %ld %#lx\n", n, v);
    thread_done = 1;
    pthread_join(t, NULL);
}

static void othermem(void) {
    /* another process's mem (a forked child is another bttool process):
     * Linux opens it where ptrace access is allowed; bttool, whose ptrace
     * is Yama's ptrace_scope 3, answers EACCES by every path, as Linux does
     * under that policy (through it the guest would reach the child's host
     * memory) */
    int p[2];
    if (pipe(p) != 0)
        return;
    pid_t child = fork();
    if (child == 0) {
        char b;
        read(p[0], &b, 1);
        _exit(0);
    }
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)child);
    peek("child", open(path, O_RDONLY));
    peek("child rw", open(path, O_RDWR));
    snprintf(path, sizeof path, "/proc/%d/task/%d/mem", (int)child, (int)child);
    peek("child task", open(path, O_RDONLY));
    unlink("othermem-link");
    snprintf(path, sizeof path, "/proc/%d/mem", (int)child);
    if (symlink(path, "othermem-link") == 0) {
        peek("child symlink", open("othermem-link", O_RDONLY));
        unlink("othermem-link");
    }
    snprintf(path, sizeof path, "/proc/%d", (int)child);
    int dir = open(path, O_RDONLY | O_DIRECTORY);
    peek("child dirfd", openat(dir, "mem", O_RDONLY));
    close(dir);
    peek("parent", open("/proc/self/../1/mem", O_RDONLY));
    write(p[1], "x", 1);
    int st;
    waitpid(child, &st, 0);
    printf("child: %s %d\n", WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

int main(int argc, char **argv) {
    ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, 4096);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *cases[] = {"crashes", "pointers", "fsbase", "close", "close_range", "dup2", "dup3",
                           "procfd", "procvm", "procmem", "threadmem", "othermem"};
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i]) != 0)
            continue;
        printf("== %s\n", cases[i]);
        fflush(stdout);
        pid_t pid = argc > 1 ? 0 : fork();     /* a case named: run here */
        if (pid == 0) {
            if (i == 0)
                crashes();
            else if (i == 1)
                pointers();
            else if (i == 2)
                fsbase();
            else if (i == 7)
                procfd();
            else if (i == 8)
                procvm();
            else if (i == 9)
                procmem();
            else if (i == 10)
                threadmem();
            else if (i == 11)
                othermem();
            else
                fds(cases[i]);
            fflush(stdout);
            if (argc > 1)
                return 0;
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        if (WIFSIGNALED(st))
            printf("case %s: killed by signal %d\n", cases[i], WTERMSIG(st));
        else
            printf("case %s: exit %d\n", cases[i], WEXITSTATUS(st));
    }
    return 0;
}
