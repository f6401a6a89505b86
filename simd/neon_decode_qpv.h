/* P.V for Q8/Q4 values on NEON (included by neon_decode.c after the
 * template), as avx2_decode_qpv.h: the block scale folded into the
 * probabilities, once per (row, key, block),
 *     o[r][c] += sum_j w[j][r] * v_jc + sum_j p[r][j] * mv_jb,
 *     w[j][r] = p[r][j] * sv_jb   (b = c / 32),
 * one 32-dim block at a time, each key's integers of the block turned into
 * floats once for 4 query rows (the 4 weights of a key are one vector: one
 * FMA by lane per row and 4 values). Register tile: 4 rows x 16 dims
 * (16 accumulators), two passes per block. */
#ifndef ATTN_NEON_DECODE_QPV_H
#define ATTN_NEON_DECODE_QPV_H

/* 16 integers of the pass as floats x[0..3] (Q8: the block's dims 16h..;
 * Q4: its 16 bytes' low nibbles for h = 0, high for h = 1). */
static inline void qvals16(int q4, const uint8_t *vb, int h, float32x4_t x[4])
{
    if (!q4) {
        const int8x16_t b = vld1q_s8((const int8_t *)vb + 16 * h);
        const int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_s8(vget_high_s8(b));
        x[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
        x[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
        x[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
        x[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
        return;
    }
    const uint8x16_t raw = vld1q_u8(vb);
    const uint8x16_t b = h ? vshrq_n_u8(raw, 4) : vandq_u8(raw, vdupq_n_u8(0x0f));
    const uint16x8_t lo = vmovl_u8(vget_low_u8(b)), hi = vmovl_u8(vget_high_u8(b));
    x[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo)));
    x[1] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(lo)));
    x[2] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi)));
    x[3] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(hi)));
}

DEC_INLINE void qpv_with(int q4, const float *p, int64_t ldp, int nr, const attn_kv_rows *v, int nk,
                         int64_t dv, float *o, int64_t ldo)
{
    float w[64][4];
    const int64_t rb = v->row_bytes, mpr = v->meta_per_row, bb = q4 ? 16 : 32;   /* bytes a block */
    for (int r0 = 0; r0 < nr; r0 += 4) {
        const int rn = dec_min(nr - r0, 4);
        const float *pr[4];
        DEC_UNROLL for (int r = 0; r < 4; r++) pr[r] = p + (r0 + dec_min(r, rn - 1)) * ldp;
        for (int64_t b = 0; b < dv / 32; b++)
            for (int j0 = 0; j0 < nk; j0 += 64) {
                const int jn = dec_min(nk - j0, 64);
                float msum[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
                for (int j = 0; j < jn; j++) {
                    const uint16_t *m = v->meta + (j0 + j) * mpr + (q4 ? 2 * b : b);
                    const float sv = attn_f16_to_f32(m[0]);
                    DEC_UNROLL for (int r = 0; r < 4; r++) w[j][r] = pr[r][j0 + j] * sv;
                    if (q4) {
                        const float mv = attn_f16_to_f32(m[1]);
                        DEC_UNROLL for (int r = 0; r < 4; r++) msum[r] += pr[r][j0 + j] * mv;
                    }
                }
                for (int h = 0; h < 2; h++) {   /* the block's dims 16h..16h+15 */
                    float *ob = o + r0 * ldo + 32 * b + 16 * h;
                    float32x4_t acc[4][4];
                    DEC_UNROLL for (int r = 0; r < 4; r++)
                        DEC_UNROLL for (int e = 0; e < 4; e++)
                            acc[r][e] = r < rn ? vld1q_f32(ob + r * ldo + 4 * e) : vdupq_n_f32(0.0f);
                    for (int j = 0; j < jn; j++) {
                        if (b == 0 && h == 0)   /* whole rows: the later blocks read them from L1 */
                            dec_prefetch(attn_kv_row_ahead(v, j0 + j + dec_pf_keys, nk), rb);
                        float32x4_t x[4];
                        qvals16(q4, v->data + (j0 + j) * rb + b * bb, h, x);
                        const float32x4_t wj = vld1q_f32(w[j]);
                        DEC_UNROLL for (int e = 0; e < 4; e++) {
                            acc[0][e] = vfmaq_laneq_f32(acc[0][e], x[e], wj, 0);
                            acc[1][e] = vfmaq_laneq_f32(acc[1][e], x[e], wj, 1);
                            acc[2][e] = vfmaq_laneq_f32(acc[2][e], x[e], wj, 2);
                            acc[3][e] = vfmaq_laneq_f32(acc[3][e], x[e], wj, 3);
                        }
                    }
                    DEC_UNROLL for (int r = 0; r < 4; r++)
                        if (r < rn)
                            DEC_UNROLL for (int e = 0; e < 4; e++)
                                vst1q_f32(ob + r * ldo + 4 * e, vaddq_f32(acc[r][e], vdupq_n_f32(msum[r])));
                }
            }
    }
}

/* The template's P.V for the float types, a function of its own (as on AVX2). */
__attribute__((noinline))
static void float_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                     int nk, int64_t dv, float *o, int64_t ldo)
{
    dec_pv(p, ldp, nr, v, dt, nk, dv, o, ldo);
}

static void neon_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                    int nk, int64_t dv, float *o, int64_t ldo)
{
    if (dt == ATTN_Q8)
        qpv_with(0, p, ldp, nr, v, nk, dv, o, ldo);
    else if (dt == ATTN_Q4)
        qpv_with(1, p, ldp, nr, v, nk, dv, o, ldo);
    else
        float_pv(p, ldp, nr, v, dt, nk, dv, o, ldo);
}

#endif
