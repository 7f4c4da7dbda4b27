/* gotodispatch: two bytecode interpreters dispatching by computed goto
 * (GCC's labels as values), as Lua's and CPython's eval loops do: one
 * masks the opcode (table of 8), one indexes a 256-entry table by a byte.
 * Run long enough for tier 2, whose regions switch on each dispatch's
 * profiled target (translator/blocks.py guess_target); the sums must
 * match the native run's. */
#include <stdint.h>
#include <stdio.h>

#define NOINLINE __attribute__((noinline))

static NOINLINE uint64_t masked(const uint8_t *code, long rounds)
{
    static void *const table[8] = {&&op_inc, &&op_dbl, &&op_xor, &&op_sub,
                                   &&op_rot, &&op_mul, &&op_loop, &&op_end};
    uint64_t acc = 1;
    long left = rounds;
    const uint8_t *pc = code;
    goto *table[*pc++ & 7];
op_inc: acc += *pc;         goto *table[*pc++ & 7];
op_dbl: acc += acc >> 3;    goto *table[*pc++ & 7];
op_xor: acc ^= 0x9e3779b9;  goto *table[*pc++ & 7];
op_sub: acc -= 12345;       goto *table[*pc++ & 7];
op_rot: acc = acc << 7 | acc >> 57; goto *table[*pc++ & 7];
op_mul: acc *= 0x100000001b3ULL; goto *table[*pc++ & 7];
op_loop:
    if (--left > 0)
        pc = code;
    goto *table[*pc++ & 7];
op_end:
    return acc;
}

static NOINLINE uint64_t bytewise(const uint8_t *code, long rounds)
{
    static void *table[256];
    if (!table[0]) {
        for (int i = 0; i < 256; i++)
            table[i] = &&op_nop;
        table[1] = &&op_add; table[2] = &&op_shift; table[3] = &&op_neg;
        table[200] = &&op_loop; table[255] = &&op_end;
    }
    uint64_t acc = 7;
    long left = rounds;
    const uint8_t *pc = code;
    goto *table[*pc++];
op_nop:   acc++;              goto *table[*pc++];
op_add:   acc += acc >> 5;    goto *table[*pc++];
op_shift: acc ^= acc << 13;   goto *table[*pc++];
op_neg:   acc = ~acc;         goto *table[*pc++];
op_loop:
    if (--left > 0)
        pc = code;
    goto *table[*pc++];
op_end:
    return acc;
}

int main(void)
{
    static const uint8_t prog1[] = {0, 3, 1, 5, 2, 4, 1, 0, 9, 3, 5, 6, 7};
    static const uint8_t prog2[] = {1, 2, 0, 3, 1, 77, 2, 1, 3, 200, 255};
    uint64_t a = masked(prog1, 300000);
    uint64_t b = bytewise(prog2, 300000);
    printf("masked %llx\nbytewise %llx\n", (unsigned long long)a, (unsigned long long)b);
    return 0;
}
