/* Streaming (non-temporal) row stores, see stream_store.h.
 *
 * A plain store to a cold line first reads the line (RFO); element stores
 * of attn_sdpa's output rows then held the store buffer on those reads,
 * 4% of a one-thread causal call at S = 4096 (more with many threads
 * sharing the memory bus). Non-temporal stores fill whole lines in the
 * write-combining buffers and never read them. SSE2 is part of x86-64, so
 * no per-ISA build is needed; elsewhere (and for unaligned rows) the rows
 * are stored plainly. */
#include "config.h"
#include "stream_store.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void attn_cpu_store_scaled_stream(float *dst, const float *src, int64_t n, float scale)
{
    int64_t c = 0;
#if defined(__SSE2__)
    if (((uintptr_t)dst & 15) == 0) {
        const __m128 s = _mm_set1_ps(scale);
        for (; c + 4 <= n; c += 4)
            _mm_stream_ps(dst + c, _mm_mul_ps(s, _mm_loadu_ps(src + c)));
    }
#endif
    for (; c < n; c++)
        dst[c] = scale * src[c];
}

void attn_cpu_stream_fence(void)
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}
