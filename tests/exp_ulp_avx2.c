/* The AVX2 exps (simd/exp_avx2.h) through the ulp sweep. */
#include <immintrin.h>
#include "../simd/exp_avx2.h"

#define VL 8
#define EXP_ULP_FN attn_test_exp_ulp_avx2

static void exp_block(const float *x, float *y, int nonpos)
{
    const __m256 v = _mm256_loadu_ps(x);
    _mm256_storeu_ps(y, nonpos ? attn_exp_avx2_nonpos(v) : attn_exp_avx2(v));
}

#include "exp_ulp.h"
