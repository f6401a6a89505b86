/* Vector expf for AVX2+FMA: Cody-Waite range reduction x = n ln2 + r,
 * |r| <= ln2/2, a degree-7 (Cephes) polynomial for e^r, and 2^n applied as
 * two exact power-of-two factors 2^(n/2) 2^(n-n/2), so results down to the
 * overflow boundary are exact powers of two (+inf on overflow). Results
 * below FLT_MIN are flushed to 0 (x < ln(FLT_MIN) = -87.34): subnormal
 * results cost microcode assists on some cores and are irrelevant to a
 * softmax. -inf -> 0, NaN -> NaN. Max error 1 ulp. */
#ifndef ATTN_EXP_AVX2_H
#define ATTN_EXP_AVX2_H

#include <immintrin.h>

static inline __m256 attn_exp_avx2(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    const __m256 flush = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);  /* false for NaN */
    x = _mm256_max_ps(lo, x);                          /* NaN x passes through */
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n);          /* -126 .. 128 (NaN: garbage, p stays NaN) */
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_andnot_ps(flush, _mm256_mul_ps(_mm256_mul_ps(p, s1), s2));
}

/* exp for x <= 0 (softmax: s - rowmax), -inf or NaN. Same reduction as
 * attn_exp_avx2, a degree-6 Horner polynomial (2 fewer instructions) and
 * 2^n added to the exponent bits (no two-factor scaling); results below 2.7e-38 (x <
 * -86.5) are flushed to 0. Max error 1 ulp above that. */
static inline __m256 attn_exp_avx2_nonpos(__m256 x)
{
    const __m256 flush = _mm256_cmp_ps(x, _mm256_set1_ps(-86.5f), _CMP_LT_OQ); /* false for NaN */
    /* t = x log2 e + 1.5 * 2^23 rounds x log2 e to the integer n in t's low
     * mantissa bits (|n| < 2^22): n = t - 1.5 * 2^23 without vroundps (2
     * uops), and t's bits shifted left by 23 are n << 23 (the constant's
     * bits all lie at 22 and above), without vcvtps2dq. */
    const __m256 shift = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shift);
    const __m256 n = _mm256_sub_ps(t, shift);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    /* degree-6 Chebyshev fit of e^r on [-ln2/2, ln2/2] (rel. error 2e-9), Horner */
    __m256 p = _mm256_set1_ps(1.394110843e-3f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.375126398e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166635290e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666641551e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.000000047e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(t), 23);  /* n in [-125, 0] where kept */
    return _mm256_andnot_ps(flush, _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e)));
}

#endif
