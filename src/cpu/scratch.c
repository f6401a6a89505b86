#include "scratch.h"

#include <stdlib.h>
#include "../huge_alloc.h"

static size_t round_bytes(size_t bytes)
{
    const size_t r = (bytes + 63) & ~(size_t)63;
    return r < bytes ? 0 : (r ? r : 64);
}

void *attn_cpu_scratch_acquire(attn_cpu_scratch *s, size_t bytes, int *kept)
{
    const size_t n = round_bytes(bytes);
    *kept = 0;
    if (n == 0)
        return NULL;
    if (atomic_flag_test_and_set_explicit(&s->busy, memory_order_acquire))
        return attn_huge_alloc(n);              /* another call owns the kept one */
    if (s->bytes < n) {
        free(s->mem);
        s->mem = attn_huge_alloc(n);
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
