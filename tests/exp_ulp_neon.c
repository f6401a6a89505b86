/* The NEON exps (simd/exp_neon.h) through the ulp sweep. */
#include <arm_neon.h>
#include "../simd/exp_neon.h"

#define VL 4
#define EXP_ULP_FN attn_test_exp_ulp_neon

static void exp_block(const float *x, float *y, int nonpos)
{
    const float32x4_t v = vld1q_f32(x);
    vst1q_f32(y, nonpos ? attn_exp_neon_nonpos(v) : attn_exp_neon(v));
}

#include "exp_ulp.h"
