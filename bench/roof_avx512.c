/* AVX-512 FMA-throughput loop for attn-bench's roof. Compiled with
 * -mavx512f -mavx512bw -mavx512vl -mfma, only where HAVE_AVX512_KERNELS.
 * 16 independent zmm accumulator chains: covers FMA latency (4 cycles)
 * times 2 FMA ports with room to spare, and leaves registers for the
 * multiplier and addend. Each chain computes acc = acc * m + a with m just
 * below 1, so values converge to a fixed point: no overflow, no denormals. */
#include <immintrin.h>
#include "roof.h"

#define NACC 16

uint64_t roof_fma_avx512(uint64_t iters, float *sink)
{
    __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
    __m512 c0 = _mm512_set1_ps(1.0f),  c1 = _mm512_set1_ps(1.01f), c2 = _mm512_set1_ps(1.02f),
           c3 = _mm512_set1_ps(1.03f), c4 = _mm512_set1_ps(1.04f), c5 = _mm512_set1_ps(1.05f),
           c6 = _mm512_set1_ps(1.06f), c7 = _mm512_set1_ps(1.07f), c8 = _mm512_set1_ps(1.08f),
           c9 = _mm512_set1_ps(1.09f), c10 = _mm512_set1_ps(1.10f), c11 = _mm512_set1_ps(1.11f),
           c12 = _mm512_set1_ps(1.12f), c13 = _mm512_set1_ps(1.13f), c14 = _mm512_set1_ps(1.14f),
           c15 = _mm512_set1_ps(1.15f);
    for (uint64_t i = 0; i < iters; i++) {
#define F(c) c = _mm512_fmadd_ps(c, m, a)
        F(c0); F(c1); F(c2); F(c3); F(c4); F(c5); F(c6); F(c7);
        F(c8); F(c9); F(c10); F(c11); F(c12); F(c13); F(c14); F(c15);
        F(c0); F(c1); F(c2); F(c3); F(c4); F(c5); F(c6); F(c7);
        F(c8); F(c9); F(c10); F(c11); F(c12); F(c13); F(c14); F(c15);
#undef F
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)),
                                       _mm512_add_ps(_mm512_add_ps(c12, c13), _mm512_add_ps(c14, c15))));
    *sink += _mm512_reduce_add_ps(s);
    return iters * 2u * NACC * 16u * 2u; /* 2 rounds x 16 chains x 16 lanes x 2 flops */
}
