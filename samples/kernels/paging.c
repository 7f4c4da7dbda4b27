/* paging: builds its own 4-level page tables (the first 2 MiB identity
 * mapped with 4 KiB pages, the rest of the first 128 MiB with 2 MiB pages,
 * all supervisor-only) and a test window at virtual 0x40000000 whose page
 * table starts empty.  Then:
 *   - a read of an unmapped page: #PF, CR2 and error code printed, the
 *     handler maps a fresh page filled with a pattern and returns; the read
 *     is executed again and the value printed;
 *   - a write to an unmapped page: the same with a zeroed page;
 *   - a write to a read-only page: #PF with P|W, the handler makes the page
 *     writable, invlpg, returns, the write completes;
 *   - remapping a page to another frame, made visible once with invlpg and
 *     once with a CR3 reload;
 *   - the accessed and dirty bits of the test PTEs.
 * Nothing printed depends on where the kernel's frames are. */
#include "kernel.h"

#define PTE_P 0x001
#define PTE_W 0x002
#define PTE_U 0x004
#define PTE_A 0x020
#define PTE_D 0x040
#define PTE_PS 0x080

#define WINDOW 0x40000000ul             /* PML4[0], PDPT[1], PD[0] */

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd_low[512] __attribute__((aligned(4096)));
static uint64_t pt_low[512] __attribute__((aligned(4096)));
static uint64_t pd_win[512] __attribute__((aligned(4096)));
static uint64_t pt_win[512] __attribute__((aligned(4096)));

#define NFRAMES 8
static uint8_t frames[NFRAMES][4096] __attribute__((aligned(4096)));
static int next_frame;

static uint64_t alloc_frame(void)
{
    if (next_frame == NFRAMES)
        panic("out of frames");
    return (uint64_t)frames[next_frame++];
}

static volatile uint64_t *pte_of(uint64_t va)
{
    return &pt_win[(va - WINDOW) >> 12];
}

/* a PTE store the compiler may not move across the accesses it governs */
static void set_pte(uint64_t va, uint64_t val)
{
    *pte_of(va) = val;
    __asm__ volatile("" ::: "memory");
}

static void fill(uint64_t frame, uint32_t tag)
{
    uint32_t *w = (uint32_t *)frame;  /* frames are identity mapped */
    for (int i = 0; i < 1024; i++)
        w[i] = tag | (uint32_t)i;
}

static const char *describe(uint64_t err)
{
    switch (err & 7) {
    case 0: return "supervisor read, not present";
    case 2: return "supervisor write, not present";
    case 3: return "supervisor write, protection";
    default: return "unexpected";
    }
}

static int faults;

static void on_pf(struct frame *f)
{
    uint64_t cr2 = read_cr2();
    faults++;
    kprintf("#PF: CR2=0x%lx error=0x%lx (%s)\n", cr2, f->error, describe(f->error));
    if (cr2 < WINDOW || cr2 >= WINDOW + 0x200000)
        panic("page fault outside the test window");
    volatile uint64_t *pte = pte_of(cr2);
    if (!(f->error & PTE_P)) {
        uint64_t fr = alloc_frame();
        if (f->error & 2)
            memset((void *)fr, 0, 4096);
        else
            fill(fr, 0xC0DE0000);
        *pte = fr | PTE_P | PTE_W;
        kprintf("    mapped a fresh %s page\n", (f->error & 2) ? "zeroed" : "patterned");
    } else {
        *pte |= PTE_W;
        invlpg(cr2 & ~0xFFFul);
        kprintf("    made the page writable, invlpg\n");
    }
}

static void show_ad(const char *what, uint64_t va)
{
    uint64_t pte = *pte_of(va);
    kprintf("PTE of 0x%lx (%s): accessed=%d dirty=%d\n", va, what, !!(pte & PTE_A), !!(pte & PTE_D));
}

void kmain(void)
{
    idt_init();
    idt_set(14, on_pf);

    /* the page tables */
    pml4[0] = (uint64_t)pdpt | PTE_P | PTE_W;
    pdpt[0] = (uint64_t)pd_low | PTE_P | PTE_W;
    pdpt[1] = (uint64_t)pd_win | PTE_P | PTE_W;
    pd_low[0] = (uint64_t)pt_low | PTE_P | PTE_W;
    for (int i = 0; i < 512; i++)
        pt_low[i] = (uint64_t)i << 12 | PTE_P | PTE_W;
    for (int i = 1; i < 64; i++)        /* 2 MiB .. 128 MiB */
        pd_low[i] = (uint64_t)i << 21 | PTE_P | PTE_W | PTE_PS;
    pd_win[0] = (uint64_t)pt_win | PTE_P | PTE_W;
    write_cr0(read_cr0() | 0x10000);    /* WP: supervisor writes obey R/W */
    write_cr3((uint64_t)pml4);
    kprintf("own page tables loaded; window at 0x%lx is empty\n", WINDOW);

    /* 1. read of an unmapped page */
    volatile uint32_t *p = (volatile uint32_t *)(WINDOW + 0x1234);
    uint32_t v = *p;
    kprintf("read 0x%lx -> 0x%08x\n", (uint64_t)p, v);

    /* 2. write to an unmapped page */
    volatile uint32_t *q = (volatile uint32_t *)(WINDOW + 0x2010);
    *q = 0x12345678;
    kprintf("wrote 0x%lx, read back 0x%08x, next word 0x%08x\n", (uint64_t)q, *q, q[1]);

    /* 3. write to a read-only page */
    uint64_t ro = alloc_frame();
    fill(ro, 0x50000000);
    set_pte(WINDOW + 0x3000, ro | PTE_P);
    volatile uint32_t *r = (volatile uint32_t *)(WINDOW + 0x3008);
    kprintf("read-only page: 0x%lx holds 0x%08x\n", (uint64_t)r, *r);
    *r = 0xABCD0002;
    kprintf("after the fault the write went through: 0x%08x\n", *r);

    /* 4. remap a page to another frame: invlpg, then CR3 reload */
    uint64_t fa = alloc_frame(), fb = alloc_frame(), fc = alloc_frame();
    fill(fa, 0xAAAA0000);
    fill(fb, 0xBBBB0000);
    fill(fc, 0xCCCC0000);
    volatile uint32_t *s = (volatile uint32_t *)(WINDOW + 0x4010);
    set_pte(WINDOW + 0x4000, fa | PTE_P | PTE_W);
    kprintf("0x%lx -> frame A: 0x%08x\n", (uint64_t)s, *s);
    set_pte(WINDOW + 0x4000, fb | PTE_P | PTE_W);
    invlpg(WINDOW + 0x4000);
    kprintf("remapped to frame B, invlpg: 0x%08x\n", *s);
    set_pte(WINDOW + 0x4000, fc | PTE_P | PTE_W);
    write_cr3(read_cr3());
    kprintf("remapped to frame C, CR3 reload: 0x%08x\n", *s);

    /* 5. accessed and dirty bits */
    set_pte(WINDOW + 0x5000, alloc_frame() | PTE_P | PTE_W);
    show_ad("read only", WINDOW + 0x1000);
    show_ad("written", WINDOW + 0x2000);
    show_ad("written after #PF", WINDOW + 0x3000);
    show_ad("read only, remapped", WINDOW + 0x4000);
    show_ad("mapped, never touched", WINDOW + 0x5000);

    kprintf("%d page faults\n", faults);
    kprintf("powering off\n");
}
