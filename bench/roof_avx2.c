/* AVX2 FMA-throughput loop for attn-bench's roof. Compiled with -mavx2 -mfma,
 * only where HAVE_AVX2_KERNELS. 12 independent ymm accumulator chains (of the
 * 16 ymm registers; two more hold the multiplier and addend): covers FMA
 * latency (4-5 cycles) times 2 FMA ports. acc = acc * m + a with m just
 * below 1 converges to a fixed point: no overflow, no denormals. */
#include <immintrin.h>
#include "roof.h"

#define NACC 12

uint64_t roof_fma_avx2(uint64_t iters, float *sink)
{
    __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
    __m256 c0 = _mm256_set1_ps(1.0f),  c1 = _mm256_set1_ps(1.01f), c2 = _mm256_set1_ps(1.02f),
           c3 = _mm256_set1_ps(1.03f), c4 = _mm256_set1_ps(1.04f), c5 = _mm256_set1_ps(1.05f),
           c6 = _mm256_set1_ps(1.06f), c7 = _mm256_set1_ps(1.07f), c8 = _mm256_set1_ps(1.08f),
           c9 = _mm256_set1_ps(1.09f), c10 = _mm256_set1_ps(1.10f), c11 = _mm256_set1_ps(1.11f);
    for (uint64_t i = 0; i < iters; i++) {
#define F(c) c = _mm256_fmadd_ps(c, m, a)
        F(c0); F(c1); F(c2); F(c3); F(c4); F(c5); F(c6); F(c7); F(c8); F(c9); F(c10); F(c11);
        F(c0); F(c1); F(c2); F(c3); F(c4); F(c5); F(c6); F(c7); F(c8); F(c9); F(c10); F(c11);
#undef F
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    *sink += _mm_cvtss_f32(h);
    return iters * 2u * NACC * 8u * 2u; /* 2 rounds x 12 chains x 8 lanes x 2 flops */
}
