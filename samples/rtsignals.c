/* Real-time signals queue, as Linux queues them: every instance sent while
 * the signal is blocked is delivered after it is unblocked, in order, each
 * with its own value, while standard signals sent twice arrive once; and a
 * burst of real-time signals from another process while the program runs
 * loses none.  Prints what its handler saw; the output must be the same
 * natively and under bttool. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX 256
static volatile int n;
static int sigs[MAX], vals[MAX];

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (n < MAX) {
        sigs[n] = sig;
        vals[n] = si->si_value.sival_int;
        n++;
    }
}

static void queue(pid_t pid, int sig, int value)
{
    union sigval v = {.sival_int = value};
    if (sigqueue(pid, sig, v) != 0)
        perror("sigqueue");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    int rt0 = SIGRTMIN, rt1 = SIGRTMIN + 1;
    sigaction(rt0, &sa, NULL);
    sigaction(rt1, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    /* sent while blocked: the real-time ones queue, SIGUSR1 merges */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, rt0);
    sigaddset(&set, rt1);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    for (int i = 1; i <= 5; i++)
        queue(getpid(), rt0, i);
    for (int i = 1; i <= 3; i++)
        queue(getpid(), rt1, 10 + i);
    queue(getpid(), SIGUSR1, 100);
    queue(getpid(), SIGUSR1, 101);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("after unblocking: %d signals:", n);
    for (int i = 0; i < n; i++)
        printf(" %s/%d", sigs[i] == SIGUSR1 ? "USR1" : sigs[i] == rt0 ? "RT0" : "RT1", vals[i]);
    printf("\n");

    /* a burst from a child while this process runs */
    n = 0;
    enum { BURST = 60 };
    pid_t parent = getpid(), child = fork();
    if (child == 0) {
        for (int i = 1; i <= BURST; i++)
            queue(parent, rt0, i);
        _exit(0);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    double until = now() + 5;
    while (n < BURST && now() < until)
        ;
    int in_order = 1;
    for (int i = 0; i < n; i++)
        in_order &= vals[i] == i + 1;
    printf("burst: %d of %d delivered, %s\n", n, BURST, in_order ? "in order" : "out of order");
    return 0;
}
