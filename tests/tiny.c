/* Freestanding: no libc, so ahead-of-time translation of the whole program is quick. */
typedef unsigned long u64;
static long sys(long n, long a, long b, long c) {
    long r;
    __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
static void put(const char *s) { long n = 0; while (s[n]) n++; sys(1, 1, (long)s, n); }
__attribute__((noinline)) static int classify(int x) {
    switch (x % 7) {                       /* a jump table */
    case 0: return x * 3; case 1: return x + 11; case 2: return x ^ 0x55; case 3: return x - 4;
    case 4: return x << 2; case 5: return x / 3; default: return -x;
    }
}
static int twice(int x) { return 2 * x; }
static int (*volatile op)(int) = twice;   /* an indirect call */
/* Reached only through an address computed at run time: no symbol (when
   stripped), no pointer in data, no instruction naming it. */
__attribute__((noinline, used)) static int hidden(int x) { return x * x + 1; }
static volatile long skew = 64;
static int call_hidden(int x) {
    long p;
    __asm__ ("lea hidden-64(%%rip), %0" : "=r"(p));
    return ((int (*)(int))(p + skew))(x);
}
void _start(void) {
    int acc = 0;
    for (int i = 0; i < 100; i++) acc += classify(i) + op(i);
    acc += call_hidden(acc & 7);
    char buf[32]; int p = 31; buf[p] = 0; u64 v = (u64)acc;
    do { buf[--p] = '0' + v % 10; v /= 10; } while (v);
    put("tiny "); put(buf + p); put("\n");
    sys(60, acc & 0x3f, 0, 0);
}
