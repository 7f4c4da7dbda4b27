/* Where the initial stack puts argv, AT_RANDOM's bytes and the argument
 * strings, as offsets: Linux starts the vectors a random 0-8 KiB below the
 * strings (arch_align_stack), unless ASLR is off (setarch -R).
 *   stackplace   prints argv mod 8192 and the distance from argv to
 *                argv[0]'s string */
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    uintptr_t vec = (uintptr_t)argv, str = (uintptr_t)argv[0];
    printf("%lu %lu\n", (unsigned long)(vec % 8192), (unsigned long)(str - vec));
    return 0;
}
