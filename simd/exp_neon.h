/* Vector expf for AArch64 NEON: Cody-Waite range reduction x = n ln2 + r,
 * |r| <= ln2/2, a degree-7 (Cephes) polynomial for e^r, and 2^n applied as
 * two exact power-of-two factors 2^(n/2) 2^(n-n/2), so results down to the
 * overflow boundary are exact powers of two (+inf on overflow). Results
 * below FLT_MIN are flushed to 0 (x < ln(FLT_MIN) = -87.34): subnormal
 * results cost microcode assists on some cores and are irrelevant to a
 * softmax. -inf -> 0, NaN -> NaN. Max error 1 ulp. */
#ifndef ATTN_EXP_NEON_H
#define ATTN_EXP_NEON_H

#include <arm_neon.h>

static inline float32x4_t attn_exp_neon(float32x4_t x)
{
    const uint32x4_t flush = vcltq_f32(x, vdupq_n_f32(-87.33654f)); /* false for NaN */
    x = vmaxq_f32(x, vdupq_n_f32(-87.33654f));        /* fmax propagates NaN */
    x = vminq_f32(x, vdupq_n_f32(89.0f));
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    const float32x4_t r2 = vmulq_f32(r, r);
    p = vfmaq_f32(r, p, r2);
    p = vaddq_f32(p, vdupq_n_f32(1.0f));
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(vmulq_f32(vmulq_f32(p, s1), s2)), flush));
}

/* exp for x <= 0 (softmax: s - rowmax), -inf or NaN. Same reduction as
 * attn_exp_neon, a degree-6 Horner polynomial and 2^n added to the
 * exponent bits;
 * results below 2.7e-38 (x < -86.5) are flushed to 0. Max error 1 ulp above. */
static inline float32x4_t attn_exp_neon_nonpos(float32x4_t x)
{
    const uint32x4_t flush = vcltq_f32(x, vdupq_n_f32(-86.5f)); /* false for NaN */
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    /* degree-6 Chebyshev fit of e^r on [-ln2/2, ln2/2] (rel. error 2e-9), Horner */
    float32x4_t p = vdupq_n_f32(1.394110843e-3f);
    p = vfmaq_f32(vdupq_n_f32(8.375126398e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.166635290e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.666641551e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.000000047e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t e = vshlq_n_s32(vcvtq_s32_f32(n), 23);
    const uint32x4_t y = vreinterpretq_u32_s32(vaddq_s32(vreinterpretq_s32_f32(p), e));
    return vreinterpretq_f32_u32(vbicq_u32(y, flush));
}

#endif
