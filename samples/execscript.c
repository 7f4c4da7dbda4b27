/* execscript: execve each file named on the command line, in a child, with
 * argv {FILE, "a", "b c"}, and print what happened: the child's output (the
 * program the kernel ran prints its own argv), or execve's errno by name.
 *
 *   execscript FILE...
 *
 * Run on #! scripts, the kernel decides which interpreter runs and with
 * which argv (fs/binfmt_script.c: the name, one optional argument, the
 * script's path, the caller's argv without argv[0]); a file that is neither
 * ELF nor script fails with ENOEXEC, a missing interpreter with ENOENT,
 * scripts nested too deep with ELOOP.  A translator must decide the same. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errno_name(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOEXEC: return "ENOEXEC";
    case ELOOP: return "ELOOP";
    case ENOTDIR: return "ENOTDIR";
    case E2BIG: return "E2BIG";
    default: return "other";
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *base = strrchr(argv[i], '/');
        printf("== %s\n", base ? base + 1 : argv[i]);
        fflush(stdout);
        int pipefd[2];
        if (pipe(pipefd) != 0)
            return 2;
        pid_t pid = fork();
        if (pid == 0) {
            close(pipefd[0]);
            char *args[] = {argv[i], "a", "b c", NULL};
            execv(argv[i], args);
            int e = errno;
            if (write(pipefd[1], &e, sizeof e) != sizeof e)
                _exit(3);
            _exit(127);
        }
        close(pipefd[1]);
        int e = 0;
        ssize_t n = read(pipefd[0], &e, sizeof e);
        close(pipefd[0]);
        int status;
        waitpid(pid, &status, 0);
        if (n == sizeof e)
            printf("execve: %s\n", errno_name(e));
        else
            printf("status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        fflush(stdout);
    }
    return 0;
}
