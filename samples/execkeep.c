/* execve of the same program after changing its own code.
 *
 * bttool serves an execve in its own process and keeps the translations of
 * code the new program holds unchanged (runtime/keptcode.py).  Here the old
 * program patches one of its functions (mprotect, store, call it: the
 * patched code is translated) and then execs itself: the new program has
 * the file's code again, so the kept translation of the patched function
 * must not run.  The untouched functions' translations may be kept.
 *
 *   execkeep          patch, call, exec itself as "execkeep child N"
 *   execkeep child N  call both functions; exec again until N reaches 0
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* "mov eax, imm32; ret": the immediate is what gets patched */
__attribute__((noipa, aligned(4096))) int patched(void) { return 1; }
__attribute__((noipa)) int untouched(int x) { return x * 3 + 1; }

static int (*volatile patched_fn)(void) = patched;
static int (*volatile untouched_fn)(int) = untouched;

static void report(const char *who)
{
    int sum = 0;
    for (int i = 0; i < 1000; i++)      /* hot enough to be translated */
        sum += untouched_fn(i);
    printf("%s: patched() = %d, untouched sum = %d\n", who, patched_fn(), sum);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "child") == 0) {
        int n = atoi(argv[2]);
        report("child");
        if (n > 0) {
            char next[16];
            snprintf(next, sizeof next, "%d", n - 1);
            execl("/proc/self/exe", argv[0], "child", next, (char *)NULL);
            perror("execl");
            return 1;
        }
        return 0;
    }
    report("before patch");
    unsigned char *code = (unsigned char *)patched;
    if (code[0] != 0xb8 || code[5] != 0xc3) {
        printf("unexpected code for patched(): %02x ... %02x\n", code[0], code[5]);
        return 1;
    }
    uintptr_t page = (uintptr_t)code & ~(uintptr_t)4095;
    if (mprotect((void *)page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
        perror("mprotect");
        return 1;
    }
    code[1] = 7;
    report("after patch");
    execl("/proc/self/exe", argv[0], "child", "2", (char *)NULL);
    perror("execl");
    return 1;
}
