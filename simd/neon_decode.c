/* NEON (aarch64) decode kernels: the primitives of simd/decode_tmpl.h with
 * float32x4 vectors. Tiles: qk 2 query rows x 4 keys (8 accumulators, a
 * pairwise-add tree for the scores), pv 2 rows x 32 output dims. Loaders
 * dequantise 4 values in registers (F16 via fcvtl, BF16 via a shift, Q8/Q4
 * by widening the integers and applying the block's scale and min); Q8/Q4
 * values take their own P.V with the block scales folded into P
 * (neon_decode_qpv.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>
#include "../src/cpu/half.h"

#define VL 4
typedef float32x4_t vf;
#define DEC_MR 2
#define DEC_NV 8

static inline vf vzero(void) { return vdupq_n_f32(0.0f); }
static inline vf vset1(float x) { return vdupq_n_f32(x); }
static inline vf vload(const float *p) { return vld1q_f32(p); }
static inline void vstore(float *p, vf x) { vst1q_f32(p, x); }
static inline vf vfma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }

static inline void cvt_meta(const uint16_t *meta, int64_t n, float *out)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(out + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(meta + i))));
    for (; i < n; i++)
        out[i] = attn_f16_to_f32(meta[i]);
}

/* Loaders: 4 values from dim c (c % 4 == 0), n = values left in the row. */
static inline vf ld_f32(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    const float *src = (const float *)row + c;
    float t[4] = { 0 };
    if (n < 4) { memcpy(t, src, (size_t)n * 4); src = t; }
    return vld1q_f32(src);
}
static inline uint16x4_t ld_u16x4(const uint8_t *row, int64_t c, int64_t n)
{
    const uint16_t *src = (const uint16_t *)row + c;
    uint16_t t[4] = { 0 };
    if (n < 4) { memcpy(t, src, (size_t)n * 2); src = t; }
    return vld1_u16(src);
}
/* 4 bytes at p in the low half of a vector (no read past them). */
static inline uint8x8_t ld_4bytes(const uint8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return vcreate_u8(w);
}
static inline vf ld_f16(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    return vcvt_f32_f16(vreinterpret_f16_u16(ld_u16x4(row, c, n)));
}
static inline vf ld_bf16(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)meta;
    return vreinterpretq_f32_u32(vshll_n_u16(ld_u16x4(row, c, n), 16));
}
static inline vf ld_q8(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)n;
    const int16x8_t w = vmovl_s8(vreinterpret_s8_u8(ld_4bytes(row + c)));
    return vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), meta[c >> 5]);
}
static inline vf ld_q4(const uint8_t *row, const float *meta, int64_t c, int64_t n)
{
    (void)n;
    const int64_t o = c & 31;
    uint8x8_t b = ld_4bytes(row + (c >> 5) * 16 + (o & 15));
    b = (o & 16) ? vshr_n_u8(b, 4) : vand_u8(b, vdup_n_u8(0x0f));
    const uint16x8_t w = vmovl_u8(b);
    const float *bm = meta + (c >> 5) * 2;
    return vfmaq_n_f32(vdupq_n_f32(bm[1]), vcvtq_f32_u32(vmovl_u16(vget_low_u16(w))), bm[0]);
}

/* acc[4r + t] -> s[r*lds + t] = horizontal sum. */
static inline void store_scores(const vf *acc, float *s, int64_t lds, int rn, int jn)
{
    for (int r = 0; r < rn; r++) {
        const vf *a = acc + 4 * r;
        const vf x = vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
        if (jn == 4) {
            vst1q_f32(s + r * lds, x);
        } else {
            float t[4];
            vst1q_f32(t, x);
            memcpy(s + r * lds, t, (size_t)jn * sizeof(float));
        }
    }
}

#include "decode_tmpl.h"
#include "neon_decode_qpv.h"

static const attn_cpu_decode_kernels neon_decode = {
    .name = "neon",
    .qk = dec_qk,
    .pv = neon_pv,
};

const attn_cpu_decode_kernels *attn_cpu_decode_neon(void)
{
    return &neon_decode;
}
