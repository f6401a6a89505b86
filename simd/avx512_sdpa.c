/* AVX-512 softmax-attention kernel sets (compiled with -mavx512f -mavx512bw
 * -mavx512vl -mavx512dq -mavx512bf16 -mfma -mf16c).
 *
 * Two tables:
 *   attn_cpu_kernels_avx512()       AVX-512F/BW/VL/DQ only: f32 arithmetic for
 *                                   every input dtype (F16C / shift conversions).
 *   attn_cpu_kernels_avx512_bf16()  the same, plus, for BF16 K/V inputs, QK^T and
 *                                   PV with vdpbf16ps (AVX512_BF16): K packed as
 *                                   bf16 pairs of dims, V as bf16 pairs of keys,
 *                                   Q and P rounded to bf16 inside the kernels
 *                                   (f32 accumulation). Only for CPUs with
 *                                   ATTN_CPU_AVX512_BF16.
 * The bf16 table tags each packed tile (first 64 bytes) with its format, so
 * f32/f16 inputs go through the f32 kernels with the same table. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include "../src/cpu/kernels.h"
#include "unroll.h"
#include "exp_avx512.h"
#include "transpose_avx512.h"

#define VL 16
typedef __m512 vf;
#define MR_QK 6
#define NV_QK 4
#define MR_PV 6
/* pv_pair: 2 rows x 4 queries x 2 vectors = 16 accumulators */
#define T_PV_PAIR
#define T_QK_STAIR   /* 24 accumulators: 32 registers */
#define NV_PV 4

static inline __mmask16 mask_n(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

static inline vf vzero(void) { return _mm512_setzero_ps(); }
static inline vf vset1(float x) { return _mm512_set1_ps(x); }
static inline vf vload(const float *p) { return _mm512_loadu_ps(p); }
static inline vf vbcast(const float *p) { return _mm512_set1_ps(*p); }
static inline vf vload_n(const float *p, int n) { return _mm512_maskz_loadu_ps(mask_n(n), p); }
static inline vf vload_nfill(const float *p, int n, float f)
{
    return _mm512_mask_loadu_ps(_mm512_set1_ps(f), mask_n(n), p);
}
static inline void vstore(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline void vstore_n(float *p, vf v, int n) { _mm512_mask_storeu_ps(p, mask_n(n), v); }
#define vstream(p, v) _mm512_stream_ps(p, v)   /* p 64-byte aligned */
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline float vhsum(vf a) { return _mm512_reduce_add_ps(a); }
static inline float vhmax(vf a) { return _mm512_reduce_max_ps(a); }
static inline vf vexp_v(vf x) { return attn_exp_avx512(x); }
static inline vf vexp_sm(vf x) { return attn_exp_avx512_nonpos(x); }

static inline vf t_load_strided(const char *row, attn_dtype dt, int64_t cs, int64_t c0, int n);

static inline vf vload_cvt(const char *row, attn_dtype dt, int64_t cs, int64_t c0, int n)
{
    if (cs == 1) {
        const __mmask16 m = mask_n(n);
        switch (dt) {
        case ATTN_F32:
            return _mm512_maskz_loadu_ps(m, (const float *)row + c0);
        case ATTN_F16:
            return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c0));
        case ATTN_BF16:
            return _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c0)), 16));
        default:
            break;
        }
    }
    return t_load_strided(row, dt, cs, c0, n);
}

#include "sdpa_tmpl.h"
#define NB_R 4
#define NB_G 6
/* 4 x 7 score blocks: 28 accumulators + 4 Q + 1 K vectors are one more
 * than the 32 registers, GCC keeps one accumulator on the stack (a load and
 * a store per 28 FMAs). K2 = 7 then takes one block instead of 4 + 3: 1.2x
 * faster scores on L2-resident keys (52% -> 63% of the FMA peak), about
 * 1.03x the whole call at 128x128 k7. P V stays 4 x 6 (7: no faster). */
#define NB_G_QK 7
static inline vf nb_hide(vf s, vf bias)
{
    return _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(bias, vzero(), _CMP_LT_OQ), bias);
}
typedef __m512i nb_lidx;
static inline nb_lidx nb_clamp_idx(int lo, int hi)
{
    const __m512i i = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_min_epi32(_mm512_max_epi32(i, _mm512_set1_epi32(lo)), _mm512_set1_epi32(hi));
}
static inline vf nb_clamp_lanes(vf v, nb_lidx i) { return _mm512_permutexvar_ps(i, v); }
#define T_NB_IN_REG(x) __asm__("" : "+v"(x))
#include "nb_tmpl.h"

/* bq: 16 strips of the 6-row register block. bk = 128 keys for d <= 128
 * halves the per-row softmax reductions and the O reload/rescale in pv per
 * key (vdpbf16ps kernels gain most); larger heads keep the K tile at 64 KiB. */
static void t_tile_sizes(int64_t d, int64_t dv, int *bq, int *bk)
{
    *bq = 96;
    *bk = (d > 128 || dv > 128) ? 64 : 128;
}

const attn_cpu_kernels *attn_cpu_kernels_avx512(void)
{
    static const attn_cpu_kernels k = {
        .name = "avx512",
        .isa = ATTN_ISA_AVX512,
        T_SDPA_KERNELS,
        T_NB_KERNELS,
    };
    return &k;
}

/* ------------------------------------------------------------------ */
/* AVX512_BF16: vdpbf16ps kernels for bf16 K/V                          */
/* ------------------------------------------------------------------ */

#define B_HDR 16       /* floats of tag header in front of each packed tile */
#define B_TAG_F32 0u
#define B_TAG_BF16 0x42463136u  /* "BF16" */
#define B_QCH 256      /* pairs of Q dims converted per chunk */
#define B_PCH 128      /* pairs of keys of P converted per chunk */

static inline uint32_t b_tag(const float *p) { uint32_t t; memcpy(&t, p, 4); return t; }
static inline void b_set_tag(float *p, uint32_t t) { memcpy(p, &t, 4); }

static size_t b_k_tile_floats(int bk, int64_t d) { return B_HDR + t_k_tile_floats(bk, d); }
static size_t b_v_tile_floats(int bk, int64_t dv)
{
    return B_HDR + t_v_tile_floats(bk + (bk & 1), dv);
}

/* 16 words (pairs of bf16 dims 2cp, 2cp+1) for cp = cp0 .. cp0+np-1 of one row. */
static inline __m512 b_load_pairs(const uint16_t *row, int64_t cs, int64_t cp0, int np, int64_t d)
{
    if (cs == 1 && 2 * (cp0 + np) <= d)
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(mask_n(np), row + 2 * cp0));
    uint32_t w[16];
    for (int t = 0; t < 16; t++) {
        uint32_t x = 0;
        if (t < np) {
            const int64_t c = 2 * (cp0 + t);
            x = row[c * cs];
            if (c + 1 < d)
                x |= (uint32_t)row[(c + 1) * cs] << 16;
        }
        w[t] = x;
    }
    return _mm512_castsi512_ps(_mm512_loadu_si512(w));
}

/* bf16 K [nk][d] -> words [ceil(d/2)][ldk]: word = (K[j][2cp], K[j][2cp+1]). */
static void b_pack_k(float *dst, const void *src, attn_dtype dt, int64_t rs, int64_t cs,
                     int nk, int bk, int64_t d)
{
    if (dt != ATTN_BF16) {
        b_set_tag(dst, B_TAG_F32);
        t_pack_k(dst + B_HDR, src, dt, rs, cs, nk, bk, d);
        return;
    }
    b_set_tag(dst, B_TAG_BF16);
    float *o = dst + B_HDR;
    const int64_t ldk = t_round_up(nk, 16), dp = (d + 1) / 2;
    const uint16_t *s = (const uint16_t *)src;
    for (int j0 = 0; j0 < nk; j0 += 16) {
        const int nr = t_min(16, nk - j0);
        for (int64_t cp0 = 0; cp0 < dp; cp0 += 16) {
            const int np = (int)(dp - cp0 < 16 ? dp - cp0 : 16);
            __m512 r[16];
T_UNROLL
            for (int t = 0; t < 16; t++)
                r[t] = t < nr ? b_load_pairs(s + (j0 + t) * rs, cs, cp0, np, d) : _mm512_setzero_ps();
            transpose_vl(r);
T_UNROLL
            for (int t = 0; t < 16; t++)
                if (t < np)
                    _mm512_storeu_ps(o + (cp0 + t) * ldk + j0, r[t]);
        }
    }
}

/* bf16 V [nk][dv] -> words [ceil(nk/2)][ldv]: word = (V[2jp][c], V[2jp+1][c]). */
static void b_pack_v(float *dst, const void *src, attn_dtype dt, int64_t rs, int64_t cs,
                     int nk, int bk, int64_t dv)
{
    if (dt != ATTN_BF16) {
        b_set_tag(dst, B_TAG_F32);
        t_pack_v(dst + B_HDR, src, dt, rs, cs, nk, bk, dv);
        return;
    }
    b_set_tag(dst, B_TAG_BF16);
    uint32_t *o = (uint32_t *)(dst + B_HDR);
    const int64_t ldv = t_round_up(dv, 16);
    const uint16_t *s = (const uint16_t *)src;
    for (int j = 0; j < nk; j += 2) {
        const uint16_t *r0 = s + j * rs, *r1 = j + 1 < nk ? s + (j + 1) * rs : NULL;
        uint32_t *oj = o + (j / 2) * ldv;
        if (cs == 1) {
            for (int64_t c = 0; c < dv; c += 16) {
                const __mmask16 m = mask_n((int)(dv - c < 16 ? dv - c : 16));
                __m512i a = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r0 + c));
                __m512i b = r1 ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r1 + c))
                               : _mm512_setzero_si512();
                _mm512_storeu_si512(oj + c, _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
            }
        } else {
            for (int64_t c = 0; c < ldv; c++)
                oj[c] = c < dv ? (uint32_t)r0[c * cs] | (r1 ? (uint32_t)r1[c * cs] << 16 : 0u) : 0u;
        }
    }
}

/* Rounds n floats (n <= 2*B_QCH etc.) to bf16; the words hold consecutive pairs. */
static inline void b_cvt_row(uint32_t *dst, const float *src, int n)
{
    for (int f = 0; f < n; f += 32) {
        const int r = n - f;
        __m512 lo = _mm512_maskz_loadu_ps(mask_n(r), src + f);
        __m512 hi = _mm512_maskz_loadu_ps(mask_n(r - 16 > 0 ? r - 16 : 0), src + f + 16);
        __m512bh bh = _mm512_cvtne2ps_pbh(hi, lo);
        _mm512_storeu_si512(dst + f / 2, (__m512i)bh);
    }
}

T_INLINE void b_qk_micro(const int MR, const int NV, const uint32_t *qb, const uint32_t *k,
                         int64_t ldk, int np, float *s, int64_t lds, int tail, int accum)
{
    __m512 acc[MR_QK][NV_QK];
T_UNROLL
    for (int i = 0; i < MR; i++)
T_UNROLL
        for (int v = 0; v < NV; v++)
            acc[i][v] = accum ? (v == NV - 1 ? vload_n(s + i * lds + v * 16, tail)
                                             : vload(s + i * lds + v * 16))
                              : _mm512_setzero_ps();
    for (int cp = 0; cp < np; cp++) {
        const uint32_t *kc = k + (int64_t)cp * ldk;
        __m512bh kv[NV_QK];
T_UNROLL
        for (int v = 0; v < NV; v++)
            kv[v] = (__m512bh)_mm512_loadu_si512(kc + v * 16);
T_UNROLL
        for (int i = 0; i < MR; i++) {
            const __m512bh qv = (__m512bh)_mm512_set1_epi32((int)qb[i * B_QCH + cp]);
T_UNROLL
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm512_dpbf16_ps(acc[i][v], qv, kv[v]);
        }
    }
T_UNROLL
    for (int i = 0; i < MR; i++) {
T_UNROLL
        for (int v = 0; v < NV - 1; v++)
            vstore(s + i * lds + v * 16, acc[i][v]);
        vstore_n(s + i * lds + (NV - 1) * 16, acc[i][NV - 1], tail);
    }
}

#define B_QK_CASE(M, N) \
    case (M) * 8 + (N): \
        if ((M) <= MR_QK && (N) <= NV_QK) b_qk_micro((M) <= MR_QK ? (M) : 1, (N) <= NV_QK ? (N) : 1, \
                                                      qb, k, ldk, np, s, lds, tail, accum); \
        break;
#define B_QK_ROW(M) B_QK_CASE(M, 1) B_QK_CASE(M, 2) B_QK_CASE(M, 3) B_QK_CASE(M, 4)

static void b_qk_block(int mr, int nv, const uint32_t *qb, const uint32_t *k, int64_t ldk, int np,
                       float *s, int64_t lds, int tail, int accum)
{
    switch (mr * 8 + nv) {
    B_QK_ROW(1) B_QK_ROW(2) B_QK_ROW(3) B_QK_ROW(4) B_QK_ROW(5) B_QK_ROW(6)
    default: break;
    }
}

static void b_qk(const float *q, int64_t ldq, int nq, const float *kp, int nk, int64_t d,
                 float *s, int64_t lds)
{
    if (b_tag(kp) != B_TAG_BF16) {
        t_qk(q, ldq, nq, kp + B_HDR, nk, d, s, lds);
        return;
    }
    const uint32_t *k = (const uint32_t *)(kp + B_HDR);
    const int64_t ldk = t_round_up(nk, 16), dp = (d + 1) / 2;
    const int nvec = (nk + 15) / 16;
    uint32_t qb[MR_QK * B_QCH] __attribute__((aligned(64)));
    for (int i0 = 0; i0 < nq; i0 += MR_QK) {
        const int mr = t_min(MR_QK, nq - i0);
        for (int64_t cp0 = 0; cp0 < dp; cp0 += B_QCH) {
            const int np = (int)(dp - cp0 < B_QCH ? dp - cp0 : B_QCH);
            const int64_t nf = d - 2 * cp0 < 2 * np ? d - 2 * cp0 : 2 * np;
            for (int i = 0; i < mr; i++)
                b_cvt_row(qb + i * B_QCH, q + (i0 + i) * ldq + 2 * cp0, (int)nf);
            for (int jv = 0; jv < nvec; jv += NV_QK) {
                const int nv = t_min(NV_QK, nvec - jv);
                const int tail = nk - (jv + nv - 1) * 16;
                b_qk_block(mr, nv, qb, k + cp0 * ldk + jv * 16, ldk, np,
                           s + i0 * lds + jv * 16, lds, tail, cp0 > 0);
            }
        }
    }
}

T_INLINE void b_pv_micro(const int MR, const int NV, const uint32_t *pb, const uint32_t *v,
                         int64_t ldv, int np, const float *alpha, float *o, int64_t ldo, int tail)
{
    __m512 acc[MR_PV][NV_PV];
T_UNROLL
    for (int i = 0; i < MR; i++) {
        const __m512 a = _mm512_set1_ps(alpha ? alpha[i] : 1.0f);
T_UNROLL
        for (int c = 0; c < NV - 1; c++)
            acc[i][c] = _mm512_mul_ps(a, vload(o + i * ldo + c * 16));
        acc[i][NV - 1] = _mm512_mul_ps(a, vload_n(o + i * ldo + (NV - 1) * 16, tail));
    }
    for (int jp = 0; jp < np; jp++) {
        const uint32_t *vj = v + (int64_t)jp * ldv;
        __m512bh vv[NV_PV];
T_UNROLL
        for (int c = 0; c < NV; c++)
            vv[c] = (__m512bh)_mm512_loadu_si512(vj + c * 16);
T_UNROLL
        for (int i = 0; i < MR; i++) {
            const __m512bh pv = (__m512bh)_mm512_set1_epi32((int)pb[i * B_PCH + jp]);
T_UNROLL
            for (int c = 0; c < NV; c++)
                acc[i][c] = _mm512_dpbf16_ps(acc[i][c], pv, vv[c]);
        }
    }
T_UNROLL
    for (int i = 0; i < MR; i++) {
T_UNROLL
        for (int c = 0; c < NV - 1; c++)
            vstore(o + i * ldo + c * 16, acc[i][c]);
        vstore_n(o + i * ldo + (NV - 1) * 16, acc[i][NV - 1], tail);
    }
}

#define B_PV_CASE(M, N) \
    case (M) * 8 + (N): \
        if ((M) <= MR_PV && (N) <= NV_PV) b_pv_micro((M) <= MR_PV ? (M) : 1, (N) <= NV_PV ? (N) : 1, \
                                                      pb, v, ldv, np, alpha, o, ldo, tail); \
        break;
#define B_PV_ROW(M) B_PV_CASE(M, 1) B_PV_CASE(M, 2) B_PV_CASE(M, 3) B_PV_CASE(M, 4)

static void b_pv_block(int mr, int nv, const uint32_t *pb, const uint32_t *v, int64_t ldv, int np,
                       const float *alpha, float *o, int64_t ldo, int tail)
{
    switch (mr * 8 + nv) {
    B_PV_ROW(1) B_PV_ROW(2) B_PV_ROW(3) B_PV_ROW(4) B_PV_ROW(5) B_PV_ROW(6)
    default: break;
    }
}

static void b_pv(const float *p, int64_t ldp, int nq, const float *vp, int nk, int64_t dv,
                 const float *alpha, float *o, int64_t ldo)
{
    if (b_tag(vp) != B_TAG_BF16) {
        t_pv(p, ldp, nq, vp + B_HDR, nk, dv, alpha, o, ldo);
        return;
    }
    const uint32_t *v = (const uint32_t *)(vp + B_HDR);
    const int64_t ldv = t_round_up(dv, 16);
    const int nvec = (int)((dv + 15) / 16);
    uint32_t pb[MR_PV * B_PCH] __attribute__((aligned(64)));
    for (int i0 = 0; i0 < nq; i0 += MR_PV) {
        const int mr = t_min(MR_PV, nq - i0);
        for (int j0 = 0; j0 < nk; j0 += 2 * B_PCH) {
            const int nj = t_min(2 * B_PCH, nk - j0);
            for (int i = 0; i < mr; i++)
                b_cvt_row(pb + i * B_PCH, p + (i0 + i) * ldp + j0, nj);
            for (int cv = 0; cv < nvec; cv += NV_PV) {
                const int nv = t_min(NV_PV, nvec - cv);
                const int tail = (int)(dv - (int64_t)(cv + nv - 1) * 16);
                b_pv_block(mr, nv, pb, v + (j0 / 2) * ldv + cv * 16, ldv, (nj + 1) / 2,
                           j0 == 0 ? alpha + i0 : NULL, o + i0 * ldo + cv * 16, ldo, tail);
            }
        }
    }
}

/* f32 tiles through the template's strips, bf16 tiles through the three
 * passes. */
static void b_attend(const float *q, int64_t ldq, int nq, const float *kp, const float *vp,
                     int nk, int64_t d, int64_t dv, float *s, int64_t lds, float *m, float *l,
                     float *alpha, float *o, int64_t ldo)
{
    if (b_tag(kp) != B_TAG_BF16 && b_tag(vp) != B_TAG_BF16) {
        t_attend(q, ldq, nq, kp + B_HDR, vp + B_HDR, nk, d, dv, s, lds, m, l, alpha, o, ldo);
        return;
    }
    b_qk(q, ldq, nq, kp, nk, d, s, lds);
    t_softmax_rows(s, lds, nq, nk, m, l, alpha);
    b_pv(s, lds, nq, vp, nk, dv, alpha, o, ldo);
}

const attn_cpu_kernels *attn_cpu_kernels_avx512_bf16(void)
{
    static const attn_cpu_kernels k = {
        .name = "avx512_bf16",
        .isa = ATTN_ISA_AVX512,
        .tile_sizes = t_tile_sizes,
        .load_rows = t_load_rows,
        .k_tile_floats = b_k_tile_floats,
        .v_tile_floats = b_v_tile_floats,
        .pack_k = b_pack_k,
        .pack_v = b_pack_v,
        .qk = b_qk,
        .pv = b_pv,
        .vexp = t_vexp,
        .softmax_rows = t_softmax_rows,
        .attend = b_attend,
    };
    return &k;
}
