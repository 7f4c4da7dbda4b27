/* String and memory functions of libc (which glibc dispatches to SSE2/AVX2/
 * EVEX variants) over lengths 0..300 and alignments 0..15, with one checksum
 * per function.  Comparison results are reduced to their sign, because the
 * magnitude differs between implementations.  A last section places strings
 * right before an inaccessible page. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAXLEN 300
#define BUFSZ 1024

static unsigned char *A, *B; /* 64-byte aligned work buffers */
static uint64_t h;

static void mixv(uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
}

static void mixmem(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mixv(p[i]);
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static void mixptr(const void *p, const void *base)
{
    mixv(p == NULL ? 0xffffffffu : (uint64_t)((const unsigned char *)p - (const unsigned char *)base));
}

/* fill with non-zero printable-ish bytes, including bytes >= 0x80 */
static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)(i * 31u + seed * 17u + (i >> 3));
        unsigned char c = (unsigned char)('a' + v % 26);
        if (v % 29 == 0)
            c = (unsigned char)(0x80 + v % 100);
        p[i] = c;
    }
}

static void reset(void)
{
    memset(A, 0x5a, BUFSZ);
    memset(B, 0xa5, BUFSZ);
}

static void report(const char *name)
{
    printf("%-10s %016llx\n", name, (unsigned long long)h);
    h = 0;
}

#define FOR_ALL(len, al)                              \
    for (size_t len = 0; len <= MAXLEN; len++)        \
        for (size_t al = 0; al < 16; al++)

static size_t al2(size_t len, size_t al)
{
    return (al * 7 + 3 + len) % 16;
}

int main(void)
{
    A = aligned_alloc(64, BUFSZ);
    B = aligned_alloc(64, BUFSZ);

    FOR_ALL(len, al) {
        reset();
        fill(A + al, len, (unsigned)len);
        A[al + len] = 0;
        mixv(strlen((char *)A + al));
        mixv(strnlen((char *)A + al, len / 2 + al));
    }
    report("strlen");

    FOR_ALL(len, al) {
        size_t d = al2(len, al);
        reset();
        fill(A + al, len, (unsigned)al);
        A[al + len] = 0;
        char *r = strcpy((char *)B + d, (char *)A + al);
        mixptr(r, B);
        mixmem(B, len + 48);
        r = stpcpy((char *)B + d + 1, (char *)A + al);
        mixptr(r, B);
        mixmem(B, len + 48);
    }
    report("strcpy");

    FOR_ALL(len, al) {
        size_t d = al2(len, al);
        reset();
        fill(A + al, len, 3);
        A[al + len] = 0;
        memcpy(B + d, A + al, len + 1);
        mixv((uint64_t)sign(strcmp((char *)A + al, (char *)B + d)) + 1);
        if (len > 0) {
            size_t pos = (len * 13 + al) % len;
            B[d + pos] ^= (unsigned char)(al & 1 ? 0x80 : 0x01);
            mixv((uint64_t)sign(strcmp((char *)A + al, (char *)B + d)) + 1);
            mixv((uint64_t)sign(strcmp((char *)B + d, (char *)A + al)) + 1);
            B[d + pos] = 0; /* B is now a prefix of A */
            mixv((uint64_t)sign(strcmp((char *)A + al, (char *)B + d)) + 1);
        }
    }
    report("strcmp");

    FOR_ALL(len, al) {
        size_t d = al2(len, al);
        reset();
        fill(A + al, len, 4);
        A[al + len] = 0;
        memcpy(B + d, A + al, len + 1);
        if (len > 0)
            B[d + len - 1] = (unsigned char)(B[d + len - 1] + 1);
        for (size_t n = len > 2 ? len - 2 : 0; n <= len + 2; n++)
            mixv((uint64_t)sign(strncmp((char *)A + al, (char *)B + d, n)) + 1);
    }
    report("strncmp");

    FOR_ALL(len, al) {
        size_t d = al2(len, al);
        reset();
        fill(A + al, len, 5);
        void *r = memcpy(B + d, A + al, len);
        mixptr(r, B);
        mixmem(B, len + 48);
    }
    report("memcpy");

    FOR_ALL(len, al) {
        size_t shift = al2(len, al) + 1;
        reset();
        fill(A, len + 64, 6);
        memmove(A + al + shift, A + al, len); /* overlapping, forward */
        mixmem(A, len + 64);
        memmove(A + al, A + al + shift, len); /* overlapping, backward */
        mixmem(A, len + 64);
        memmove(A + al, A + al, len);
        mixmem(A, len + 64);
    }
    report("memmove");

    FOR_ALL(len, al) {
        reset();
        void *r = memset(A + al, (int)(len * 7 + al), len);
        mixptr(r, A);
        mixmem(A, len + 48);
        bzero(A + al, len / 3);
        mixmem(A, len + 48);
    }
    report("memset");

    FOR_ALL(len, al) {
        size_t d = al2(len, al);
        reset();
        fill(A + al, len, 7);
        memcpy(B + d, A + al, len);
        mixv((uint64_t)sign(memcmp(A + al, B + d, len)) + 1);
        if (len > 0) {
            size_t pos = (len * 5 + al * 3) % len;
            B[d + pos] = (unsigned char)(B[d + pos] + (al & 1 ? 0x90 : 1));
            mixv((uint64_t)sign(memcmp(A + al, B + d, len)) + 1);
            mixv((uint64_t)sign(memcmp(B + d, A + al, len)) + 1);
            mixv((uint64_t)sign(bcmp(A + al, B + d, len)) + 1);
            mixv((uint64_t)sign(memcmp(A + al, B + d, pos)) + 1);
        }
    }
    report("memcmp");

    FOR_ALL(len, al) {
        reset();
        fill(A + al, len, 8);
        A[al + len] = 0;
        char *s = (char *)A + al;
        mixptr(strchr(s, 'q'), A);
        mixptr(strchr(s, len > 0 ? s[len - 1] : 'x'), A);
        mixptr(strchr(s, 0), A);
        mixptr(strchr(s, 0x90), A);
        mixptr(strchrnul(s, '#'), A);
        mixptr(memchr(s, 'e', len), A);
        mixptr(memrchr(s, 'e', len), A);
    }
    report("strchr");

    FOR_ALL(len, al) {
        reset();
        fill(A + al, len, 9);
        A[al + len] = 0;
        char *s = (char *)A + al;
        mixptr(strrchr(s, 'a'), A);
        mixptr(strrchr(s, len > 0 ? s[0] : 'x'), A);
        mixptr(strrchr(s, 0), A);
        mixptr(strrchr(s, '#'), A);
    }
    report("strrchr");

    FOR_ALL(len, al) {
        reset();
        fill(A + al, len, 10);
        A[al + len] = 0;
        char *s = (char *)A + al;
        char needle[32];
        size_t nl = 1 + (len + al) % 20;
        if (nl > len)
            nl = len;
        memcpy(needle, s + (len - nl) / 2, nl);
        needle[nl] = 0;
        mixptr(strstr(s, needle), A);
        mixptr(strstr(s, ""), A);
        needle[0] = '#';
        if (nl == 0)
            needle[1] = 0;
        mixptr(strstr(s, needle), A);
        mixptr(strcasestr(s, "ABC"), A);
        mixptr(memmem(s, len, "ef", 2), A);
    }
    report("strstr");

    FOR_ALL(len, al) {
        reset();
        fill(A + al, len, 11);
        A[al + len] = 0;
        char *s = (char *)A + al;
        mixv(strspn(s, "abcdefghijklm"));
        mixv(strspn(s, s)); /* all bytes accepted */
        mixv(strspn(s, ""));
        mixv(strspn(s, "a"));
    }
    report("strspn");

    FOR_ALL(len, al) {
        reset();
        fill(A + al, len, 12);
        A[al + len] = 0;
        char *s = (char *)A + al;
        mixv(strcspn(s, "xyz"));
        mixv(strcspn(s, ""));
        mixv(strcspn(s, "#"));
        mixv(strcspn(s, "\x90\x91\x92qrst"));
    }
    report("strcspn");

    FOR_ALL(len, al) {
        reset();
        fill(A + al, len, 13);
        A[al + len] = 0;
        char *s = (char *)A + al;
        mixptr(strpbrk(s, "xyz"), A);
        mixptr(strpbrk(s, "#"), A);
        mixptr(strpbrk(s, "\x95m"), A);
    }
    report("strpbrk");

    FOR_ALL(len, al) {
        reset();
        fill(A + al, len, 14);
        A[al + len] = 0;
        char *save = NULL;
        int count = 0;
        for (char *t = strtok((char *)A + al, "aeiou"); t != NULL; t = strtok(NULL, "aeiou")) {
            mixptr(t, A);
            mixv(strlen(t));
            count++;
        }
        mixv((uint64_t)count);
        fill(A + al, len, 15);
        A[al + len] = 0;
        for (char *t = strtok_r((char *)A + al, "bcd", &save); t != NULL;
             t = strtok_r(NULL, "bcd", &save))
            mixptr(t, A);
    }
    report("strtok");

    FOR_ALL(len, al) {
        size_t d = al2(len, al);
        reset();
        fill(A + al, len, 16);
        A[al + len] = 0;
        for (size_t i = 0; i <= len; i++) {
            unsigned char c = A[al + i];
            B[d + i] = (unsigned char)((i + al) % 3 == 0 && c >= 'a' && c <= 'z' ? c - 32 : c);
        }
        mixv((uint64_t)sign(strcasecmp((char *)A + al, (char *)B + d)) + 1);
        mixv((uint64_t)sign(strncasecmp((char *)A + al, (char *)B + d, len / 2)) + 1);
        if (len > 0) {
            B[d + len / 2] = '[';
            mixv((uint64_t)sign(strcasecmp((char *)A + al, (char *)B + d)) + 1);
            mixv((uint64_t)sign(strcasecmp((char *)B + d, (char *)A + al)) + 1);
        }
    }
    report("strcasecmp");

    FOR_ALL(len, al) {
        size_t d = al2(len, al);
        reset();
        fill(A + al, len, 17);
        A[al + len] = 0;
        B[d] = 'X';
        B[d + 1] = 0;
        strcat((char *)B + d, (char *)A + al);
        mixmem(B, len + 48);
        strncpy((char *)B + d, (char *)A + al, len / 2 + 20);
        mixmem(B, len + 64);
        strncat((char *)B + d, (char *)A + al + len / 2, len % 5);
        mixmem(B, len + 64);
    }
    report("strcat");

    /* strings that end right before a PROT_NONE page */
    {
        long pg = sysconf(_SC_PAGESIZE);
        unsigned char *m = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect(m + pg, (size_t)pg, PROT_NONE) != 0) {
            puts("mmap/mprotect failed");
            return 1;
        }
        for (size_t len = 0; len <= 130; len++) {
            unsigned char *s = m + pg - len - 1; /* NUL is the last byte of the page */
            unsigned char *t = m + pg - len;     /* no NUL: for mem* functions */
            fill(s, len, (unsigned)len);
            s[len] = 0;
            mixv(strlen((char *)s));
            mixptr(strchr((char *)s, '#'), m);
            mixptr(strrchr((char *)s, 'a'), m);
            mixv(strspn((char *)s, "abcdefghijklmnopqrstuvwxyz"));
            mixv((uint64_t)sign(strcmp((char *)s, (char *)s)) + 1);
            memcpy(B, s, len + 1);
            mixv((uint64_t)sign(strcmp((char *)s, (char *)B)) + 1);
            mixv((uint64_t)sign(strncmp((char *)B, (char *)s, 1000)) + 1);
            mixptr(memchr(t, '#', len), m);
            mixv((uint64_t)sign(memcmp(t, B + 1, len)) + 1);
            memcpy(A, t, len);
            mixmem(A, len);
        }
        report("pageend");
        munmap(m, (size_t)pg * 2);
    }
    free(A);
    free(B);
    return 0;
}
