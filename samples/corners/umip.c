/* sgdt, sidt, smsw, sldt, str in user mode.  On a CPU with UMIP, Linux
 * (arch/x86/kernel/umip.c) emulates them for a 64-bit process with dummy
 * values: GDT base 0xfffffffffffe0000 and IDT base 0xffffffffffff0000 with
 * limit 0, CR0 = 0x80050033, LDT 0, TR 0x40.  A register operand gets the
 * operand size's low bytes (the rest of the register is kept), a memory
 * operand two bytes (sgdt/sidt: 10).  Without UMIP the CPU stores the real
 * values: the test compares with the native run only on a UMIP host.
 *   umip            every form, printed
 *   umip ro-sgdt    sgdt into read-only memory: SIGSEGV
 *   umip ro-smsw    smsw into read-only memory: SIGSEGV */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const unsigned char rodata[16] = {1};
unsigned char area[64];

static void dump(const char *what, const unsigned char *p, int n) {
    printf("%-12s", what);
    for (int i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

#define REG(insn, mod)                                                    \
    do {                                                                  \
        uint64_t r = 0x1122334455667788ULL;                               \
        __asm__ volatile(insn " %" mod "0" : "+r"(r));                    \
        printf("%-12s%016llx\n", insn " " mod, (unsigned long long)r);  \
    } while (0)

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "ro-sgdt")) {
        printf("sgdt to rodata\n"); fflush(stdout);
        __asm__ volatile("sgdt %0" : : "m"(*(unsigned char (*)[16])rodata) : "memory");
        printf("survived\n");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "ro-smsw")) {
        printf("smsw to rodata\n"); fflush(stdout);
        __asm__ volatile("smsw %0" : : "m"(*(uint16_t *)rodata) : "memory");
        printf("survived\n");
        return 0;
    }
    memset(area, 0xaa, sizeof area);
    __asm__ volatile("sgdt area(%%rip)" ::: "memory");
    __asm__ volatile("sidt area+16(%%rip)" ::: "memory");
    __asm__ volatile("smsw area+32(%%rip)" ::: "memory");
    __asm__ volatile("sldt area+36(%%rip)" ::: "memory");
    __asm__ volatile("str area+40(%%rip)" ::: "memory");
    dump("rip-rel", area, 48);
    /* base + index * scale + displacement, and a 32-bit address size */
    memset(area, 0xaa, sizeof area);
    uintptr_t base = (uintptr_t)area, idx = 4;
    __asm__ volatile("sgdt 3(%0,%1,2)" : : "r"(base), "r"(idx) : "memory");
    __asm__ volatile("sidt 20(%0,%1,4)" : : "r"(base), "r"(idx) : "memory");
    __asm__ volatile("smsw 36(%0,%1,2)" : : "r"(base), "r"(idx) : "memory");
    __asm__ volatile("addr32 sldt 52(%k0)" : : "r"(base) : "memory");
    __asm__ volatile("str 56(%0)" : : "r"(base) : "memory");
    dump("sib", area, 64);
    REG("smsw", "w"); REG("smsw", "k"); REG("smsw", "q");
    REG("sldt", "w"); REG("sldt", "k");
    REG("str", "w"); REG("str", "k");
    /* REX.W forms (GNU as drops REX.W from sldt/str with a 64-bit register) */
    uint64_t r = 0x1122334455667788ULL;
    __asm__ volatile(".byte 0x48, 0x0f, 0x00, 0xc0" : "+a"(r));    /* sldt %rax */
    printf("sldt rax    %016llx\n", (unsigned long long)r);
    r = 0x1122334455667788ULL;
    __asm__ volatile(".byte 0x48, 0x0f, 0x00, 0xc8" : "+a"(r));    /* str %rax */
    printf("str rax     %016llx\n", (unsigned long long)r);
    /* r8-r15 */
    uint64_t r9v;
    __asm__ volatile("movabs $0x8877665544332211, %%r9\n smsw %%r9d\n mov %%r9, %0" : "=r"(r9v) : : "r9");
    printf("smsw r9d    %016llx\n", (unsigned long long)r9v);
    __asm__ volatile("movabs $0x8877665544332211, %%r9\n str %%r9\n mov %%r9, %0" : "=r"(r9v) : : "r9");
    printf("str r9      %016llx\n", (unsigned long long)r9v);
    return 0;
}
