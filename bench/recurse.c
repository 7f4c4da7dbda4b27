/* recurse: deep recursion, i.e. calls and returns: naive fib, Ackermann
 * for small arguments (recursion thousands of frames deep), and recursive
 * walks (build, sum, mirror, depth, free) over a binary tree.  Stresses
 * call/ret, return-address prediction, stack traffic and malloc/free.
 *
 *   recurse [SCALE]    SCALE (default 1.0) multiplies the repetition counts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FIB_N
#define FIB_N 35
#endif
#ifndef FIB_REPS
#define FIB_REPS 11
#endif
#ifndef ACK_REPS
#define ACK_REPS 23
#endif
#ifndef TREE_REPS
#define TREE_REPS 16
#endif
#define TREE_DEPTH 18

#define NOINLINE __attribute__((noinline, noclone))

static NOINLINE long fib(long n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static NOINLINE long ack(long m, long n)
{
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}

struct node {
    struct node *l, *r;
    long val;
};

static NOINLINE struct node *build(int depth, long *counter)
{
    struct node *n = malloc(sizeof *n);
    if (!n)
        exit(2);
    n->val = (*counter)++ * 2654435761u % 1000003;
    if (depth > 0) {
        n->l = build(depth - 1, counter);
        n->r = build(depth - 1, counter);
    } else {
        n->l = n->r = NULL;
    }
    return n;
}

static NOINLINE long sum(const struct node *n)
{
    return n ? n->val + sum(n->l) - sum(n->r) / 2 : 0;
}

static NOINLINE void mirror(struct node *n)
{
    if (!n)
        return;
    struct node *t = n->l;
    n->l = n->r;
    n->r = t;
    mirror(n->l);
    mirror(n->r);
}

static NOINLINE int depth(const struct node *n)
{
    if (!n)
        return 0;
    int a = depth(n->l), b = depth(n->r);
    return 1 + (a > b ? a : b);
}

/* path hash: mixes the node values along the left-first DFS order */
static NOINLINE uint64_t walk(const struct node *n, uint64_t h)
{
    if (!n)
        return h * 31 + 7;
    h = walk(n->l, h * 1099511628211ull ^ (uint64_t)n->val);
    return walk(n->r, h);
}

static NOINLINE void release(struct node *n)
{
    if (!n)
        return;
    release(n->l);
    release(n->r);
    free(n);
}

static long reps_of(long base, double scale)
{
    long r = (long)(base * scale);
    return r < 1 ? 1 : r;
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    long fr = reps_of(FIB_REPS, scale), ar = reps_of(ACK_REPS, scale),
         tr = reps_of(TREE_REPS, scale);

    uint64_t h = 0;
    long f = 0;
    for (long i = 0; i < fr; i++) {
        f = fib(FIB_N - (i & 1));
        h = h * 31 + (uint64_t)f;
    }
    long a = 0;
    for (long i = 0; i < ar; i++) {
        a = ack(2, 500 + i) + ack(3, 9 + (i & 1));   /* ack(3,10): depth ~8000 */
        h = h * 31 + (uint64_t)a;
    }
    long s = 0;
    int dep = 0;
    for (long i = 0; i < tr; i++) {
        long counter = i;
        struct node *t = build(TREE_DEPTH, &counter);
        s = sum(t);
        mirror(t);
        s ^= sum(t);
        dep = depth(t);
        h = h * 31 + walk(t, (uint64_t)i);
        h = h * 31 + (uint64_t)s + (uint64_t)dep;
        release(t);
    }
    printf("recurse fib(%d)=%ld ack=%ld tree_depth=%d tree_sum=%ld checksum=%016llx\n",
           FIB_N - (int)((fr - 1) & 1), f, a, dep, s, (unsigned long long)h);
    return 0;
}
