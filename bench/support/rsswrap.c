/* rsswrap: run a command and report its peak resident memory.
 *
 *   rsswrap OUTFILE COMMAND [ARGS...]
 *
 * bench/run starts every timed command through this small program: the
 * kernel counts the memory a process had before its exec into its peak
 * (ru_maxrss), and a command forked by the benchmark's Python would start
 * from that interpreter's 18 MB.  Forked from here it starts from almost
 * nothing.  Writes the command's ru_maxrss (KiB) to OUTFILE, then ends as
 * the command did: the same exit status, or killed by the same signal. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: rsswrap OUTFILE COMMAND [ARGS...]\n");
        return 125;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("rsswrap: fork");
        return 125;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror("rsswrap: exec");
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        ;
    FILE *f = fopen(argv[1], "w");
    if (f) {
        fprintf(f, "%ld\n", ru.ru_maxrss);
        fclose(f);
    }
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        raise(WTERMSIG(status));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}
