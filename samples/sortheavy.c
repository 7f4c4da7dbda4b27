/* Allocation-heavy work and sorting: qsort of 200000 pseudo-random ints and of
 * 40000 random strings, arrays grown with realloc, a malloc/free churn with
 * sizes from 1 byte to above the mmap threshold.  Prints checksums only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t lcg_state = 0x2545F4914F6CDD1Dull;

static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static void ints(void)
{
    enum { N = 200000 };
    int *a = NULL;
    size_t cap = 0, n = 0;
    uint64_t h = 0;
    int64_t sum = 0;

    for (int i = 0; i < N; i++) {
        if (n == cap) {
            cap = cap ? cap * 3 / 2 + 1 : 16;
            int *na = realloc(a, cap * sizeof *a);
            if (na == NULL) {
                puts("realloc failed");
                exit(1);
            }
            a = na;
        }
        a[n++] = (int)lcg() - (int)(1u << 30);
        sum += a[n - 1];
    }
    qsort(a, n, sizeof *a, cmp_int);
    for (size_t i = 1; i < n; i++) {
        if (a[i - 1] > a[i]) {
            printf("ints: not sorted at %zu\n", i);
            exit(1);
        }
    }
    for (size_t i = 0; i < n; i++)
        h = mix(h, (uint64_t)(uint32_t)a[i]);
    printf("ints: n=%zu sum=%lld min=%d max=%d median=%d hash=%016llx\n", n,
           (long long)sum, a[0], a[n - 1], a[n / 2], (unsigned long long)h);
    free(a);
}

static void strings(void)
{
    enum { N = 40000 };
    char **v = malloc(N * sizeof *v);
    uint64_t h = 0;
    size_t total = 0, dups = 0;

    for (int i = 0; i < N; i++) {
        size_t len = 1 + lcg() % 24;
        char *s = malloc(1);
        /* grow one byte at a time to exercise realloc */
        for (size_t j = 0; j < len; j++) {
            s = realloc(s, j + 2);
            s[j] = (char)('a' + lcg() % 6);
            s[j + 1] = '\0';
        }
        v[i] = s;
        total += len;
    }
    qsort(v, N, sizeof *v, cmp_str);
    for (int i = 0; i < N; i++) {
        if (i > 0) {
            int c = strcmp(v[i - 1], v[i]);
            if (c > 0) {
                printf("strings: not sorted at %d\n", i);
                exit(1);
            }
            dups += c == 0;
        }
        for (const char *p = v[i]; *p; p++)
            h = mix(h, (unsigned char)*p);
        h = mix(h, 0);
    }
    printf("strings: n=%d total=%zu dups=%zu first=%s last=%s hash=%016llx\n", N, total,
           dups, v[0], v[N - 1], (unsigned long long)h);
    for (int i = 0; i < N; i++)
        free(v[i]);
    free(v);
}

static void churn(void)
{
    enum { SLOTS = 512, ROUNDS = 60000 };
    static unsigned char *slot[SLOTS];
    static size_t size[SLOTS];
    uint64_t h = 0;
    size_t live_max = 0, live = 0, big = 0;

    for (int r = 0; r < ROUNDS; r++) {
        unsigned k = lcg() % SLOTS;
        if (slot[k] != NULL) {
            /* verify the fill pattern survived */
            for (size_t i = 0; i < size[k]; i += 1 + size[k] / 16) {
                if (slot[k][i] != (unsigned char)(k + i)) {
                    printf("churn: corruption in slot %u\n", k);
                    exit(1);
                }
            }
            h = mix(h, size[k]);
            live -= size[k];
            if (lcg() % 4 == 0) {
                size_t ns = size[k] * 2 + 1;
                unsigned char *p = realloc(slot[k], ns);
                for (size_t i = size[k]; i < ns; i++)
                    p[i] = (unsigned char)(k + i);
                slot[k] = p;
                size[k] = ns;
                live += ns;
                continue;
            }
            free(slot[k]);
            slot[k] = NULL;
            continue;
        }
        uint32_t kind = lcg() % 100;
        size_t sz = kind < 70 ? 1 + lcg() % 64 : kind < 97 ? 64 + lcg() % 4096 : 100000 + lcg() % 300000;
        big += sz >= 100000;
        slot[k] = kind % 2 ? malloc(sz) : calloc(1, sz);
        if (slot[k] == NULL) {
            puts("churn: allocation failed");
            exit(1);
        }
        if (kind % 2 == 0) {
            for (size_t i = 0; i < sz; i += 997)
                if (slot[k][i] != 0) {
                    puts("churn: calloc memory not zero");
                    exit(1);
                }
        }
        for (size_t i = 0; i < sz; i++)
            slot[k][i] = (unsigned char)(k + i);
        size[k] = sz;
        live += sz;
        if (live > live_max)
            live_max = live;
    }
    for (int k = 0; k < SLOTS; k++)
        free(slot[k]);
    printf("churn: rounds=%d big=%zu live_max=%zu hash=%016llx\n", ROUNDS, big, live_max,
           (unsigned long long)h);
}

int main(void)
{
    ints();
    strings();
    churn();
    return 0;
}
