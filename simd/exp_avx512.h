/* Vector expf for AVX-512F: Cody-Waite range reduction x = n ln2 + r,
 * |r| <= ln2/2, a degree-6 polynomial for e^r (Horner), and vscalefps for
 * 2^n (+inf on overflow). Results below FLT_MIN are flushed to 0 (x <
 * ln(FLT_MIN) = -87.34): subnormal results cost microcode assists on some
 * cores and are irrelevant to a softmax. -inf -> 0, NaN -> NaN. Max error
 * 1 ulp (tested over [-104, 88.7] against double-precision exp). */
#ifndef ATTN_EXP_AVX512_H
#define ATTN_EXP_AVX512_H

#include <immintrin.h>

/* e^x = 2^n e^r, r = x - n ln 2 (ln 2 in two parts, Cody-Waite), for n =
 * round(x log2 e) given; lanes outside keep are 0. */
static inline __m512 attn_exp_avx512_reduced(__m512 x, __m512 n, __mmask16 keep)
{
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    /* degree-6 Chebyshev fit of e^r on [-ln2/2, ln2/2] (rel. error 2e-9), Horner */
    __m512 p = _mm512_set1_ps(1.394110843e-3f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.375126398e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166635290e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666641551e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.000000047e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(keep, p, n);
}

static inline __m512 attn_exp_avx512(__m512 x)
{
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_NLT_UQ);
    /* lanes below the threshold (-inf included) compute garbage that the
     * final masked scalef discards; min with x second lets NaN through */
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return attn_exp_avx512_reduced(x, n, keep);
}

/* The same for x <= 0, -inf and NaN only (softmax: scores minus their
 * maximum): two vector uops fewer, for the softmax's share of the FMA
 * ports. No overflow clamp; n = round(x log2 e) by adding and subtracting
 * 1.5 * 2^23 (one FMA and one subtraction instead of a multiply and a
 * two-uop vrndscaleps), exact for |x log2 e| < 2^22. */
static inline __m512 attn_exp_avx512_nonpos(__m512 x)
{
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_NLT_UQ);
    const __m512 shift = _mm512_set1_ps(12582912.0f);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shift),
                                   shift);
    return attn_exp_avx512_reduced(x, n, keep);
}

#endif
