/* Prints argc, every argv[i] and every environment entry whose name starts
 * with BTTOOL_SAMPLE_, in the order they appear in envp. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv, char **envp)
{
    static const char prefix[] = "BTTOOL_SAMPLE_";
    int i, n = 0;

    printf("argc=%d\n", argc);
    for (i = 0; i < argc; i++)
        printf("argv[%d]=[%s] len=%zu\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc]=%s\n", argv[argc] == NULL ? "NULL" : "not NULL");
    for (i = 0; envp[i] != NULL; i++) {
        if (strncmp(envp[i], prefix, sizeof prefix - 1) == 0) {
            printf("env[%d]=[%s]\n", n, envp[i]);
            n++;
        }
    }
    printf("matching env entries: %d\n", n);
    return 0;
}
