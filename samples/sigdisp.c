/* sigdisp: signal dispositions and the mask as Linux keeps them.  A program
 * that ignores SIGPIPE gets EPIPE from a write to a closed pipe, not death;
 * across execve, ignored signals stay ignored, handled ones return to the
 * default action, the blocked set is kept and so is a blocked signal
 * pending at the exec (delivered once the new program unblocks it);
 * signals ignored by whoever started the program (nohup's SIGHUP) are
 * ignored in it too.
 *
 *   sigdisp          report, set dispositions, exec itself as "sigdisp after"
 *   sigdisp after    report only */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void handler(int sig) { (void)sig; }

static void report(const char *when) {
    sigset_t blocked;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    printf("%s: ignored", when);
    for (int sig = 1; sig < 32; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            printf(" %d", sig);
    }
    printf("; handled");
    for (int sig = 1; sig < 32; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_IGN && sa.sa_handler != SIG_DFL)
            printf(" %d", sig);
    }
    printf("; blocked");
    for (int sig = 1; sig < 32; sig++)
        if (sigismember(&blocked, sig))
            printf(" %d", sig);
    sigset_t pending;
    sigpending(&pending);
    printf("; pending");
    for (int sig = 1; sig < 32; sig++)
        if (sigismember(&pending, sig))
            printf(" %d", sig);
    printf("\n");
}

static void announce(int sig) {
    static const char msg[] = "SIGALRM delivered after the exec\n";
    (void)sig;
    write(1, msg, sizeof msg - 1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        report("after exec");
        signal(SIGALRM, announce);
        sigset_t alrm;
        sigemptyset(&alrm);
        sigaddset(&alrm, SIGALRM);
        sigprocmask(SIG_UNBLOCK, &alrm, NULL);
        report("after unblocking SIGALRM");
        return 0;
    }
    report("at start");
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    pipe(p);
    close(p[0]);
    long r = write(p[1], "x", 1);
    printf("write to a closed pipe: %ld %s\n", r, r < 0 ? strerrorname_np(errno) : "");
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, handler);
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, handler);
    signal(SIGQUIT, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGALRM);             /* blocked: pending across the exec */
    report("before exec");
    execl(argv[0], argv[0], "after", (char *)NULL);
    perror("execl");
    return 1;
}
