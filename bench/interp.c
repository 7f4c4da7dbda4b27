/* interp: a switch-dispatch bytecode interpreter for a small stack machine
 * (one indirect branch per bytecode), running bytecode programs that count
 * primes by trial division, compute fib iteratively and with calls, and sum
 * a Collatz sequence length.  Stresses indirect jumps through a jump table
 * and load/store traffic to the VM stack.
 *
 *   interp [SCALE]     SCALE (default 1.0) multiplies the problem sizes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef PRIME_LIMIT
#define PRIME_LIMIT 320000
#endif
#ifndef FIB_N
#define FIB_N 27
#endif
#ifndef COLLATZ_LIMIT
#define COLLATZ_LIMIT 170000
#endif

enum {
    OP_HALT, OP_PUSH, OP_POP, OP_DUP, OP_SWAP, OP_OVER,
    OP_LOAD, OP_STORE, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD,
    OP_LT, OP_LE, OP_EQ, OP_NOT, OP_AND,
    OP_JMP, OP_JZ, OP_JNZ, OP_CALL, OP_RET, OP_ARG, OP_INC, OP_DEC, OP_SHR,
};

typedef int64_t word;

static word run(const word *code, word *vars, word arg)
{
    word stack[4096];
    word *sp = stack;              /* points at next free slot */
    struct { long pc; word *fp; } frames[1024];
    int fdepth = 0;
    word *fp = sp;                 /* frame base: argument slot */
    *sp++ = arg;
    long pc = 0;
    for (;;) {
        word op = code[pc++];
        switch (op) {
        case OP_HALT: return sp[-1];
        case OP_PUSH: *sp++ = code[pc++]; break;
        case OP_POP: sp--; break;
        case OP_DUP: sp[0] = sp[-1]; sp++; break;
        case OP_SWAP: { word t = sp[-1]; sp[-1] = sp[-2]; sp[-2] = t; } break;
        case OP_OVER: sp[0] = sp[-2]; sp++; break;
        case OP_LOAD: *sp++ = vars[code[pc++]]; break;
        case OP_STORE: vars[code[pc++]] = *--sp; break;
        case OP_ADD: sp--; sp[-1] += sp[0]; break;
        case OP_SUB: sp--; sp[-1] -= sp[0]; break;
        case OP_MUL: sp--; sp[-1] *= sp[0]; break;
        case OP_DIV: sp--; sp[-1] /= sp[0]; break;
        case OP_MOD: sp--; sp[-1] %= sp[0]; break;
        case OP_LT: sp--; sp[-1] = sp[-1] < sp[0]; break;
        case OP_LE: sp--; sp[-1] = sp[-1] <= sp[0]; break;
        case OP_EQ: sp--; sp[-1] = sp[-1] == sp[0]; break;
        case OP_NOT: sp[-1] = !sp[-1]; break;
        case OP_AND: sp--; sp[-1] &= sp[0]; break;
        case OP_JMP: pc = code[pc]; break;
        case OP_JZ: pc = *--sp == 0 ? code[pc] : pc + 1; break;
        case OP_JNZ: pc = *--sp != 0 ? code[pc] : pc + 1; break;
        case OP_CALL:                  /* arg on stack -> result on stack */
            frames[fdepth].pc = pc + 1;
            frames[fdepth].fp = fp;
            fdepth++;
            fp = sp - 1;
            pc = code[pc];
            break;
        case OP_RET: {                 /* result on top */
            word res = sp[-1];
            sp = fp;
            *sp++ = res;
            fdepth--;
            pc = frames[fdepth].pc;
            fp = frames[fdepth].fp;
            break;
        }
        case OP_ARG: *sp++ = *fp; break;
        case OP_INC: sp[-1]++; break;
        case OP_DEC: sp[-1]--; break;
        case OP_SHR: sp--; sp[-1] >>= sp[0]; break;
        default:
            fprintf(stderr, "interp: bad opcode %lld at %ld\n", (long long)op, pc - 1);
            exit(1);
        }
    }
}

/* A tiny assembler with forward labels, so the programs below read like
 * assembly and no jump offset is computed by hand. */
#define MAXCODE 512
#define MAXLABEL 16
typedef struct {
    word code[MAXCODE];
    int n;
    long label[MAXLABEL];
    int fix_at[MAXCODE], fix_label[MAXCODE], nfix;
} asm_t;

static void op(asm_t *a, word o) { a->code[a->n++] = o; }
static void op1(asm_t *a, word o, word x) { op(a, o); op(a, x); }
static void jmp(asm_t *a, word o, int l)
{
    op(a, o);
    a->fix_at[a->nfix] = a->n;
    a->fix_label[a->nfix++] = l;
    op(a, -1);
}
static void here(asm_t *a, int l) { a->label[l] = a->n; }
static void asm_link(asm_t *a)
{
    for (int i = 0; i < a->nfix; i++)
        a->code[a->fix_at[i]] = a->label[a->fix_label[i]];
}

/* count primes below ARG by trial division */
static void gen_primes(asm_t *a)
{
    enum { n, d, count };
    enum { outer, inner, prime, next, done };
    op1(a, OP_PUSH, 2); op1(a, OP_STORE, n);
    op1(a, OP_PUSH, 0); op1(a, OP_STORE, count);
    here(a, outer);
    op1(a, OP_LOAD, n); op(a, OP_ARG); op(a, OP_LT); jmp(a, OP_JZ, done);
    op1(a, OP_PUSH, 2); op1(a, OP_STORE, d);
    here(a, inner);
    op1(a, OP_LOAD, d); op(a, OP_DUP); op(a, OP_MUL);
    op1(a, OP_LOAD, n); op(a, OP_LE); jmp(a, OP_JZ, prime);
    op1(a, OP_LOAD, n); op1(a, OP_LOAD, d); op(a, OP_MOD); jmp(a, OP_JZ, next);
    op1(a, OP_LOAD, d); op(a, OP_INC); op1(a, OP_STORE, d); jmp(a, OP_JMP, inner);
    here(a, prime);
    op1(a, OP_LOAD, count); op(a, OP_INC); op1(a, OP_STORE, count);
    here(a, next);
    op1(a, OP_LOAD, n); op(a, OP_INC); op1(a, OP_STORE, n); jmp(a, OP_JMP, outer);
    here(a, done);
    op1(a, OP_LOAD, count); op(a, OP_HALT);
    asm_link(a);
}

/* recursive fib(ARG) = ARG < 2 ? ARG : fib(ARG-1) + fib(ARG-2) */
static void gen_fib(asm_t *a)
{
    enum { fib, rec };
    op(a, OP_ARG); jmp(a, OP_CALL, fib); op(a, OP_HALT);
    here(a, fib);
    op(a, OP_ARG); op1(a, OP_PUSH, 2); op(a, OP_LT); jmp(a, OP_JZ, rec);
    op(a, OP_ARG); op(a, OP_RET);
    here(a, rec);
    op(a, OP_ARG); op(a, OP_DEC); jmp(a, OP_CALL, fib);
    op(a, OP_ARG); op1(a, OP_PUSH, 2); op(a, OP_SUB); jmp(a, OP_CALL, fib);
    op(a, OP_ADD); op(a, OP_RET);
    asm_link(a);
}

/* sum over n in [1, ARG) of the Collatz step count of n */
static void gen_collatz(asm_t *a)
{
    enum { n, x, sum };
    enum { outer, loop, even, next, done };
    op1(a, OP_PUSH, 1); op1(a, OP_STORE, n);
    op1(a, OP_PUSH, 0); op1(a, OP_STORE, sum);
    here(a, outer);
    op1(a, OP_LOAD, n); op(a, OP_ARG); op(a, OP_LT); jmp(a, OP_JZ, done);
    op1(a, OP_LOAD, n); op1(a, OP_STORE, x);
    here(a, loop);
    op1(a, OP_LOAD, x); op1(a, OP_PUSH, 1); op(a, OP_EQ); jmp(a, OP_JNZ, next);
    op1(a, OP_LOAD, sum); op(a, OP_INC); op1(a, OP_STORE, sum);
    op1(a, OP_LOAD, x); op1(a, OP_PUSH, 1); op(a, OP_AND); jmp(a, OP_JZ, even);
    op1(a, OP_LOAD, x); op1(a, OP_PUSH, 3); op(a, OP_MUL); op(a, OP_INC);
    op1(a, OP_STORE, x); jmp(a, OP_JMP, loop);
    here(a, even);
    op1(a, OP_LOAD, x); op1(a, OP_PUSH, 1); op(a, OP_SHR); op1(a, OP_STORE, x);
    jmp(a, OP_JMP, loop);
    here(a, next);
    op1(a, OP_LOAD, n); op(a, OP_INC); op1(a, OP_STORE, n); jmp(a, OP_JMP, outer);
    here(a, done);
    op1(a, OP_LOAD, sum); op(a, OP_HALT);
    asm_link(a);
}

static word native_primes(word lim)
{
    word c = 0;
    for (word n = 2; n < lim; n++) {
        word d = 2;
        for (; d * d <= n; d++)
            if (n % d == 0)
                break;
        if (d * d > n)
            c++;
    }
    return c;
}

static word native_fib(word n) { return n < 2 ? n : native_fib(n - 1) + native_fib(n - 2); }

static word native_collatz(word lim)
{
    word s = 0;
    for (word n = 1; n < lim; n++)
        for (word x = n; x != 1; s++)
            x = (x & 1) ? 3 * x + 1 : x / 2;
    return s;
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    if (scale <= 0)
        scale = 1e-3;
    word plim = (word)(PRIME_LIMIT * scale);
    word clim = (word)(COLLATZ_LIMIT * scale);
    /* fib grows by phi per step: add log_phi(scale) to N */
    word fibn = FIB_N;
    for (double s = scale; s >= 1.618; s /= 1.618)
        fibn++;
    for (double s = scale; s <= 1 / 1.618 && fibn > 2; s *= 1.618)
        fibn--;
    if (plim < 3) plim = 3;
    if (clim < 2) clim = 2;

    static asm_t ap, af, ac;
    gen_primes(&ap);
    gen_fib(&af);
    gen_collatz(&ac);
    word vars[8] = {0};
    word primes = run(ap.code, vars, plim);
    word fib = run(af.code, vars, fibn);
    word coll = run(ac.code, vars, clim);
    if (primes != native_primes(plim) || fib != native_fib(fibn) ||
        coll != native_collatz(clim)) {
        printf("interp: mismatch primes=%lld/%lld fib=%lld/%lld collatz=%lld/%lld\n",
               (long long)primes, (long long)native_primes(plim),
               (long long)fib, (long long)native_fib(fibn),
               (long long)coll, (long long)native_collatz(clim));
        return 1;
    }
    printf("interp primes(<%lld)=%lld fib(%lld)=%lld collatz(<%lld)=%lld\n",
           (long long)plim, (long long)primes, (long long)fibn, (long long)fib,
           (long long)clim, (long long)coll);
    return 0;
}
