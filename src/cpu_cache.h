/* The size of the cache level that CPU work streams through last. */
#ifndef ATTN_CPU_CACHE_H
#define ATTN_CPU_CACHE_H

#include <stddef.h>

/* Bytes of the last-level cache that CPU 0 shares with its neighbours (the
 * L3 of its core complex on a chiplet CPU, not the socket's sum, which is
 * what sysconf(_SC_LEVEL3_CACHE_SIZE) reports there); 0 where unknown.
 * Read from Linux sysfs once per process; thread-safe. */
size_t attn_cpu_llc_bytes(void);

#endif
