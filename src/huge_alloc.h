/* Host allocations for large streamed buffers (the KV cache's page pool,
 * the CPU workspaces that hold packed K/V panels). */
#ifndef ATTN_HUGE_ALLOC_H
#define ATTN_HUGE_ALLOC_H

#include <stddef.h>

/* bytes of memory, 64-byte aligned, released with free(). From 2 MiB up it
 * is 2 MiB aligned and, on Linux, advised to use transparent huge pages. */
void *attn_huge_alloc(size_t bytes);

#endif
