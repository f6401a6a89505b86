/* Why huge pages: decode streams the whole KV cache once per call, and every
 * sdpa task streams a K/V panel of several MB (4.7 MB at Sk = 4096, D = 128:
 * 1150 pages of 4 KiB per pass, far more than the first-level TLB holds).
 * With 4 KiB pages every 4 KiB is a TLB miss, and under a hypervisor's nested
 * paging a miss costs a two-dimensional page walk; on machines whose
 * transparent huge pages are "madvise" only (a common default) memory gets
 * them only when asked. Measured on the 2-core development VM: decode f16
 * 94 -> 65 ns per key and KV head; sdpa 2-3% more per CPU-second. */
#include <stdint.h>
#include <stdlib.h>
#include "huge_alloc.h"

#ifdef __linux__
#include <sys/mman.h>
#endif

#define HUGE_PAGE ((size_t)2 << 20)

void *attn_huge_alloc(size_t bytes)
{
    if (bytes < HUGE_PAGE)
        return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (bytes > SIZE_MAX - HUGE_PAGE)
        return NULL;
    const size_t n = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p = aligned_alloc(HUGE_PAGE, n);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p)
        madvise(p, n, MADV_HUGEPAGE);   /* advice only: failure leaves 4 KiB pages */
#endif
    return p;
}
