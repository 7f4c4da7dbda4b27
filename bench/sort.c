/* sort: glibc qsort of ints (indirect calls to a comparison function) plus a
 * hand-written merge sort and a hand-written quicksort of structs (compares,
 * unpredictable branches, 24-byte struct copies).
 *
 *   sort [SCALE]       SCALE (default 1.0) multiplies the repetition count. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef REPS
#define REPS 23
#endif
#define NINT 200000
#define NREC 150000

typedef struct {
    uint32_t key;
    int32_t id;
    uint64_t payload;
    double weight;
} rec;

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int rec_less(const rec *a, const rec *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    return a->id < b->id;
}

static void merge_sort(rec *a, rec *tmp, size_t n)
{
    if (n < 16) {                       /* insertion sort for small runs */
        for (size_t i = 1; i < n; i++) {
            rec v = a[i];
            size_t j = i;
            while (j > 0 && rec_less(&v, &a[j - 1])) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = v;
        }
        return;
    }
    size_t h = n / 2;
    merge_sort(a, tmp, h);
    merge_sort(a + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = rec_less(&a[j], &a[i]) ? a[j++] : a[i++];
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

static void quick_sort(rec *a, long lo, long hi)
{
    while (hi - lo > 12) {
        long mid = lo + (hi - lo) / 2;
        /* median of three */
        if (rec_less(&a[mid], &a[lo])) { rec t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
        if (rec_less(&a[hi], &a[lo])) { rec t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
        if (rec_less(&a[hi], &a[mid])) { rec t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
        rec pivot = a[mid];
        long i = lo, j = hi;
        while (i <= j) {
            while (rec_less(&a[i], &pivot)) i++;
            while (rec_less(&pivot, &a[j])) j--;
            if (i <= j) {
                rec t = a[i]; a[i] = a[j]; a[j] = t;
                i++; j--;
            }
        }
        if (j - lo < hi - i) {          /* recurse on the smaller side */
            quick_sort(a, lo, j);
            lo = i;
        } else {
            quick_sort(a, i, hi);
            hi = j;
        }
    }
    for (long i = lo + 1; i <= hi; i++) {
        rec v = a[i];
        long j = i;
        while (j > lo && rec_less(&v, &a[j - 1])) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h;
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    long reps = (long)(REPS * scale);
    if (reps < 1)
        reps = 1;

    int *ints = malloc(NINT * sizeof *ints);
    rec *r1 = malloc(NREC * sizeof *r1);
    rec *r2 = malloc(NREC * sizeof *r2);
    rec *tmp = malloc(NREC * sizeof *tmp);
    if (!ints || !r1 || !r2 || !tmp)
        return 2;

    uint64_t h = 0;
    for (long rep = 0; rep < reps; rep++) {
        for (size_t i = 0; i < NINT; i++)
            ints[i] = (int)(next() % 1000003) - 500000;
        qsort(ints, NINT, sizeof *ints, cmp_int);
        for (size_t i = 1; i < NINT; i++)
            if (ints[i - 1] > ints[i]) {
                puts("sort: qsort result not sorted");
                return 1;
            }
        for (size_t i = 0; i < NINT; i += 997)
            h = mix(h, (uint64_t)(uint32_t)ints[i]);

        for (size_t i = 0; i < NREC; i++) {
            uint64_t v = next();
            r1[i].key = (uint32_t)(v % 50000);  /* many duplicate keys */
            r1[i].id = (int32_t)i;
            r1[i].payload = v;
            r1[i].weight = (double)(v >> 40) / 3.0;
        }
        memcpy(r2, r1, NREC * sizeof *r1);
        merge_sort(r1, tmp, NREC);
        quick_sort(r2, 0, NREC - 1);
        for (size_t i = 0; i < NREC; i++) {
            if (r1[i].key != r2[i].key || r1[i].id != r2[i].id ||
                (i && rec_less(&r1[i], &r1[i - 1]))) {
                puts("sort: merge sort and quicksort disagree");
                return 1;
            }
        }
        for (size_t i = 0; i < NREC; i += 499)
            h = mix(h, r1[i].payload ^ (uint64_t)r1[i].id);
    }
    printf("sort reps=%ld checksum=%016llx\n", reps, (unsigned long long)h);
    free(ints); free(r1); free(r2); free(tmp);
    return 0;
}
