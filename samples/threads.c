/* POSIX threads, as real programs use them.  Every mode prints results that
 * do not depend on scheduling, so a run under bttool is compared byte for
 * byte with the native run.
 *
 *   threads            4 workers: mutex, condition variable (a bounded
 *                      queue), atomics, thread-local storage, join values
 *   threads compute N [WORK]
 *                      N threads share WORK units of arithmetic (the
 *                      parallel speed-up benchmark); prints the checksum
 *   threads exitgroup  a thread calls exit(7) while main waits in join
 *   threads mainexit   main calls pthread_exit; the last worker ends it (0)
 *   threads signals    pthread_kill to one thread, a handler on it, sigwait
 *                      in another, a process-directed signal to a mask
 *   threads detach     100 short-lived detached threads, then 100 joined
 *   threads robust     a thread dies holding a robust mutex: the next
 *                      locker gets EOWNERDEAD (the kernel's robust list)
 *   threads pingpong   two threads hand a counter back and forth 2000 times
 *                      through memory alone, spinning (no system call): it
 *                      ends only if both run translated code at once
 *   threads segv       a thread dereferences NULL: the process dies of SIGSEGV
 *   threads fork       a thread forks (the child has that one thread) and
 *                      waits for the child; another keeps running meanwhile
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 4
#define ITEMS 20000
#define QSIZE 16

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static long queue[QSIZE];
static int q_head, q_count, q_done;
static long locked_total;
static atomic_long atomic_total;
static __thread long mine = 1000;

static void put(long v) {
    pthread_mutex_lock(&lock);
    while (q_count == QSIZE)
        pthread_cond_wait(&not_full, &lock);
    queue[(q_head + q_count++) % QSIZE] = v;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&lock);
}

static int take(long *v) {
    pthread_mutex_lock(&lock);
    while (q_count == 0 && !q_done)
        pthread_cond_wait(&not_empty, &lock);
    if (q_count == 0) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    *v = queue[q_head];
    q_head = (q_head + 1) % QSIZE;
    q_count--;
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&lock);
    return 1;
}

static void *consumer(void *arg) {
    long id = (long)arg, v, sum = 0, n = 0;
    mine += id;                     /* thread-local: each its own */
    while (take(&v)) {
        sum += v;
        n++;
        atomic_fetch_add(&atomic_total, v);
        pthread_mutex_lock(&lock);
        locked_total += v;
        pthread_mutex_unlock(&lock);
    }
    return (void *)(mine * 1000000 + (n > 0));
}

static int basic(void) {
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        if (pthread_create(&t[i], NULL, consumer, (void *)i) != 0) {
            perror("pthread_create");
            return 1;
        }
    long expect = 0;
    for (long v = 1; v <= ITEMS; v++) {
        put(v * 3);
        expect += v * 3;
    }
    pthread_mutex_lock(&lock);
    q_done = 1;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&lock);
    long joined = 0;
    for (int i = 0; i < WORKERS; i++) {
        void *r;
        pthread_join(t[i], &r);
        joined += (long)r / 1000000;
    }
    printf("expected %ld locked %ld atomic %ld\n", expect, locked_total, (long)atomic_total);
    printf("thread-local main %ld, workers' sum %ld\n", mine, joined);
    return locked_total == expect && atomic_total == expect ? 0 : 1;
}

struct slice { uint64_t from, to, sum; };

static void *crunch(void *arg) {
    struct slice *s = arg;
    uint64_t acc = 0;
    for (uint64_t i = s->from; i < s->to; i++) {
        uint64_t x = i * 0x9E3779B97F4A7C15ull;
        for (int k = 0; k < 64; k++)
            x = (x ^ (x >> 29)) * 0xBF58476D1CE4E5B9ull + k;
        acc += x >> 7;
    }
    s->sum = acc;
    return NULL;
}

static int compute(int n, uint64_t work) {
    pthread_t t[64];
    struct slice s[64];
    if (n < 1 || n > 64)
        return 2;
    for (int i = 0; i < n; i++) {
        s[i].from = work * i / n;
        s[i].to = work * (i + 1) / n;
        pthread_create(&t[i], NULL, crunch, &s[i]);
    }
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        total += s[i].sum;
    }
    printf("checksum %016llx\n", (unsigned long long)total);
    return 0;
}

static void *exit_seven(void *arg) {
    usleep(20000);
    printf("thread calls exit(7)\n");
    fflush(stdout);
    exit(7);
}

static void *sleeper(void *arg) {
    pause();
    return NULL;
}

static int exitgroup(void) {
    pthread_t a, b;
    pthread_create(&b, NULL, sleeper, NULL);
    pthread_create(&a, NULL, exit_seven, NULL);
    pthread_join(a, NULL);
    printf("not reached\n");
    return 1;
}

static atomic_int first_done, main_printed;

static void *last_worker(void *arg) {
    while (!atomic_load(&main_printed))    /* (not a sleep: a slow main, such */
        usleep(1000);                      /* as one translating, printed later) */
    usleep(50000);
    if (arg)                        /* the second prints after the first */
        while (!atomic_load(&first_done))
            usleep(1000);
    printf("worker %ld done after main left\n", (long)arg);
    fflush(stdout);
    atomic_store(&first_done, 1);
    return NULL;
}

static int mainexit(void) {
    pthread_t t;
    for (long i = 0; i < 2; i++) {
        pthread_create(&t, NULL, last_worker, (void *)i);
        pthread_detach(t);
    }
    printf("main leaves\n");
    fflush(stdout);
    atomic_store(&main_printed, 1);
    pthread_exit(NULL);
}

static volatile sig_atomic_t usr1_on_target;
static pid_t target_tid;

static void on_usr1(int sig) {
    usr1_on_target = syscall(SYS_gettid) == target_tid ? 1 : 2;
}

static void *target(void *arg) {
    target_tid = syscall(SYS_gettid);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    while (!usr1_on_target)
        ;               /* spins in translated code until the signal arrives */
    return NULL;
}

static void *waiter(void *arg) {
    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigwait(&set, &sig);
    return (void *)(long)sig;
}

static int signals(void) {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, NULL);   /* inherited by the threads */
    signal(SIGUSR1, on_usr1);
    pthread_t t, w;
    pthread_create(&t, NULL, target, NULL);
    pthread_create(&w, NULL, waiter, NULL);
    while (!target_tid)
        usleep(1000);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    printf("SIGUSR1 handled on the target thread: %s\n", usr1_on_target == 1 ? "yes" : "no");
    kill(getpid(), SIGUSR2);                    /* process-directed: only the waiter takes it */
    void *r;
    pthread_join(w, &r);
    printf("sigwait in a thread got signal %ld\n", (long)r);
    return 0;
}

static atomic_int detached_done;

static void *tiny(void *arg) {
    atomic_fetch_add(&detached_done, 1);
    return arg;
}

static int detach(void) {
    pthread_t t;
    for (long i = 0; i < 100; i++) {
        pthread_create(&t, NULL, tiny, (void *)i);
        pthread_detach(t);
    }
    long sum = 0;
    for (long i = 0; i < 100; i++) {
        void *r;
        pthread_create(&t, NULL, tiny, (void *)i);
        pthread_join(t, &r);
        sum += (long)r;
    }
    while (atomic_load(&detached_done) < 200)
        usleep(1000);
    printf("joined sum %ld, all %d ran\n", sum, (int)atomic_load(&detached_done));
    return 0;
}

static atomic_int ball;

static void *ponger(void *arg) {
    for (int i = 1; i < 4000; i += 2) {
        while (atomic_load(&ball) != i)
            ;
        atomic_store(&ball, i + 1);
    }
    return NULL;
}

static int pingpong(void) {
    pthread_t t;
    pthread_create(&t, NULL, ponger, NULL);
    for (int i = 0; i < 4000; i += 2) {
        while (atomic_load(&ball) != i)
            ;
        atomic_store(&ball, i + 1);
    }
    pthread_join(t, NULL);
    printf("ball at %d\n", (int)atomic_load(&ball));
    return 0;
}

static void *bad_pointer(void *arg) {
    return (void *)(long)*(volatile int *)arg;
}

static int segv(void) {
    pthread_t t, s;
    pthread_create(&s, NULL, sleeper, NULL);
    pthread_create(&t, NULL, bad_pointer, NULL);
    pthread_join(t, NULL);
    printf("not reached\n");
    return 1;
}

static pthread_mutex_t robust_lock;

static void *die_holding(void *arg) {
    pthread_mutex_lock(&robust_lock);
    return NULL;                    /* ends without unlocking */
}

static int robust(void) {
    pthread_mutexattr_t a;
    pthread_t t;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust_lock, &a);
    pthread_create(&t, NULL, die_holding, NULL);
    pthread_join(t, NULL);
    int r = pthread_mutex_lock(&robust_lock);
    printf("lock after the owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    if (r == EOWNERDEAD)
        pthread_mutex_consistent(&robust_lock);
    pthread_mutex_unlock(&robust_lock);
    printf("then: %s\n", strerror(pthread_mutex_lock(&robust_lock)));
    return 0;
}

static atomic_int keep_spinning = 1;
static atomic_long spins;

static void *spinner(void *arg) {
    while (atomic_load(&keep_spinning))
        atomic_fetch_add(&spins, 1);
    return (void *)(long)(atomic_load(&spins) > 0);
}

static void *forker(void *arg) {
    while (atomic_load(&spins) == 0)
        usleep(1000);   /* fork while the other thread runs */
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t t;    /* the child has one thread, and can start more */
        void *r;
        pthread_create(&t, NULL, tiny, (void *)5L);
        pthread_join(t, &r);
        printf("child: thread returned %ld\n", (long)r);
        fflush(stdout);
        syscall(SYS_exit, 3);   /* its last thread's exit ends the process */
    }
    int status;
    waitpid(pid, &status, 0);
    return (void *)(long)WEXITSTATUS(status);
}

static int forkthread(void) {
    pthread_t s, f;
    void *r, *spun;
    pthread_create(&s, NULL, spinner, NULL);
    pthread_create(&f, NULL, forker, NULL);
    pthread_join(f, &r);
    atomic_store(&keep_spinning, 0);
    pthread_join(s, &spun);
    printf("parent: child status %ld, spinner ran %ld\n", (long)r, (long)spun);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return basic();
    if (!strcmp(argv[1], "compute"))
        return compute(argc > 2 ? atoi(argv[2]) : 2,
                       argc > 3 ? strtoull(argv[3], NULL, 0) : 2000000);
    if (!strcmp(argv[1], "exitgroup"))
        return exitgroup();
    if (!strcmp(argv[1], "mainexit"))
        return mainexit();
    if (!strcmp(argv[1], "signals"))
        return signals();
    if (!strcmp(argv[1], "detach"))
        return detach();
    if (!strcmp(argv[1], "pingpong"))
        return pingpong();
    if (!strcmp(argv[1], "segv"))
        return segv();
    if (!strcmp(argv[1], "robust"))
        return robust();
    if (!strcmp(argv[1], "fork"))
        return forkthread();
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
