/* AVX-512 decode kernels (compiled with the AVX512 flags of configure.ac):
 * the primitives of simd/decode_tmpl.h with 16-lane vectors. Tiles: qk 4
 * query rows x 4 keys (16 accumulators, one 16-way transpose-reduction gives
 * the 16 scores), pv 4 rows x 64 output dims. Loaders dequantise 16 values
 * in registers: F16 vcvtph2ps, BF16 shift, Q8 int8 -> f32 times the block
 * scale, Q4 nibbles -> f32 times scale plus min. Q8/Q4 values take their
 * own P.V, with the block scales folded into P (avx512_decode_qpv.h); with
 * AVX512-VNNI, Q8/Q4 scores use integer dot products (avx512_decode_vnni.h)
 * and so does their P.V, on 16-bit weights for Q8 (avx512_decode_wpv.h)
 * and 8-bit ones for Q4 (avx512_decode_bpv.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <immintrin.h>
#include <stdint.h>

#define VL 16
typedef __m512 vf;
#define DEC_MR 4
#define DEC_NV 4

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

static inline vf vzero(void) { return _mm512_setzero_ps(); }
static inline vf vset1(float x) { return _mm512_set1_ps(x); }
static inline vf vload(const float *p) { return _mm512_load_ps(p); }
static inline void vstore(float *p, vf x) { _mm512_store_ps(p, x); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }

static inline void cvt_meta(const uint16_t *meta, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes(n - i), meta + i)));
}

static inline vf ld_f32(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    return _mm512_maskz_loadu_ps(lanes(n), (const float *)row + c);
}
static inline vf ld_f16(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes(n), (const uint16_t *)row + c));
}
static inline vf ld_bf16(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes(n), (const uint16_t *)row + c));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline vf ld_q8(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)n;
    __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(row + c))));
    return _mm512_mul_ps(x, _mm512_set1_ps(meta[c >> 5]));
}
static inline vf ld_q4(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)n;
    __m128i b = _mm_loadu_si128((const __m128i *)(row + (c >> 5) * 16));
    if (c & 16)
        b = _mm_srli_epi16(b, 4);
    b = _mm_and_si128(b, _mm_set1_epi8(0x0f));
    __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
    const float *bm = meta + (c >> 5) * 2;
    return _mm512_fmadd_ps(x, _mm512_set1_ps(bm[0]), _mm512_set1_ps(bm[1]));
}

/* Horizontal sums of 16 accumulators a[4r + t]: lane 4t + r = sum(a[4r + t]). */
static inline __m512 reduce16(const __m512 *a)
{
    __m512 b[8], e[4];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)     /* 512 -> 256 per accumulator, two per vector */
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee));
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++)     /* 256 -> 128: quarters hold a[4i..4i+3] */
        e[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd));
    /* quarter q of e[i] holds accumulator 4i + q (4 partial lanes) */
    __m512 f = _mm512_add_ps(_mm512_unpacklo_ps(e[0], e[1]), _mm512_unpackhi_ps(e[0], e[1]));
    __m512 g = _mm512_add_ps(_mm512_unpacklo_ps(e[2], e[3]), _mm512_unpackhi_ps(e[2], e[3]));
    /* quarter q: f = [x0+x2, y0+y2, x1+x3, y1+y3] with x = acc q, y = acc 4+q */
    /* quarter q lanes: [acc q, acc 4+q, acc 8+q, acc 12+q] -> lane 4q + i = acc 4i + q */
    return _mm512_add_ps(_mm512_shuffle_ps(f, g, 0x44), _mm512_shuffle_ps(f, g, 0xee));
}

/* Horizontal maxima of 8 vectors at once: out[i] = max over the lanes of
 * a[i] (the same steps as reduce16, in one chain instead of eight). */
static inline void reduce_max8(const __m512 *a, float *out)
{
    __m512 t[4], u[2];
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++)     /* 512 -> 256: lanes 0-1 a[2i], 2-3 a[2i + 1] */
        t[i] = _mm512_max_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee));
    _Pragma("GCC unroll 2") for (int i = 0; i < 2; i++)     /* 256 -> 128: quarter q holds a[4i + q] */
        u[i] = _mm512_max_ps(_mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], 0xdd));
    /* quarter q: [x0|x2, y0|y2, x1|x3, y1|y3] maxima, x = a[q], y = a[4 + q] */
    const __m512 f = _mm512_max_ps(_mm512_unpacklo_ps(u[0], u[1]), _mm512_unpackhi_ps(u[0], u[1]));
    const __m512 g = _mm512_max_ps(f, _mm512_permute_ps(f, 0x4e));
    float x[16] __attribute__((aligned(64)));
    _mm512_store_ps(x, g);   /* quarter q: [max a[q], max a[4 + q], ...] */
    for (int q = 0; q < 4; q++) {
        out[q] = x[4 * q];
        out[4 + q] = x[4 * q + 1];
    }
}

/* lane 4t + r of the reduction is (row r, key t): make it lane 4r + t */
static inline void store_scores(const vf *acc, float *s, int64_t lds, int rn, int jn)
{
    const __m512 x = _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), reduce16(acc));
    const __mmask8 m4 = (__mmask8)((1u << jn) - 1u);
    _mm_mask_storeu_ps(s, m4, _mm512_castps512_ps128(x));
    if (rn > 1) _mm_mask_storeu_ps(s + lds, m4, _mm512_extractf32x4_ps(x, 1));
    if (rn > 2) _mm_mask_storeu_ps(s + 2 * lds, m4, _mm512_extractf32x4_ps(x, 2));
    if (rn > 3) _mm_mask_storeu_ps(s + 3 * lds, m4, _mm512_extractf32x4_ps(x, 3));
}

#include "decode_tmpl.h"
#include "avx512_decode_meta.h"
#include "avx512_decode_qpv.h"
#include "avx512_decode_vnni.h"
#include "avx512_decode_wpv.h"
#include "avx512_decode_bpv.h"

static const attn_cpu_decode_kernels avx512_decode = {
    .name = "avx512",
    .qk = dec_qk,
    .pv = avx512_pv,
};

static const attn_cpu_decode_kernels avx512_vnni_decode = {
    .name = "avx512_vnni",
    .qk = dec_qk,
    .pv = vnni_pv,
    .prep_bytes = vnni_prep_bytes,
    .prep_q = vnni_prep_q,
    .qk_prepared = vnni_qk_prepared,
};

const attn_cpu_decode_kernels *attn_cpu_decode_avx512(void)
{
    return &avx512_decode;
}

const attn_cpu_decode_kernels *attn_cpu_decode_avx512_vnni(void)
{
    return &avx512_vnni_decode;
}
