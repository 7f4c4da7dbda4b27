/* Prints a line, then exits with status 42 (stdout flushed by exit()). */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    printf("exiting with status 42\n");
    exit(42);
}
