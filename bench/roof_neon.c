/* NEON (aarch64 Advanced SIMD) FMA-throughput loop for attn-bench's roof.
 * Compiled only on aarch64 where HAVE_NEON_KERNELS. 24 independent q-register
 * chains (of 32): covers FMA latency (4 cycles) times up to 4 FMA pipes
 * (Neoverse V1/V2) with room to spare. Each chain is
 * acc = vfmaq_f32(a, acc, m) = a + acc * m with m just below 1: it converges
 * to a fixed point, no overflow, no denormals. */
#include <arm_neon.h>
#include "roof.h"

#define NACC 24

uint64_t roof_fma_neon(uint64_t iters, float *sink)
{
    float32x4_t m = vdupq_n_f32(0.999999f), a = vdupq_n_f32(1e-6f);
    float32x4_t c[NACC];
    for (int j = 0; j < NACC; j++)
        c[j] = vdupq_n_f32(1.0f + 0.01f * (float)j);
    for (uint64_t i = 0; i < iters; i++) {
        /* Fully unrolled by the compiler: NACC is a constant and c[] stays in registers. */
#pragma GCC unroll 24
        for (int j = 0; j < NACC; j++)
            c[j] = vfmaq_f32(a, c[j], m);
#pragma GCC unroll 24
        for (int j = 0; j < NACC; j++)
            c[j] = vfmaq_f32(a, c[j], m);
    }
    float32x4_t s = c[0];
    for (int j = 1; j < NACC; j++)
        s = vaddq_f32(s, c[j]);
    *sink += vaddvq_f32(s);
    return iters * 2u * NACC * 4u * 2u; /* 2 rounds x 24 chains x 4 lanes x 2 flops */
}
