/* AVX2 decode kernels (compiled with -mavx2 -mfma -mf16c). Same scheme as
 * avx512_decode.c with 8-lane vectors and 16 ymm registers: qk tiles of
 * 2 query rows x 4 keys (8 accumulators, one hadd tree for the 8 scores),
 * pv tiles of 2 rows x 32 output dims. K/V rows are dequantised in
 * registers from the page storage. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "../src/cpu/decode_kernels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 8 values of a row from dim c (c % 8 == 0); n = valid values (<= 8 used). */
ALWAYS_INLINE __m256 ld_f32(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)meta;
    if (n >= 8)
        return _mm256_loadu_ps((const float *)row + c);
    float t[8] = { 0 };
    memcpy(t, (const float *)row + c, (size_t)n * 4);
    return _mm256_loadu_ps(t);
}
ALWAYS_INLINE __m128i ld_u16x8(const uint8_t *row, int64_t c, int64_t n)
{
    if (n >= 8)
        return _mm_loadu_si128((const __m128i *)((const uint16_t *)row + c));
    uint16_t t[8] = { 0 };
    memcpy(t, (const uint16_t *)row + c, (size_t)n * 2);
    return _mm_loadu_si128((const __m128i *)t);
}
ALWAYS_INLINE __m256 ld_f16(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)meta;
    return _mm256_cvtph_ps(ld_u16x8(row, c, n));
}
ALWAYS_INLINE __m256 ld_bf16(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)meta;
    __m256i w = _mm256_cvtepu16_epi32(ld_u16x8(row, c, n));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
ALWAYS_INLINE __m256 ld_q8(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)n;
    __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + c))));
    return _mm256_mul_ps(x, _mm256_set1_ps(h2f(meta[c >> 5])));
}
ALWAYS_INLINE __m256 ld_q4(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)n;
    const int64_t o = c & 31;
    __m128i b = _mm_loadl_epi64((const __m128i *)(row + (c >> 5) * 16 + (o & 15)));
    if (o & 16)
        b = _mm_srli_epi16(b, 4);
    b = _mm_and_si128(b, _mm_set1_epi8(0x0f));
    __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
    const uint16_t *bm = meta + (c >> 5) * 2;
    return _mm256_fmadd_ps(x, _mm256_set1_ps(h2f(bm[0])), _mm256_set1_ps(h2f(bm[1])));
}

/* lane i = sum of a[i] */
ALWAYS_INLINE __m256 reduce8(const __m256 *a)
{
    __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 x = _mm256_hadd_ps(h01, h23), y = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
}

#define DEFINE_KERNELS(T, LD)                                                                   \
static void qk_##T(const float *q, int64_t ldq, int nr, const attn_kv_rows *k, attn_dtype dt,   \
                   int nk, int64_t d, float *s, int64_t lds)                                    \
{                                                                                               \
    (void)dt;                                                                                   \
    for (int r0 = 0; r0 < nr; r0 += 2) {                                                        \
        const int rn = nr - r0 < 2 ? nr - r0 : 2;                                               \
        const float *q0 = q + r0 * ldq, *q1 = q + (r0 + rn - 1) * ldq;                          \
        for (int j0 = 0; j0 < nk; j0 += 4) {                                                    \
            const int jn = nk - j0 < 4 ? nk - j0 : 4;                                           \
            const uint8_t *kd[4];                                                               \
            const uint16_t *km[4];                                                              \
            for (int t = 0; t < 4; t++) {                                                       \
                const int64_t jj = j0 + (t < jn ? t : jn - 1);                                  \
                kd[t] = k->data + jj * k->row_bytes;                                            \
                km[t] = k->meta + jj * k->meta_per_row;                                         \
            }                                                                                   \
            __m256 acc[8];                                                                      \
            for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();                           \
            for (int64_t c = 0; c < d; c += 8) {                                                \
                const __m256 a = _mm256_load_ps(q0 + c), b = _mm256_load_ps(q1 + c);           \
                for (int t = 0; t < 4; t++) {                                                   \
                    const __m256 kv = LD(kd[t], km[t], c, d - c);                               \
                    acc[t] = _mm256_fmadd_ps(a, kv, acc[t]);                                    \
                    acc[4 + t] = _mm256_fmadd_ps(b, kv, acc[4 + t]);                            \
                }                                                                               \
            }                                                                                   \
            /* lanes 0-3: row r0, keys j0..j0+3; lanes 4-7: row r0 + 1 */                      \
            const __m256 x = reduce8(acc);                                                      \
            const __m128i m4 = _mm_cmpgt_epi32(_mm_set1_epi32(jn), _mm_setr_epi32(0, 1, 2, 3)); \
            _mm_maskstore_ps(s + r0 * lds + j0, m4, _mm256_castps256_ps128(x));                 \
            if (rn > 1)                                                                         \
                _mm_maskstore_ps(s + (r0 + 1) * lds + j0, m4, _mm256_extractf128_ps(x, 1));     \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
static void pv_##T(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,   \
                   int nk, int64_t dv, float *o, int64_t ldo)                                   \
{                                                                                               \
    (void)dt;                                                                                   \
    for (int r0 = 0; r0 < nr; r0 += 2) {                                                        \
        const int rn = nr - r0 < 2 ? nr - r0 : 2;                                               \
        const float *p0 = p + r0 * ldp, *p1 = p + (r0 + rn - 1) * ldp;                          \
        float *o0 = o + r0 * ldo, *o1 = o + (r0 + rn - 1) * ldo;                                \
        for (int64_t c0 = 0; c0 < dv; c0 += 32) {                                               \
            __m256 a[4], b[4];                                                                  \
            for (int cc = 0; cc < 4; cc++) {                                                    \
                const int in = c0 + 8 * cc < dv;                                                \
                a[cc] = in ? _mm256_load_ps(o0 + c0 + 8 * cc) : _mm256_setzero_ps();           \
                b[cc] = in ? _mm256_load_ps(o1 + c0 + 8 * cc) : _mm256_setzero_ps();           \
            }                                                                                   \
            for (int j = 0; j < nk; j++) {                                                      \
                const uint8_t *vd = v->data + j * v->row_bytes;                                 \
                const uint16_t *vm = v->meta + j * v->meta_per_row;                             \
                const __m256 x = _mm256_set1_ps(p0[j]), y = _mm256_set1_ps(p1[j]);              \
                for (int cc = 0; cc < 4; cc++) {                                                \
                    if (c0 + 8 * cc >= dv) break;                                               \
                    const __m256 vv = LD(vd, vm, c0 + 8 * cc, dv - c0 - 8 * cc);                \
                    a[cc] = _mm256_fmadd_ps(x, vv, a[cc]);                                      \
                    b[cc] = _mm256_fmadd_ps(y, vv, b[cc]);                                      \
                }                                                                               \
            }                                                                                   \
            for (int cc = 0; cc < 4; cc++)                                                      \
                if (c0 + 8 * cc < dv) {                                                         \
                    if (rn == 2) _mm256_store_ps(o1 + c0 + 8 * cc, b[cc]);                      \
                    _mm256_store_ps(o0 + c0 + 8 * cc, a[cc]);                                   \
                }                                                                               \
        }                                                                                       \
    }                                                                                           \
}

DEFINE_KERNELS(f32, ld_f32)
DEFINE_KERNELS(f16, ld_f16)
DEFINE_KERNELS(bf16, ld_bf16)
DEFINE_KERNELS(q8, ld_q8)
DEFINE_KERNELS(q4, ld_q4)

static void avx2_qk(const float *q, int64_t ldq, int nr, const attn_kv_rows *k, attn_dtype dt,
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

static void avx2_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
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

static const attn_cpu_decode_kernels avx2_decode = {
    .name = "avx2",
    .qk = avx2_qk,
    .pv = avx2_pv,
};

const attn_cpu_decode_kernels *attn_cpu_decode_avx2(void)
{
    return &avx2_decode;
}
