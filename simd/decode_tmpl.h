/* ISA-generic part of the SIMD decode kernel sets (included by
 * simd/avx2_decode.c, simd/avx512_decode.c and simd/neon_decode.c, each
 * compiled with its own flags).
 *
 * K/V rows are read straight from cache pages and dequantised in registers
 * by the ISA's loaders; each loaded K/V vector is used for all the rows of a
 * register tile (query heads of one GQA group times query tokens).
 *   qk: tiles of DEC_MR query rows x 4 keys: 4*DEC_MR dot-product
 *       accumulators over D, reduced to the tile's scores by the ISA.
 *   pv: DEC_MR rows x DEC_NV vectors of output dims held in registers while
 *       the tile's V rows stream through, p broadcast per (row, key).
 *
 * The including file defines, before including this header:
 *   VL, vf                  floats per vector, the vector type
 *   DEC_MR, DEC_NV          register tiles (see above)
 * and these static inline functions:
 *   vf   vzero(void), vset1(float), vload(const float *) (aligned)
 *   void vstore(float *, vf) (aligned)
 *   vf   vfma(vf a, vf b, vf c)   a*b + c
 *   vf   ld_f32, ld_f16, ld_bf16, ld_q8, ld_q4
 *            (const uint8_t *row, const float *meta, int64_t c, int64_t n)
 *        VL values of a stored row from dim c (a multiple of VL), lanes
 *        >= n zero (n = values left in the row; Q8/Q4 rows are whole
 *        blocks); meta = the row's block parameters as floats (quant.h).
 *   void cvt_meta(const uint16_t *meta, int64_t n, float *out)   f16 -> f32
 *   void store_scores(const vf acc[4 * DEC_MR], float *s, int64_t lds,
 *                     int rn, int jn)
 *        s[r*lds + t] = horizontal sum of acc[4r + t] for r < rn, t < jn.
 */
#ifndef ATTN_DECODE_TMPL_H
#define ATTN_DECODE_TMPL_H

#include <stdint.h>
#include "../src/cpu/decode_kernels.h"

#if defined(__clang__)
#define DEC_UNROLL _Pragma("unroll")
#else
#define DEC_UNROLL _Pragma("GCC unroll 16")
#endif
#define DEC_INLINE static inline __attribute__((always_inline))

/* Keys ahead to prefetch (8-64 measured alike on a 16-core Xeon). */
enum { dec_pf_keys = 8 };

/* Block parameters per row: at most 2 * 4096 / 32 (Q4 scale/min pairs). */
#define DEC_MAX_META 256

typedef vf (*dec_loader)(const uint8_t *row, const float *meta, int64_t c, int64_t n);

static inline int dec_min(int a, int b) { return a < b ? a : b; }

/* Row j's f16 block parameters as floats, converted once per row. */
DEC_INLINE void dec_row_meta(const attn_kv_rows *x, int64_t j, float *out)
{
    if (x->meta_per_row)
        cvt_meta(x->meta + j * x->meta_per_row, x->meta_per_row, out);
}

DEC_INLINE void dec_prefetch(const uint8_t *p, int64_t bytes)
{
    for (int64_t b = 0; b < bytes; b += 64)
        __builtin_prefetch(p + b, 0, 3);
}

/* Scores of rows qr[0..rn) against keys j0..j0+jn-1 (jn <= 4) of a run of
 * nk. Rows and keys past rn / jn repeat the last one and are not stored. */
DEC_INLINE void dec_qk_tile(dec_loader ld, const float *const *qr, const attn_kv_rows *k, int j0,
                            int jn, int nk, int64_t d, float *s, int64_t lds, int rn)
{
    const uint8_t *kd[4];
    float km[4][DEC_MAX_META];
    DEC_UNROLL for (int t = 0; t < 4; t++) {
        const int64_t j = j0 + dec_min(t, jn - 1);
        kd[t] = k->data + j * k->row_bytes;
        dec_row_meta(k, j, km[t]);
    }
    dec_prefetch(attn_kv_row_ahead(k, j0 + dec_pf_keys, nk), 4 * k->row_bytes);
    vf acc[4 * DEC_MR];
    DEC_UNROLL for (int i = 0; i < 4 * DEC_MR; i++) acc[i] = vzero();
    for (int64_t c = 0; c < d; c += VL) {
        vf kv[4];
        DEC_UNROLL for (int t = 0; t < 4; t++) kv[t] = ld(kd[t], km[t], c, d - c);
        DEC_UNROLL for (int r = 0; r < DEC_MR; r++) {
            const vf qv = vload(qr[r] + c);
            DEC_UNROLL for (int t = 0; t < 4; t++) acc[r * 4 + t] = vfma(qv, kv[t], acc[r * 4 + t]);
        }
    }
    store_scores(acc, s, lds, rn, jn);
}

DEC_INLINE void dec_qk_with(dec_loader ld, const float *q, int64_t ldq, int nr,
                            const attn_kv_rows *k, int nk, int64_t d, float *s, int64_t lds)
{
    for (int r0 = 0; r0 < nr; r0 += DEC_MR) {
        const int rn = dec_min(nr - r0, DEC_MR);
        const float *qr[DEC_MR];
        DEC_UNROLL for (int r = 0; r < DEC_MR; r++) qr[r] = q + (r0 + dec_min(r, rn - 1)) * ldq;
        for (int j0 = 0; j0 < nk; j0 += 4)
            dec_qk_tile(ld, qr, k, j0, dec_min(nk - j0, 4), nk, d, s + r0 * lds + j0, lds, rn);
    }
}

DEC_INLINE void dec_pv_with(dec_loader ld, const float *p, int64_t ldp, int nr,
                            const attn_kv_rows *v, int nk, int64_t dv, float *o, int64_t ldo)
{
    for (int r0 = 0; r0 < nr; r0 += DEC_MR) {
        const int rn = dec_min(nr - r0, DEC_MR);
        const float *pr[DEC_MR];
        DEC_UNROLL for (int r = 0; r < DEC_MR; r++) pr[r] = p + (r0 + dec_min(r, rn - 1)) * ldp;
        for (int64_t c0 = 0; c0 < dv; c0 += DEC_NV * VL) {
            vf acc[DEC_MR][DEC_NV];
            DEC_UNROLL for (int r = 0; r < DEC_MR; r++)
                DEC_UNROLL for (int cc = 0; cc < DEC_NV; cc++)
                    acc[r][cc] = r < rn && c0 + VL * cc < dv ? vload(o + (r0 + r) * ldo + c0 + VL * cc)
                                                             : vzero();
            for (int j = 0; j < nk; j++) {
                const uint8_t *vd = v->data + j * v->row_bytes;
                float vm[DEC_MAX_META];
                dec_row_meta(v, j, vm);
                if (c0 == 0)
                    dec_prefetch(attn_kv_row_ahead(v, j + dec_pf_keys, nk), v->row_bytes);
                vf vv[DEC_NV];
                DEC_UNROLL for (int cc = 0; cc < DEC_NV; cc++)
                    vv[cc] = c0 + VL * cc < dv ? ld(vd, vm, c0 + VL * cc, dv - c0 - VL * cc) : vzero();
                DEC_UNROLL for (int r = 0; r < DEC_MR; r++) {
                    const vf pj = vset1(pr[r][j]);
                    DEC_UNROLL for (int cc = 0; cc < DEC_NV; cc++) acc[r][cc] = vfma(pj, vv[cc], acc[r][cc]);
                }
            }
            DEC_UNROLL for (int r = 0; r < DEC_MR; r++)
                DEC_UNROLL for (int cc = 0; cc < DEC_NV; cc++)
                    if (r < rn && c0 + VL * cc < dv)
                        vstore(o + (r0 + r) * ldo + c0 + VL * cc, acc[r][cc]);
        }
    }
}

/* The storage type picks the loader; the kernels above are inlined per type. */
#define DEC_BY_TYPE(dt, kernel, ...)                                         \
    switch (dt) {                                                            \
    case ATTN_F16:  kernel(ld_f16, __VA_ARGS__); break;                      \
    case ATTN_BF16: kernel(ld_bf16, __VA_ARGS__); break;                     \
    case ATTN_Q8:   kernel(ld_q8, __VA_ARGS__); break;                       \
    case ATTN_Q4:   kernel(ld_q4, __VA_ARGS__); break;                       \
    default:        kernel(ld_f32, __VA_ARGS__); break;                      \
    }

static void dec_qk(const float *q, int64_t ldq, int nr, const attn_kv_rows *k, attn_dtype dt,
                   int nk, int64_t d, float *s, int64_t lds)
{
    DEC_BY_TYPE(dt, dec_qk_with, q, ldq, nr, k, nk, d, s, lds)
}

static void dec_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                   int nk, int64_t dv, float *o, int64_t ldo)
{
    DEC_BY_TYPE(dt, dec_pv_with, p, ldp, nr, v, nk, dv, o, ldo)
}

#endif
