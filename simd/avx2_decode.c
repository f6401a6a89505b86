/* AVX2 decode kernels (compiled with -mavx2 -mfma -mf16c): the primitives of
 * simd/decode_tmpl.h with 8-lane vectors and 16 ymm registers. Tiles: qk
 * 2 query rows x 4 keys (8 accumulators, one hadd tree for the 8 scores),
 * pv 2 rows x 32 output dims; Q8/Q4 values take their own P.V with the
 * block scales folded into P (avx2_decode_qpv.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define VL 8
typedef __m256 vf;
#define DEC_MR 2
#define DEC_NV 4

static inline vf vzero(void) { return _mm256_setzero_ps(); }
static inline vf vset1(float x) { return _mm256_set1_ps(x); }
static inline vf vload(const float *p) { return _mm256_load_ps(p); }
static inline void vstore(float *p, vf x) { _mm256_store_ps(p, x); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }

static inline void cvt_meta(const uint16_t *meta, int64_t n, float *out)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(meta + i))));
    if (i + 4 <= n) {
        _mm_storeu_ps(out + i, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(meta + i))));
        i += 4;
    }
    for (; i < n; i++)
        out[i] = _cvtsh_ss(meta[i]);
}

/* Loaders: 8 values from dim c (c % 8 == 0), n = values left in the row. */
static inline vf ld_f32(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    if (n >= 8)
        return _mm256_loadu_ps((const float *)row + c);
    float t[8] = { 0 };
    memcpy(t, (const float *)row + c, (size_t)n * 4);
    return _mm256_loadu_ps(t);
}
static inline __m128i ld_u16x8(const uint8_t *row, int64_t c, int64_t n)
{
    if (n >= 8)
        return _mm_loadu_si128((const __m128i *)((const uint16_t *)row + c));
    uint16_t t[8] = { 0 };
    memcpy(t, (const uint16_t *)row + c, (size_t)n * 2);
    return _mm_loadu_si128((const __m128i *)t);
}
static inline vf ld_f16(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    return _mm256_cvtph_ps(ld_u16x8(row, c, n));
}
static inline vf ld_bf16(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    __m256i w = _mm256_cvtepu16_epi32(ld_u16x8(row, c, n));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline vf ld_q8(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)n;
    __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + c))));
    return _mm256_mul_ps(x, _mm256_set1_ps(meta[c >> 5]));
}
static inline vf ld_q4(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)n;
    const int64_t o = c & 31;
    __m128i b = _mm_loadl_epi64((const __m128i *)(row + (c >> 5) * 16 + (o & 15)));
    if (o & 16)
        b = _mm_srli_epi16(b, 4);
    b = _mm_and_si128(b, _mm_set1_epi8(0x0f));
    __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
    const float *bm = meta + (c >> 5) * 2;
    return _mm256_fmadd_ps(x, _mm256_set1_ps(bm[0]), _mm256_set1_ps(bm[1]));
}

/* acc[4r + t] -> lanes 4r + t hold their horizontal sums. */
static inline void store_scores(const vf *acc, float *s, int64_t lds, int rn, int jn)
{
    __m256 h01 = _mm256_hadd_ps(acc[0], acc[1]), h23 = _mm256_hadd_ps(acc[2], acc[3]);
    __m256 h45 = _mm256_hadd_ps(acc[4], acc[5]), h67 = _mm256_hadd_ps(acc[6], acc[7]);
    __m256 x = _mm256_hadd_ps(h01, h23), y = _mm256_hadd_ps(h45, h67);
    x = _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
    const __m128i m4 = _mm_cmpgt_epi32(_mm_set1_epi32(jn), _mm_setr_epi32(0, 1, 2, 3));
    _mm_maskstore_ps(s, m4, _mm256_castps256_ps128(x));
    if (rn > 1)
        _mm_maskstore_ps(s + lds, m4, _mm256_extractf128_ps(x, 1));
}

#include "decode_tmpl.h"
#include "avx2_decode_qpv.h"

static const attn_cpu_decode_kernels avx2_decode = {
    .name = "avx2",
    .qk = dec_qk,
    .pv = avx2_pv,
};

const attn_cpu_decode_kernels *attn_cpu_decode_avx2(void)
{
    return &avx2_decode;
}
