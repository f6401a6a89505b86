/* The AVX-512 exps (simd/exp_avx512.h) through the ulp sweep. */
#include <immintrin.h>
#include "../simd/exp_avx512.h"

#define VL 16
#define EXP_ULP_FN attn_test_exp_ulp_avx512

static void exp_block(const float *x, float *y, int nonpos)
{
    const __m512 v = _mm512_loadu_ps(x);
    _mm512_storeu_ps(y, nonpos ? attn_exp_avx512_nonpos(v) : attn_exp_avx512(v));
}

#include "exp_ulp.h"
