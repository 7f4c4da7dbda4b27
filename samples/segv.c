/* Prints a line, then stores through an invalid pointer: dies of SIGSEGV. */
#include <stdio.h>

int main(void)
{
    int *volatile p = (int *)0;
    int *volatile q = (int *)16;

    printf("about to write through a NULL pointer\n");
    fflush(stdout);
    fprintf(stderr, "segv: faulting now\n");
    *p = 42;
    *q = 43; /* not reached */
    printf("still alive?\n");
    return 0;
}
