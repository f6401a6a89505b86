/* Vector expf for AVX-512F: Cody-Waite range reduction x = n ln2 + r,
 * |r| <= ln2/2, a degree-6 polynomial for e^r (Horner), and vscalefps for
 * 2^n (+inf on overflow); the softmax's variant for x <= 0 uses a table
 * (below). Results below FLT_MIN are flushed to 0 (x <
 * ln(FLT_MIN) = -87.34): subnormal results cost microcode assists on some
 * cores and are irrelevant to a softmax. -inf -> 0, NaN -> NaN. Max error
 * 1 ulp (tested over [-104, 88.7] against double-precision exp). */
#ifndef ATTN_EXP_AVX512_H
#define ATTN_EXP_AVX512_H

#include <immintrin.h>
#include <stdint.h>

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

/* 2^(i/32), i < 32, as bit patterns less the exponent and index bits that
 * attn_exp_avx512_nonpos adds back: bits(2^(i/32)) - (127 << 23) - (i << 18). */
static const int32_t attn_exp2_32_bits[32] __attribute__((aligned(64))) = {
    (int32_t)0x00000000, (int32_t)0xfffecd87, (int32_t)0xfffdaac3, (int32_t)0xfffc980f,
    (int32_t)0xfffb95c2, (int32_t)0xfffaa43a, (int32_t)0xfff9c3d3, (int32_t)0xfff8f4f0,
    (int32_t)0xfff837f0, (int32_t)0xfff78d3a, (int32_t)0xfff6f532, (int32_t)0xfff67043,
    (int32_t)0xfff5fed7, (int32_t)0xfff5a15b, (int32_t)0xfff5583f, (int32_t)0xfff523f6,
    (int32_t)0xfff504f3, (int32_t)0xfff4fbaf, (int32_t)0xfff508a4, (int32_t)0xfff52c4d,
    (int32_t)0xfff5672a, (int32_t)0xfff5b9be, (int32_t)0xfff6248c, (int32_t)0xfff6a81e,
    (int32_t)0xfff744fd, (int32_t)0xfff7fbb8, (int32_t)0xfff8ccdf, (int32_t)0xfff9b907,
    (int32_t)0xfffac0c7, (int32_t)0xfffbe4ba, (int32_t)0xfffd257d, (int32_t)0xfffe83b3,
};

/* The same for x <= 0 (small positive x from rounding is fine too), -inf
 * and NaN (softmax: scores minus their maximum), with fewer FMA-port uops,
 * of which the softmax is made: x = (32 k + i) ln2/32 + r, |r| <= ln2/64,
 * e^x = 2^k 2^(i/32) e^r with 2^(i/32) from a 32-entry table (two
 * registers, one vpermt2d) and e^r - 1 a degree-3 Taylor polynomial
 * (relative error 6e-10). n = 32 k + i = round(x 32/ln2) comes from adding
 * 1.5 2^23 + 127 * 32: the sum's low bits hold n + 127 * 32, which shifted
 * left by 18 are the exponent field of 2^k (biased) over i in the top
 * mantissa bits, which the table entry takes back out. 7 FMA-port uops
 * instead of the 10 of the degree-6 form; max error 1.0 ulp, as before.
 * On a Zen 5 core: attn_sdpa 2048 x 2048, D 64, H 4 20.4-20.7 -> 20.1 ms;
 * neighborhood 128x128, kernel 13, D 64, H 4 21.95 -> 21.8 ms. */
static inline __m512 attn_exp_avx512_nonpos(__m512 x)
{
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_NLT_UQ);
    const __m512 magic = _mm512_set1_ps(12582912.0f + 4064.0f);
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(46.16624069f), magic);
    const __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.02166748046875f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-6.631076303e-6f), r);
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(0.166666672f), r, _mm512_set1_ps(0.5f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    q = _mm512_mul_ps(q, r);
    const __m512i ti = _mm512_castps_si512(t);
    const __m512i tab = _mm512_permutex2var_epi32(_mm512_load_si512(attn_exp2_32_bits), ti,
                                                  _mm512_load_si512(attn_exp2_32_bits + 16));
    const __m512 sc = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(ti, 18), tab));
    return _mm512_maskz_fmadd_ps(keep, q, sc, sc);
}

#endif
