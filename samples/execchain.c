/* execchain: exec a chain of programs, changing the environment, argv and
 * descriptors on the way, and print what the last one sees.
 *
 *   execchain            start: exec step 3 of the chain
 *   execchain N SELF ... step N > 0: change something, exec step N-1
 *   execchain 0 SELF ... the end: print argv, the whole environment in
 *                        order, AT_EXECFN, AT_SECURE and which of the
 *                        descriptors 0..255 are open
 *
 * A translator that starts each new program itself must hand over exactly
 * what the guest passed: no variable of its own (PYTHONPATH, LD_PRELOAD...),
 * no argv[0] of its own, no descriptor of its own, and close-on-exec
 * descriptors closed.  The output is the same on every run. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

static void step(const char *self, int n, char **envp) {
    char num[16];
    snprintf(num, sizeof num, "%d", n);
    char *argv[] = {n == 1 ? "renamed-argv0" : (char *)self, num, (char *)self, "an argument", "",
                    NULL};
    execve(self, argv, envp);
    perror("execve");
    exit(99);
}

static void print_environment(const char *who) {
    int count = 0;
    for (char **e = environ; *e; e++)
        printf("%s: env[%d]=\"%s\"\n", who, count++, *e);
    printf("%s: environment entries: %d\n", who, count);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2)
        step(argv[0], 3, environ);
    if (argc < 3)
        return 97;
    int n = atoi(argv[1]);
    const char *self = argv[2];     /* the program's path (argv[0] may be renamed) */
    char who[32];
    snprintf(who, sizeof who, "step %d", n);
    if (n != 3)                     /* (step 3 has the caller's environment) */
        print_environment(who);
    if (n == 3) {                       /* inherited environment, changed */
        setenv("EXECCHAIN_ADDED", "value with spaces=and equals", 1);
        unsetenv("HOME");
        int keep = open("/dev/null", O_RDONLY);             /* stays open */
        int gone = open("/dev/null", O_RDONLY | O_CLOEXEC); /* closed by exec */
        if (keep < 0 || gone < 0)
            return 96;
        dup2(keep, 17);
        step(self, 2, environ);
    }
    if (n == 2) {                       /* an empty environment, argv[0] renamed */
        char *envp[] = {NULL};
        step(self, 1, envp);
    }
    if (n == 1) {                       /* a small environment of our own */
        char *envp[] = {"A=1", "LD_PRELOAD=/nonexistent/preload.so",
                        "PYTHONPATH=/nonexistent/python", "PYTHONHOME=/nonexistent",
                        "B=", "=odd", "NOEQUALS", "A=2", NULL};
        char *argv1[] = {"last", "0", (char *)self, NULL};
        execve(self, argv1, envp);
        perror("execve");
        return 95;
    }
    /* n == 0: report */
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=\"%s\"\n", i, argv[i]);
    printf("AT_SECURE=%lu\n", getauxval(AT_SECURE));
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    printf("AT_EXECFN is the path passed to execve: %s\n",
           execfn && self && strcmp(execfn, self) == 0 ? "yes" : "no");
    printf("open descriptors:");
    for (int fd = 0; fd < 256; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            printf(" %d", fd);
    printf("\n");
    return 0;
}
