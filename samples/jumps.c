/* setjmp/longjmp across nested calls, with a trace of what ran. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

static jmp_buf outer, inner;
static int depth_reached;

static void dive(int depth, int target, jmp_buf *where, int value)
{
    char pad[64 * (1 + depth % 3)]; /* different frame sizes */
    pad[0] = (char)depth;
    pad[sizeof pad - 1] = (char)target;
    printf("  dive depth=%d pad=%zu\n", depth, sizeof pad);
    depth_reached = depth + pad[0] - depth;
    if (depth == target) {
        printf("  longjmp with %d from depth %d\n", value, depth);
        longjmp(*where, value);
    }
    if (depth < 100)
        dive(depth + 1, target, where, value);
    printf("  unreachable after dive %d\n", depth);
}

static int nested(int n)
{
    volatile int local = n * 100;
    int r = setjmp(inner);
    if (r == 0) {
        printf(" nested(%d): setjmp returned 0, local=%d\n", n, local);
        local += 1;
        dive(0, n, &inner, n + 1);
        return -1;
    }
    printf(" nested(%d): back from longjmp with %d, local=%d\n", n, r, local);
    if (n == 3) {
        printf(" nested(%d): escaping to outer\n", n);
        longjmp(outer, 1000 + n);
    }
    return r;
}

static int counter;

int main(void)
{
    volatile int rounds = 0;
    int r;

    printf("start\n");
    r = setjmp(outer);
    printf("outer setjmp returned %d (rounds=%d)\n", r, rounds);
    if (r == 0) {
        for (int i = 0; i < 5; i++) {
            int got = nested(i);
            printf("nested(%d) returned %d, deepest %d\n", i, got, depth_reached);
            rounds++;
        }
        printf("not reached\n");
    }
    /* longjmp with 0 must make setjmp return 1 */
    {
        jmp_buf z;
        volatile int times = 0;
        int v = setjmp(z);
        times++;
        printf("zero test: setjmp returned %d, times=%d\n", v, times);
        if (times == 1)
            longjmp(z, 0);
    }
    /* a loop driven entirely by longjmp */
    {
        jmp_buf loop;
        int v = setjmp(loop);
        counter++;
        if (v < 10) {
            printf("loop %d\n", v);
            longjmp(loop, v + 1);
        }
        printf("loop done after %d setjmp returns\n", counter);
    }
    /* sigsetjmp/siglongjmp without signal mask saving */
    {
        sigjmp_buf sj;
        int v = sigsetjmp(sj, 0);
        if (v == 0) {
            printf("sigsetjmp first return\n");
            siglongjmp(sj, 7);
        }
        printf("sigsetjmp returned %d\n", v);
    }
    printf("end rounds=%d\n", rounds);
    return 0;
}
