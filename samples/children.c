/* Child processes around hot code.  Under bttool, hot loops are compiled by
 * a compile server process in the background; none of that may show: the
 * guest's wait() finds no stray child, a pipe's reader sees end of file as
 * soon as the guest's writers are gone, and a child forked while
 * compilations are under way runs on correctly. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Enough iterations for bttool's tier-2 threshold, several times over. */
static unsigned long hot(unsigned long seed, unsigned long n)
{
    unsigned long h = seed;
    for (unsigned long i = 0; i < n; i++)
        h = (h ^ (h >> 7)) * 0x9E3779B97F4A7C15ul + i;
    return h;
}

int main(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 1;
    /* hot code while the pipe is open: the server must not inherit it */
    printf("hot 1: %lx\n", hot(1, 3000000));
    fflush(stdout);

    errno = 0;
    pid_t w = wait(NULL);
    printf("wait without children: %d (%s)\n", (int)w, strerror(errno));

    pid_t writer = fork();
    if (writer == 0) {
        close(p[0]);
        char line[64];
        int n = snprintf(line, sizeof line, "child: %lx\n", hot(2, 2000000));
        if (write(p[1], line, n) != n)
            _exit(3);
        _exit(7);
    }
    close(p[1]);
    char buf[256];
    ssize_t got, total = 0;
    while ((got = read(p[0], buf + total, sizeof buf - 1 - total)) > 0)
        total += got;
    buf[total] = 0;
    printf("from the pipe, until end of file: %s", buf);

    int status = 0;
    pid_t r = waitpid(writer, &status, 0);
    printf("writer: %s, exit %d\n", r == writer ? "reaped" : "lost",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    errno = 0;
    w = wait(NULL);
    printf("wait without children: %d (%s)\n", (int)w, strerror(errno));
    printf("hot 2: %lx\n", hot(3, 3000000));
    return 0;
}
