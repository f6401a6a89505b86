/* Row stores that bypass the caches, for output rows nobody reads back
 * soon (attn_sdpa's output: one row per query and head, Hq * Dv floats
 * apart, cold when the task that computed it stores it). */
#ifndef ATTN_CPU_STREAM_STORE_H
#define ATTN_CPU_STREAM_STORE_H

#include <stdint.h>

/* dst[c] = scale * src[c] for c < n. */
void attn_cpu_store_scaled_stream(float *dst, const float *src, int64_t n, float scale);

/* Orders the streaming stores before any later store (x86: sfence); call
 * once after a batch of attn_cpu_store_scaled_stream calls. */
void attn_cpu_stream_fence(void);

#endif
