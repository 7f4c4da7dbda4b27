/* Prints a line, then divides by zero: dies of SIGFPE. */
#include <stdio.h>

int main(void)
{
    volatile int a = 1234567;
    volatile int b = 0;
    int c;

    printf("about to divide %d by %d\n", a, b);
    fflush(stdout);
    fprintf(stderr, "divzero: faulting now\n");
    c = a / b;
    printf("result %d\n", c); /* not reached */
    return 0;
}
