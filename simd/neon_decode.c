/* NEON (aarch64) decode kernels. Same scheme as avx2_decode.c, with an
 * 8-float step made of two float32x4 registers: qk tiles of 2 query rows x
 * 4 keys, pv tiles of 2 rows x 32 output dims. K/V rows are dequantised in
 * registers from the page storage (F16 via fcvtl, BF16 via a shift, Q8/Q4
 * by widening the integers and applying the block's scale and min). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>
#include "../src/cpu/decode_kernels.h"
#include "../src/cpu/half.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

typedef struct { float32x4_t lo, hi; } v8;

ALWAYS_INLINE float h2f(uint16_t h) { return attn_f16_to_f32(h); }

ALWAYS_INLINE v8 ld_f32(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)meta;
    const float *src = (const float *)row + c;
    float t[8] = { 0 };
    if (n < 8) { memcpy(t, src, (size_t)n * 4); src = t; }
    return (v8){ vld1q_f32(src), vld1q_f32(src + 4) };
}
ALWAYS_INLINE uint16x8_t ld_u16x8(const uint8_t *row, int64_t c, int64_t n)
{
    const uint16_t *src = (const uint16_t *)row + c;
    uint16_t t[8] = { 0 };
    if (n < 8) { memcpy(t, src, (size_t)n * 2); src = t; }
    return vld1q_u16(src);
}
ALWAYS_INLINE v8 ld_f16(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)meta;
    float16x8_t h = vreinterpretq_f16_u16(ld_u16x8(row, c, n));
    return (v8){ vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h) };
}
ALWAYS_INLINE v8 ld_bf16(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)meta;
    uint16x8_t w = ld_u16x8(row, c, n);
    return (v8){ vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(w), 16)),
                 vreinterpretq_f32_u32(vshll_high_n_u16(w, 16)) };
}
ALWAYS_INLINE v8 ld_q8(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)n;
    int16x8_t w = vmovl_s8(vld1_s8((const int8_t *)row + c));
    const float s = h2f(meta[c >> 5]);
    return (v8){ vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), s),
                 vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(w)), s) };
}
ALWAYS_INLINE v8 ld_q4(const uint8_t *row, const uint16_t *meta, int64_t c, int64_t n)
{
    (void)n;
    const int64_t o = c & 31;
    uint8x8_t b = vld1_u8(row + (c >> 5) * 16 + (o & 15));
    b = (o & 16) ? vshr_n_u8(b, 4) : vand_u8(b, vdup_n_u8(0x0f));
    uint16x8_t w = vmovl_u8(b);
    const uint16_t *bm = meta + (c >> 5) * 2;
    const float32x4_t s = vdupq_n_f32(h2f(bm[0])), m = vdupq_n_f32(h2f(bm[1]));
    return (v8){ vfmaq_f32(m, vcvtq_f32_u32(vmovl_u16(vget_low_u16(w))), s),
                 vfmaq_f32(m, vcvtq_f32_u32(vmovl_high_u16(w)), s) };
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
            float32x4_t acc[8];                                                                 \
            for (int i = 0; i < 8; i++) acc[i] = vdupq_n_f32(0.0f);                             \
            for (int64_t c = 0; c < d; c += 8) {                                                \
                const float32x4_t a0 = vld1q_f32(q0 + c), a1 = vld1q_f32(q0 + c + 4);           \
                const float32x4_t b0 = vld1q_f32(q1 + c), b1 = vld1q_f32(q1 + c + 4);           \
                for (int t = 0; t < 4; t++) {                                                   \
                    const v8 kv = LD(kd[t], km[t], c, d - c);                                   \
                    acc[t] = vfmaq_f32(vfmaq_f32(acc[t], a0, kv.lo), a1, kv.hi);                \
                    acc[4 + t] = vfmaq_f32(vfmaq_f32(acc[4 + t], b0, kv.lo), b1, kv.hi);        \
                }                                                                               \
            }                                                                                   \
            const float32x4_t x = vpaddq_f32(vpaddq_f32(acc[0], acc[1]), vpaddq_f32(acc[2], acc[3])); \
            const float32x4_t y = vpaddq_f32(vpaddq_f32(acc[4], acc[5]), vpaddq_f32(acc[6], acc[7])); \
            float tmp[8];                                                                       \
            vst1q_f32(tmp, x);                                                                  \
            vst1q_f32(tmp + 4, y);                                                              \
            for (int r = 0; r < rn; r++)                                                        \
                for (int t = 0; t < jn; t++) s[(r0 + r) * lds + j0 + t] = tmp[4 * r + t];       \
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
            float32x4_t a[8], b[8];                                                             \
            for (int cc = 0; cc < 8; cc++) {                                                    \
                const int in = c0 + 4 * cc < dv;                                                \
                a[cc] = in ? vld1q_f32(o0 + c0 + 4 * cc) : vdupq_n_f32(0.0f);                  \
                b[cc] = in ? vld1q_f32(o1 + c0 + 4 * cc) : vdupq_n_f32(0.0f);                  \
            }                                                                                   \
            for (int j = 0; j < nk; j++) {                                                      \
                const uint8_t *vd = v->data + j * v->row_bytes;                                 \
                const uint16_t *vm = v->meta + j * v->meta_per_row;                             \
                const float x = p0[j], y = p1[j];                                               \
                for (int cc = 0; cc < 4; cc++) {                                                \
                    if (c0 + 8 * cc >= dv) break;                                               \
                    const v8 vv = LD(vd, vm, c0 + 8 * cc, dv - c0 - 8 * cc);                    \
                    a[2 * cc] = vfmaq_n_f32(a[2 * cc], vv.lo, x);                               \
                    a[2 * cc + 1] = vfmaq_n_f32(a[2 * cc + 1], vv.hi, x);                       \
                    b[2 * cc] = vfmaq_n_f32(b[2 * cc], vv.lo, y);                               \
                    b[2 * cc + 1] = vfmaq_n_f32(b[2 * cc + 1], vv.hi, y);                       \
                }                                                                               \
            }                                                                                   \
            for (int cc = 0; cc < 8; cc++)                                                      \
                if (c0 + 4 * cc < dv) {                                                         \
                    if (rn == 2) vst1q_f32(o1 + c0 + 4 * cc, b[cc]);                            \
                    vst1q_f32(o0 + c0 + 4 * cc, a[cc]);                                         \
                }                                                                               \
        }                                                                                       \
    }                                                                                           \
}

DEFINE_KERNELS(f32, ld_f32)
DEFINE_KERNELS(f16, ld_f16)
DEFINE_KERNELS(bf16, ld_bf16)
DEFINE_KERNELS(q8, ld_q8)
DEFINE_KERNELS(q4, ld_q4)

static void neon_qk(const float *q, int64_t ldq, int nr, const attn_kv_rows *k, attn_dtype dt,
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

static void neon_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
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

static const attn_cpu_decode_kernels neon_decode = {
    .name = "neon",
    .qk = neon_qk,
    .pv = neon_pv,
};

const attn_cpu_decode_kernels *attn_cpu_decode_neon(void)
{
    return &neon_decode;
}
