/* AVX-512 decode kernels (compiled with the AVX512 flags of configure.ac).
 *
 * K/V rows are read straight from cache pages and dequantised in registers,
 * 16 values at a time (F32 load, F16 vcvtph2ps, BF16 shift, Q8 int8 -> f32
 * times the block scale, Q4 nibbles -> f32 times scale plus min).
 *   qk: tiles of up to 4 query rows x 4 keys: 16 dot-product accumulators
 *       over D, then one 16-way transpose-reduction gives the 16 scores.
 *       Each K chunk is dequantised once per tile for all its rows.
 *   pv: up to 4 rows x 64 output dims held in 16 accumulators while the
 *       tile's V rows stream through, p broadcast per (row, key). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <immintrin.h>
#include <stdint.h>
#include "../src/cpu/decode_kernels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Keys ahead to prefetch (8-64 measured alike on a 16-core Xeon). */
enum { pf_dist = 8 };

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

/* A row's f16 block parameters (Q8 scales, Q4 scale/min pairs) as floats:
 * converted once per row, then broadcast from memory by the loaders. */
ALWAYS_INLINE void cvt_meta(const uint16_t *meta, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes(n - i), meta + i)));
}

/* Block parameters per row: at most 2 * 4096 / 32, rounded up to whole vectors. */
#define MAX_META 256

/* 16 values of a row from dim c (c % 16 == 0), lanes beyond `m` zero. */
ALWAYS_INLINE __m512 ld_f32(const uint8_t *row, const float *meta, int64_t c, __mmask16 m)
{
    (void)meta;
    return _mm512_maskz_loadu_ps(m, (const float *)row + c);
}
ALWAYS_INLINE __m512 ld_f16(const uint8_t *row, const float *meta, int64_t c, __mmask16 m)
{
    (void)meta;
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c));
}
ALWAYS_INLINE __m512 ld_bf16(const uint8_t *row, const float *meta, int64_t c, __mmask16 m)
{
    (void)meta;
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
ALWAYS_INLINE __m512 ld_q8(const uint8_t *row, const float *meta, int64_t c, __mmask16 m)
{
    (void)m;
    __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(row + c))));
    return _mm512_mul_ps(x, _mm512_set1_ps(meta[c >> 5]));
}
ALWAYS_INLINE __m512 ld_q4(const uint8_t *row, const float *meta, int64_t c, __mmask16 m)
{
    (void)m;
    __m128i b = _mm_loadu_si128((const __m128i *)(row + (c >> 5) * 16));
    if (c & 16)
        b = _mm_srli_epi16(b, 4);
    b = _mm_and_si128(b, _mm_set1_epi8(0x0f));
    __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
    const float *bm = meta + (c >> 5) * 2;
    return _mm512_fmadd_ps(x, _mm512_set1_ps(bm[0]), _mm512_set1_ps(bm[1]));
}

/* a[0..15] -> r with r[4t + q] = sum(a[4q + t]) ... see below; we return lane
 * 4*t + r = sum(a[r*4 + t]) for accumulators indexed a[r*4 + t]. */
ALWAYS_INLINE __m512 reduce16(const __m512 *a)
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
    return _mm512_add_ps(_mm512_shuffle_ps(f, g, 0x44), _mm512_shuffle_ps(f, g, 0xee));
    /* quarter q lanes: [acc q, acc 4+q, acc 8+q, acc 12+q] -> lane 4q + i = acc 4i + q */
}

#define DEFINE_KERNELS(T, LD)                                                                   \
ALWAYS_INLINE void qk_tile_##T(const float *const *qr, const attn_kv_rows *k, int j0, int jn,     \
                               int64_t d, float *s, int64_t lds, int rn)                        \
{                                                                                               \
    const uint8_t *kd[4];                                                                       \
    const float *km[4];                                                                         \
    float fm[4][MAX_META];                                                                      \
    _Pragma("GCC unroll 16") for (int t = 0; t < 4; t++) {                                      \
        const int64_t jj = j0 + (t < jn ? t : jn - 1);                                          \
        kd[t] = k->data + jj * k->row_bytes;                                                    \
        km[t] = fm[t];                                                                          \
        if (k->meta_per_row)                                                                    \
            cvt_meta(k->meta + jj * k->meta_per_row, k->meta_per_row, fm[t]);                   \
    }                                                                                           \
    for (int64_t b = 0; b < 4 * k->row_bytes; b += 64)   /* the block PF keys ahead */       \
        _mm_prefetch((const char *)(k->data + (j0 + pf_dist) * k->row_bytes + b), _MM_HINT_T0); \
    __m512 acc[16];                                                                             \
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();                                  \
    for (int64_t c = 0; c < d; c += 16) {                                                       \
        const __mmask16 m = lanes(d - c);                                                       \
        __m512 kv[4];                                                                           \
        _Pragma("GCC unroll 16") for (int t = 0; t < 4; t++) kv[t] = LD(kd[t], km[t], c, m);                             \
        _Pragma("GCC unroll 16") for (int r = 0; r < 4; r++) {                                                           \
            const __m512 qv = _mm512_load_ps(qr[r] + c);                                        \
            _Pragma("GCC unroll 16") for (int t = 0; t < 4; t++) acc[r * 4 + t] = _mm512_fmadd_ps(qv, kv[t], acc[r * 4 + t]); \
        }                                                                                       \
    }                                                                                           \
    /* lane 4t + r of the reduction is (row r, key t); make it lane 4r + t */                 \
    const __m512 x = _mm512_permutexvar_ps(                                                     \
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), reduce16(acc)); \
    const __mmask8 m4 = (__mmask8)((1u << jn) - 1u);                                            \
    _mm_mask_storeu_ps(s, m4, _mm512_castps512_ps128(x));                                       \
    if (rn > 1) _mm_mask_storeu_ps(s + lds, m4, _mm512_extractf32x4_ps(x, 1));                  \
    if (rn > 2) _mm_mask_storeu_ps(s + 2 * lds, m4, _mm512_extractf32x4_ps(x, 2));              \
    if (rn > 3) _mm_mask_storeu_ps(s + 3 * lds, m4, _mm512_extractf32x4_ps(x, 3));              \
}                                                                                               \
static void qk_##T(const float *q, int64_t ldq, int nr, const attn_kv_rows *k, attn_dtype dt,   \
                   int nk, int64_t d, float *s, int64_t lds)                                    \
{                                                                                               \
    (void)dt;                                                                                   \
    for (int r0 = 0; r0 < nr; r0 += 4) {                                                        \
        const int rn = nr - r0 < 4 ? nr - r0 : 4;                                               \
        const float *qr[4];                                                                     \
        for (int r = 0; r < 4; r++) qr[r] = q + (r0 + (r < rn ? r : rn - 1)) * ldq;             \
        for (int j0 = 0; j0 < nk; j0 += 4) {                                                    \
            const int jn = nk - j0 < 4 ? nk - j0 : 4;                                           \
            qk_tile_##T(qr, k, j0, jn, d, s + r0 * lds + j0, lds, rn);                         \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
static void pv_##T(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,   \
                   int nk, int64_t dv, float *o, int64_t ldo)                                   \
{                                                                                               \
    (void)dt;                                                                                   \
    for (int r0 = 0; r0 < nr; r0 += 4) {                                                        \
        const int rn = nr - r0 < 4 ? nr - r0 : 4;                                               \
        const float *pr[4];                                                                     \
        for (int r = 0; r < 4; r++) pr[r] = p + (r0 + (r < rn ? r : rn - 1)) * ldp;             \
        for (int64_t c0 = 0; c0 < dv; c0 += 64) {                                               \
            __m512 acc[4][4];                                                                   \
            _Pragma("GCC unroll 16") for (int r = 0; r < 4; r++)                                                         \
                _Pragma("GCC unroll 16") for (int cc = 0; cc < 4; cc++)                                                  \
                    acc[r][cc] = (r < rn && c0 + 16 * cc < dv) ?                                \
                        _mm512_load_ps(o + (r0 + r) * ldo + c0 + 16 * cc) : _mm512_setzero_ps(); \
            for (int j = 0; j < nk; j++) {                                                      \
                const uint8_t *vd = v->data + j * v->row_bytes;                                 \
                float vm[MAX_META];                                                             \
                if (v->meta_per_row)                                                            \
                    cvt_meta(v->meta + j * v->meta_per_row, v->meta_per_row, vm);               \
                if (c0 == 0)                                                                    \
                    for (int64_t b = 0; b < v->row_bytes; b += 64)                              \
                        _mm_prefetch((const char *)(vd + pf_dist * v->row_bytes + b), _MM_HINT_T0); \
                __m512 vv[4];                                                                   \
                _Pragma("GCC unroll 16") for (int cc = 0; cc < 4; cc++)                                                  \
                    vv[cc] = c0 + 16 * cc < dv ? LD(vd, vm, c0 + 16 * cc, lanes(dv - c0 - 16 * cc)) \
                                               : _mm512_setzero_ps();                           \
                _Pragma("GCC unroll 16") for (int r = 0; r < 4; r++) {                                                   \
                    const __m512 pj = _mm512_set1_ps(pr[r][j]);                                 \
                    _Pragma("GCC unroll 16") for (int cc = 0; cc < 4; cc++) acc[r][cc] = _mm512_fmadd_ps(pj, vv[cc], acc[r][cc]); \
                }                                                                               \
            }                                                                                   \
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)                                 \
                _Pragma("GCC unroll 4") for (int cc = 0; cc < 4; cc++)                          \
                    if (r < rn && c0 + 16 * cc < dv)                                            \
                        _mm512_store_ps(o + (r0 + r) * ldo + c0 + 16 * cc, acc[r][cc]);         \
        }                                                                                       \
    }                                                                                           \
}

DEFINE_KERNELS(f32, ld_f32)
DEFINE_KERNELS(f16, ld_f16)
DEFINE_KERNELS(bf16, ld_bf16)
DEFINE_KERNELS(q8, ld_q8)
DEFINE_KERNELS(q4, ld_q4)

static void avx512_qk(const float *q, int64_t ldq, int nr, const attn_kv_rows *k, attn_dtype dt,
                      int nk, int64_t d, float *s, int64_t lds)
{
    switch (dt) {
    case ATTN_F16:  qk_f16(q, ldq, nr, k, dt, nk, d, s, lds); break;
    case ATTN_BF16: qk_bf16(q, ldq, nr, k, dt, nk, d, s, lds); break;
    case ATTN_Q8:   qk_q8(q, ldq, nr, k, dt, nk, d, s, lds); break;
    case ATTN_Q4:   qk_q4(q, ldq, nr, k, dt, nk, d, s, lds); break;
    default:        qk_f32(q, ldq, nr, k, dt, nk, d, s, lds); break;
    }
}

static void avx512_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                      int nk, int64_t dv, float *o, int64_t ldo)
{
    switch (dt) {
    case ATTN_F16:  pv_f16(p, ldp, nr, v, dt, nk, dv, o, ldo); break;
    case ATTN_BF16: pv_bf16(p, ldp, nr, v, dt, nk, dv, o, ldo); break;
    case ATTN_Q8:   pv_q8(p, ldp, nr, v, dt, nk, dv, o, ldo); break;
    case ATTN_Q4:   pv_q4(p, ldp, nr, v, dt, nk, dv, o, ldo); break;
    default:        pv_f32(p, ldp, nr, v, dt, nk, dv, o, ldo); break;
    }
}

static const attn_cpu_decode_kernels avx512_decode = {
    .name = "avx512",
    .qk = avx512_qk,
    .pv = avx512_pv,
};

const attn_cpu_decode_kernels *attn_cpu_decode_avx512(void)
{
    return &avx512_decode;
}
