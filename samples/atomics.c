/* Two processes update counters in a MAP_SHARED page at the same time with
 * x86's locked instructions: lock xadd, lock cmpxchg in a retry loop,
 * lock inc, lock or/and of bit masks, lock bts, and a spin lock built on
 * xchg guarding a plain counter.  Natively no update is ever lost; the
 * totals printed are exact. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 2000000

struct shared {
    long xadd, cas, inc, plain, bits_set, bts;
    int lock, ready;
    unsigned long mask[2];
};

static void spin_lock(int *l)
{
    int one = 1;
    for (;;) {
        int old = one;
        __asm__ volatile("xchg %0, %1" : "+r"(old), "+m"(*l) : : "memory");
        if (old == 0)
            return;
        while (__atomic_load_n(l, __ATOMIC_RELAXED))
            __asm__ volatile("pause");
    }
}

static void spin_unlock(int *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

static void work(struct shared *s, int who)
{
    /* start together, so the two really overlap */
    __atomic_fetch_add(&s->ready, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&s->ready, __ATOMIC_SEQ_CST) < 2)
        ;
    for (long i = 0; i < ROUNDS; i++) {
        __atomic_fetch_add(&s->xadd, 1, __ATOMIC_SEQ_CST);
        long old = __atomic_load_n(&s->cas, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&s->cas, &old, old + 2, 0, __ATOMIC_SEQ_CST,
                                            __ATOMIC_RELAXED))
            ;
        __asm__ volatile("lock incq %0" : "+m"(s->inc) : : "memory");
        spin_lock(&s->lock);
        s->plain++;
        spin_unlock(&s->lock);
        /* each process sets and clears its own bit of one shared word */
        __atomic_fetch_or(&s->mask[0], 1UL << who, __ATOMIC_SEQ_CST);
        __atomic_fetch_and(&s->mask[0], ~(1UL << who), __ATOMIC_SEQ_CST);
        if (i % 10000 == 0) {
            unsigned char was;
            long bit = (i / 10000) * 2 + who;     /* distinct bits, never set twice */
            __asm__ volatile("lock btsq %2, %0; setc %1" : "+m"(s->mask[1]), "=q"(was)
                             : "r"(bit % 64) : "memory", "cc");
            if (bit < 64)
                __atomic_fetch_add(&s->bts, !was, __ATOMIC_SEQ_CST);
        }
    }
}

int main(void)
{
    struct shared *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        work(s, 1);
        _exit(0);
    }
    work(s, 0);
    int status;
    waitpid(child, &status, 0);
    printf("xadd %ld cas %ld inc %ld plain %ld mask %#lx bts %ld\n", s->xadd, s->cas, s->inc,
           s->plain, s->mask[0], s->bts);
    return 0;
}
