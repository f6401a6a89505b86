/* A per-device workspace kept across calls.
 *
 * The drivers need tens of MiB of workspace (packed K/V panels, partial
 * outputs) per call. Fresh allocations of that size come from mmap, and the
 * kernel zeroes every page again on first touch: for short calls (decode,
 * sliding windows, small batches) that page clearing took 10-20% of the
 * time. Each CPU device therefore keeps its last workspace. One caller at a
 * time owns it (a try-lock); a call made while another thread holds it gets
 * a private allocation instead, so a context stays usable from any number
 * of threads. */
#ifndef ATTN_CPU_SCRATCH_H
#define ATTN_CPU_SCRATCH_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct attn_cpu_scratch {
    atomic_flag busy;
    void       *mem;     /* 64-byte aligned, `bytes` long, or NULL */
    size_t      bytes;
} attn_cpu_scratch;

/* Largest workspace kept after a call; bigger ones are freed on release. */
#define ATTN_CPU_SCRATCH_KEEP ((size_t)256 << 20)

/* At least `bytes` of 64-byte-aligned memory, NULL when out of memory.
 * *kept tells whether it is the device's kept workspace. */
void *attn_cpu_scratch_acquire(attn_cpu_scratch *s, size_t bytes, int *kept);
/* Gives back what attn_cpu_scratch_acquire returned (NULL is a no-op). */
void attn_cpu_scratch_release(attn_cpu_scratch *s, void *mem, int kept);
/* Frees the kept workspace (context destruction; no call may be running). */
void attn_cpu_scratch_free(attn_cpu_scratch *s);

#endif
