/* Resource limits (issue 24): what a program sees at RLIMIT_NPROC,
 * RLIMIT_NOFILE, RLIMIT_STACK, RLIMIT_AS and RLIMIT_DATA.  Compared with its
 * native run under the same limit by tests/test_limits.py.
 *
 *   limits fork MAX        fork until fork fails (at most MAX children, each
 *                          waiting on a pipe), report the error, reap them all
 *   limits files [ACTION]  open /dev/null until EMFILE: how many, and whether
 *                          each open gave the lowest free number; then, with
 *                          every descriptor taken, ACTION (fork, exec, segv,
 *                          kill, abort); then close them and open again
 *   limits recurse MIB     recurse MIB MiB deep on the stack and return
 *   limits mmap MIB...     mmap MIB MiB anonymous for each argument (kept)
 *   limits brk MIB...      move the break up by MIB MiB for each argument
 *   limits rlimits         getrlimit of the limits above, as the guest sees them
 *   limits fdcheck         the descriptors open (what files exec leaves)
 *   limits as MIB CMD...   set the soft RLIMIT_AS to MIB MiB, then CMD
 *   limits data MIB CMD... the same with RLIMIT_DATA
 *   limits child CMD...    run CMD in a forked child, report how it ended
 *   limits exec CMD...     execve this program with CMD
 *   limits stack           how much /proc/self/maps shows of the stack,
 *                          before and after using 2 MiB of it
 *   limits scm             receive 4 descriptors (SCM_RIGHTS) with 2 numbers
 *                          left below RLIMIT_NOFILE: what recvmsg gives
 *
 * Output depends only on the limits, never on how many processes or
 * descriptors exist already (counts that could differ are not printed).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err_name(int e)
{
    switch (e) {
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EINVAL: return "EINVAL";
    default: return strerror(e);
    }
}

static int fork_storm(int max)
{
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        return 1;
    }
    int children = 0, failed = 0;
    for (int i = 0; i < max; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            failed = errno;
            break;
        }
        if (pid == 0) {                 /* wait for the parent to let go */
            char c;
            close(p[1]);
            while (read(p[0], &c, 1) < 0 && errno == EINTR)
                ;
            _exit(7);
        }
        children++;
    }
    printf("fork: %s\n", failed ? err_name(failed) : "never failed");
    printf("forked some: %s\n", children > 0 ? "yes" : "no");
    fflush(stdout);
    close(p[1]);
    int reaped = 0, bad = 0, st;
    while (wait(&st) > 0) {
        reaped++;
        bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    }
    printf("reaped all: %s, bad statuses: %d\n", reaped == children ? "yes" : "no", bad);
    /* the program carries on: one more child now that there is room */
    pid_t pid = fork();
    if (pid == 0)
        _exit(3);
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 3) {
        printf("fork after the storm failed\n");
        return 1;
    }
    printf("fork after the storm: ok\n");
    return 0;
}

/* What a program does with every descriptor taken (files ACTION): */
static void while_full(const char *action, const char *self)
{
    if (!strcmp(action, "fork")) {
        pid_t pid = fork();
        if (pid == 0) {
            printf("child runs\n");
            _exit(5);
        }
        int st;
        waitpid(pid, &st, 0);
        printf("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    } else if (!strcmp(action, "exec")) {
        execl(self, self, "fdcheck", (char *)NULL);
        printf("exec: %s\n", err_name(errno));
    } else if (!strcmp(action, "segv")) {
        *(volatile int *)16 = 1;
    } else if (!strcmp(action, "kill")) {
        kill(getpid(), SIGTERM);
    } else if (!strcmp(action, "abort")) {
        abort();
    }
}

static int files(const char *action, const char *self)
{
    int n = 0, first = -1, last = -1, e = 0, lowest = 1, low = 0;
    for (;;) {
        while (fcntl(low, F_GETFD) >= 0)   /* the lowest free number (none are closed meanwhile) */
            low++;
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            e = errno;
            break;
        }
        lowest &= fd == low;
        if (first < 0)
            first = fd;
        last = fd;
        n++;
        if (n > 1 << 20)
            break;
    }
    printf("opened %d (fd %d to %d), then %s\n", n, first, last, err_name(e));
    printf("each the lowest free number: %s\n", lowest ? "yes" : "no");
    int d = dup(0);
    printf("dup: %s\n", d < 0 ? err_name(errno) : "ok");
    int p[2];
    printf("pipe: %s\n", pipe(p) < 0 ? err_name(errno) : "ok");
    if (action)
        while_full(action, self);
    if (first >= 0)
        for (int fd = first; fd <= last; fd++)
            close(fd);
    int fd = open("/dev/null", O_RDONLY);
    printf("after closing them: open gives %d\n", fd);
    return 0;
}

/* After an exec with every descriptor taken: the descriptors exec kept */
static int fdcheck(void)
{
    int n = 0, first = -1, last = -1, cloexec = 0;
    for (int fd = 3; fd < 1 << 16; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0)
            continue;
        if (first < 0)
            first = fd;
        last = fd;
        n++;
        cloexec += (flags & FD_CLOEXEC) != 0;
    }
    printf("after exec: %d open (fd %d to %d), %d close-on-exec\n", n, first, last, cloexec);
    int fd = open("/dev/null", O_RDONLY);
    printf("open after exec: %s\n", fd < 0 ? err_name(errno) : "ok");
    return 0;
}

static volatile char sink;

static int recurse(long bytes)
{
    volatile char frame[64 * 1024];
    frame[0] = (char)bytes;
    frame[sizeof frame - 1] = 1;
    if (bytes > (long)sizeof frame)
        return recurse(bytes - (long)sizeof frame) + frame[sizeof frame - 1];
    sink = frame[0];
    return 1;
}

static int do_mmap(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        size_t size = (size_t)strtoull(argv[i], NULL, 0) << 20;
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("mmap %s MiB: %s\n", argv[i], err_name(errno));
        } else {
            ((volatile char *)p)[0] = 1;
            ((volatile char *)p)[size - 1] = 1;
            printf("mmap %s MiB: ok\n", argv[i]);
        }
    }
    return 0;
}

static int do_brk(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        long inc = (long)(strtoull(argv[i], NULL, 0) << 20);
        void *old = sbrk(0);
        void *p = sbrk(inc);
        if (p == (void *)-1) {
            printf("sbrk %s MiB: %s, break %s\n", argv[i], err_name(errno),
                   sbrk(0) == old ? "unchanged" : "moved");
        } else {
            if (inc > 0)
                ((volatile char *)sbrk(0))[-1] = 1;
            printf("sbrk %s MiB: ok\n", argv[i]);
        }
    }
    return 0;
}

static void show(const char *name, int which)
{
    struct rlimit r;
    getrlimit(which, &r);
    printf("%s: ", name);
    if (r.rlim_cur == RLIM_INFINITY)
        printf("unlimited");
    else
        printf("%llu", (unsigned long long)r.rlim_cur);
    if (r.rlim_max == RLIM_INFINITY)
        printf(" / unlimited\n");
    else
        printf(" / %llu\n", (unsigned long long)r.rlim_max);
}

/* The size of the [stack] line of /proc/self/maps, in KiB (-1: none) */
static long stack_kib(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    long kib = -1;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            kib = (long)((hi - lo) >> 10);
    }
    if (f)
        fclose(f);
    return kib;
}

static int stack_view(void)
{
    long before = stack_kib();
    printf("stack at start: %s\n", before < 0 ? "missing" : before <= 1024 ? "at most 1 MiB" : "more than 1 MiB");
    recurse(2L << 20);
    long after = stack_kib();
    printf("stack after 2 MiB deep: %s\n", after >= 2048 && after <= 4096 ? "2 to 4 MiB" : "other");
    return 0;
}

static int scm(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        return 1;
    }
    int first = -1, last = -1;
    for (;;) {                          /* take every number ... */
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0)
            break;
        if (first < 0)
            first = fd;
        last = fd;
    }
    if (last - first < 2) {
        printf("scm: too few descriptors\n");
        return 1;
    }
    close(last);                        /* ... but two */
    close(last - 1);
    int pass[4] = {0, 1, 2, 0};
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof pass)]; } u;
    memset(&u, 0, sizeof u);
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = u.buf;
    m.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof pass);
    memcpy(CMSG_DATA(c), pass, sizeof pass);
    if (sendmsg(sv[0], &m, 0) != 1) {
        perror("sendmsg");
        return 1;
    }
    memset(&u, 0, sizeof u);
    m.msg_controllen = sizeof u.buf;
    m.msg_flags = 0;
    ssize_t n = recvmsg(sv[1], &m, 0);
    printf("recvmsg: %zd, truncated: %s, control length %zu of %zu\n", n,
           m.msg_flags & MSG_CTRUNC ? "yes" : "no", (size_t)m.msg_controllen, sizeof u.buf);
    for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        int got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        printf("SCM_RIGHTS with %d descriptors:", got);
        for (int i = 0; i < got; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            printf(" %s", fd == last - 1 ? "first free" : fd == last ? "second free" : "other");
        }
        printf("\n");
    }
    int fd = open("/dev/null", O_RDONLY);
    printf("open after: %s\n", fd < 0 ? err_name(errno) : "ok");
    return 0;
}

static int run(int argc, char **argv, char *self);

/* limits as|data MIB CMD...: the soft limit set (the hard one kept), then CMD */
static int with_limit(int which, int argc, char **argv, char *self)
{
    struct rlimit r;
    getrlimit(which, &r);
    r.rlim_cur = (rlim_t)strtoull(argv[0], NULL, 0) << 20;
    if (setrlimit(which, &r) != 0) {
        printf("setrlimit: %s\n", err_name(errno));
        return 1;
    }
    return run(argc - 1, argv + 1, self);
}

static int child(int argc, char **argv, char *self)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(run(argc, argv, self));
    int st;
    waitpid(pid, &st, 0);
    printf("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

static int run(int argc, char **argv, char *self)
{
    if (argc < 1) {
        fprintf(stderr, "limits: bad arguments\n");
        return 2;
    }
    if (!strcmp(argv[0], "as") && argc >= 3)
        return with_limit(RLIMIT_AS, argc - 1, argv + 1, self);
    if (!strcmp(argv[0], "data") && argc >= 3)
        return with_limit(RLIMIT_DATA, argc - 1, argv + 1, self);
    if (!strcmp(argv[0], "child") && argc >= 2)
        return child(argc - 1, argv + 1, self);
    if (!strcmp(argv[0], "exec") && argc >= 2) {
        argv[0] = self;
        execv(self, argv);
        printf("exec: %s\n", err_name(errno));
        return 1;
    }
    if (!strcmp(argv[0], "stack"))
        return stack_view();
    if (!strcmp(argv[0], "scm"))
        return scm();
    argv--;                 /* the commands below index from argv[1] */
    argc++;
    if (!strcmp(argv[1], "fork") && argc == 3)
        return fork_storm(atoi(argv[2]));
    if (!strcmp(argv[1], "files"))
        return files(argc > 2 ? argv[2] : NULL, self);
    if (!strcmp(argv[1], "recurse") && argc == 3) {
        int r = recurse(atol(argv[2]) << 20);
        printf("recursed %s MiB and returned (%d)\n", argv[2], r > 0);
        return 0;
    }
    if (!strcmp(argv[1], "mmap"))
        return do_mmap(argc - 2, argv + 2);
    if (!strcmp(argv[1], "brk"))
        return do_brk(argc - 2, argv + 2);
    if (!strcmp(argv[1], "fdcheck"))
        return fdcheck();
    if (!strcmp(argv[1], "rlimits")) {
        show("nofile", RLIMIT_NOFILE);
        show("stack", RLIMIT_STACK);
        show("as", RLIMIT_AS);
        show("data", RLIMIT_DATA);
        show("nproc", RLIMIT_NPROC);
        return 0;
    }
    fprintf(stderr, "limits: bad arguments\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: limits fork MAX | files [ACTION] | recurse MIB | mmap MIB... | brk MIB... | rlimits"
                " | as|data MIB CMD... | child CMD... | exec CMD... | stack | scm\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run(argc - 1, argv + 1, argv[0]);
}
