/* Prints a line, then calls abort(): dies of SIGABRT. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    printf("about to abort\n");
    fflush(stdout);
    fprintf(stderr, "abort: calling abort()\n");
    abort();
}
