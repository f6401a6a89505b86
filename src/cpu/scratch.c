#include "scratch.h"

#include <stdlib.h>
#include <sys/mman.h>

static size_t round_bytes(size_t bytes)
{
    const size_t r = (bytes + 63) & ~(size_t)63;
    return r < bytes ? 0 : (r ? r : 64);
}

/* Workspaces of 2 MiB and more are 2 MiB-aligned and asked for transparent
 * huge pages (Linux, where THP is "madvise"): every sdpa task streams a
 * 4.7 MB K/V panel (Sk = 4096, D = 128), 1150 pages of 4 KiB per pass, far
 * more than the first-level TLB holds, and in a virtual machine each TLB
 * miss is a two-dimensional page walk. 2-3% more per CPU-second at 1 thread
 * on the (busy) 2-core development VM. */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

static void *alloc_workspace(size_t n)
{
#ifdef MADV_HUGEPAGE
    if (n >= HUGE_PAGE_BYTES) {
        const size_t m = (n + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
        void *mem = m < n ? NULL : aligned_alloc(HUGE_PAGE_BYTES, m);
        if (mem)
            madvise(mem, m, MADV_HUGEPAGE);   /* a hint: failure changes nothing */
        return mem;
    }
#endif
    return aligned_alloc(64, n);
}

void *attn_cpu_scratch_acquire(attn_cpu_scratch *s, size_t bytes, int *kept)
{
    const size_t n = round_bytes(bytes);
    *kept = 0;
    if (n == 0)
        return NULL;
    if (atomic_flag_test_and_set_explicit(&s->busy, memory_order_acquire))
        return alloc_workspace(n);              /* another call owns the kept one */
    if (s->bytes < n) {
        free(s->mem);
        s->mem = alloc_workspace(n);
        s->bytes = s->mem ? n : 0;
        if (!s->mem) {
            atomic_flag_clear_explicit(&s->busy, memory_order_release);
            return NULL;
        }
    }
    *kept = 1;
    return s->mem;
}

void attn_cpu_scratch_release(attn_cpu_scratch *s, void *mem, int kept)
{
    if (!kept) {
        free(mem);
        return;
    }
    if (s->bytes > ATTN_CPU_SCRATCH_KEEP) {
        free(s->mem);
        s->mem = NULL;
        s->bytes = 0;
    }
    atomic_flag_clear_explicit(&s->busy, memory_order_release);
}

void attn_cpu_scratch_free(attn_cpu_scratch *s)
{
    free(s->mem);
    s->mem = NULL;
    s->bytes = 0;
}
