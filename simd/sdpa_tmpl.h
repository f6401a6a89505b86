/* ISA-generic part of the SIMD softmax-attention kernel sets (included by
 * simd/avx2_sdpa.c, simd/avx512_sdpa.c and simd/neon_sdpa.c, each compiled
 * with its own flags).
 *
 * The including file defines, before including this header:
 *   VL                      floats per vector
 *   vf                      the vector type
 *   MR_QK, NV_QK            qk register block: rows of Q x vectors of keys
 *   MR_PV, NV_PV            pv register block: rows of P x vectors of columns
 * and these static inline functions:
 *   vf   vzero(void), vset1(float), vload(const float *), vbcast(const float *)
 *   vf   vload_n(const float *p, int n)            n < VL lanes, rest 0
 *   vf   vload_nfill(const float *p, int n, float f)  rest f
 *   void vstore(float *, vf), vstore_n(float *, vf, int n)
 *   vf   vfma(vf a, vf b, vf c)   a*b + c
 * and optionally the macro T_FMA_LANE(acc, b, a, L) = acc + b * a[L] (L a
 * constant 0..3, VL >= 4): qk/pv then load 4 Q (P) values of a row with one
 * vector load and use them by lane (NEON vfmaq_laneq_f32).
 *   vf   vadd, vsub, vmul, vmax (vf, vf)
 *   float vhsum(vf), vhmax(vf)
 *   vf   vexp_v(vf)               exp, -inf -> 0, results < FLT_MIN -> 0
 *   vf   vexp_sm(vf)              the same for x <= 0 / -inf only (may flush a
 *                                 little earlier), used by softmax_rows
 *   void transpose_vl(vf r[VL])   in-place VL x VL transpose
 *   vf   vload_cvt(const char *row, attn_dtype dt, int64_t cs, int64_t c0, int n)
 *        elements c0..c0+n-1 (n <= VL) of a row with column stride cs,
 *        converted to f32, lanes >= n zero.
 *
 * Packed layouts (f32):
 *   K: [d][ldk] with ldk = t_ld_packed(nk): one vector = VL keys of one dim.
 *   V: [nk][ldv] with ldv = t_ld_packed(dv), columns past dv unused.
 */
#ifndef ATTN_SDPA_TMPL_H
#define ATTN_SDPA_TMPL_H

#include <math.h>
#include <string.h>
#include "../src/cpu/kernels.h"
#include "../src/cpu/half.h"
#include "../src/cpu/stream_store.h"
#include "../src/dtype_size.h"

#include "unroll.h"
#define T_INLINE static inline __attribute__((always_inline))

static inline int64_t t_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int t_min(int a, int b) { return a < b ? a : b; }

#define T_LINE_FLOATS 16   /* floats per 64-byte cache line */

/* Scalar element load (strided fallbacks). */
static inline float t_load_elem(const char *p, attn_dtype dt)
{
    uint16_t h;
    switch (dt) {
    case ATTN_F16:  memcpy(&h, p, 2); return attn_f16_to_f32(h);
    case ATTN_BF16: memcpy(&h, p, 2); return attn_bf16_to_f32(h);
    default: { float f; memcpy(&f, p, 4); return f; }
    }
}

/* Generic strided gather into a vector (slow path). */
static inline vf t_load_strided(const char *row, attn_dtype dt, int64_t cs, int64_t c0, int n)
{
    float tmp[VL];
    const size_t es = attn_dtype_bytes(dt);
    for (int t = 0; t < VL; t++)
        tmp[t] = t < n ? t_load_elem(row + (c0 + t) * cs * (int64_t)es, dt) : 0.0f;
    return vload(tmp);
}

/* ------------------------------------------------------------------ */
/* load_rows / pack_k / pack_v                                         */
/* ------------------------------------------------------------------ */

/* Rows ahead of the one being read whose lines are prefetched: source rows
 * (one head of a [B, S, H, D] tensor) lie far apart, in pages of their
 * own, where the hardware prefetchers (which stay within a 4 KiB page) do
 * not follow; the prefetches keep several rows' lines in flight. Loading
 * Q (16 heads x 4096 cold rows of 512 bytes, 192 rows per call) took 15-35%
 * less time with them; pack_v (the same pattern, 128 rows per call) and
 * pack_k (the next 16 rows) showed no clear gain, and go without. */
#define T_ROWS_AHEAD 8

T_INLINE void t_prefetch_row(const char *row, int64_t bytes)
{
    for (int64_t b = 0; b < bytes; b += T_LINE_FLOATS * 4)
        __builtin_prefetch(row + b, 0, 3);
}

/* Before row 0 of n rows rs_bytes apart: prefetch rows 1 .. T_ROWS_AHEAD - 1
 * (the loop then prefetches row i + T_ROWS_AHEAD at row i). */
T_INLINE void t_prefetch_first_rows(const char *src, int64_t rs_bytes, int n, int64_t bytes)
{
    for (int r = 1; r < T_ROWS_AHEAD && r < n; r++)
        t_prefetch_row(src + r * rs_bytes, bytes);
}

static void t_load_rows(float *dst, int64_t ldd, const void *src, attn_dtype dt,
                        int64_t rs, int64_t cs, int n, int64_t d, float scale)
{
    const vf vs = vset1(scale);
    const int64_t es = (int64_t)attn_dtype_bytes(dt);
    if (cs == 1)
        t_prefetch_first_rows((const char *)src, rs * es, n, d * es);
    for (int i = 0; i < n; i++) {
        float *row = dst + (int64_t)i * ldd;
        const char *s = (const char *)src + (int64_t)i * rs * es;
        if (cs == 1 && i + T_ROWS_AHEAD < n)
            t_prefetch_row(s + T_ROWS_AHEAD * rs * es, d * es);
        int64_t c = 0;
        for (; c + VL <= d; c += VL)
            vstore(row + c, vmul(vs, vload_cvt(s, dt, cs, c, VL)));
        for (; c < ldd; c += VL) {
            int nc = c < d ? (int)(d - c) : 0;
            vf x = nc ? vmul(vs, vload_cvt(s, dt, cs, c, nc)) : vzero();
            if (c + VL <= ldd)
                vstore(row + c, x);
            else
                vstore_n(row + c, x, (int)(ldd - c));
        }
    }
}

/* Leading dimension of a packed K tile (keys) or V tile (columns): whole
 * vectors; from 64 on, whole 64-byte lines plus one more line where that
 * would be a multiple of 256 bytes. The micro-kernels walk a block of 64 keys
 * (columns) down all d dims (keys) of a tile; 512-byte rows (128 keys, 128
 * columns) put those 32 KB into half the sets of a 48 KB 12-way L1D (64 sets
 * of 64 B), so the block did not stay in L1 from one row strip to the next. With
 * the extra line the rows start 9 (or 5) lines apart and the block spreads
 * evenly over all sets. Never larger for fewer keys (k_tile_floats sizes for
 * bk); tiles of fewer than 64 keys (neighborhood runs) stay compact. */
static inline int64_t t_ld_packed(int64_t n)
{
    int64_t ld = t_round_up(n, VL);
    if (ld >= 64) {
        ld = t_round_up(ld, 16);
        if (ld % 64 == 0)
            ld += 16;
    }
    return ld;
}

static size_t t_k_tile_floats(int bk, int64_t d)
{
    return (size_t)(d * t_ld_packed(bk));
}

static size_t t_v_tile_floats(int bk, int64_t dv)
{
    return (size_t)((int64_t)bk * t_ld_packed(dv));
}

/* K [nk][d] (strided, any dtype) -> [d][ldk] f32, by VL x VL transposes. */
T_INLINE void t_pack_k_dt(float *dst, const char *src, const attn_dtype DT, int64_t rs, int64_t cs,
                          int nk, int64_t d)
{
    const int64_t ldk = t_ld_packed(nk);
    const int64_t es = (int64_t)attn_dtype_bytes(DT);
    for (int j0 = 0; j0 < nk; j0 += VL) {
        const int nr = t_min(VL, nk - j0);
        const char *s0 = src + j0 * rs * es;
        for (int64_t c0 = 0; c0 < d; c0 += VL) {
            const int nc = (int)(d - c0 < VL ? d - c0 : VL);
            vf r[VL];
            if (nr == VL) {
T_UNROLL
                for (int t = 0; t < VL; t++)
                    r[t] = vload_cvt(s0 + t * rs * es, DT, cs, c0, nc);
            } else {
T_UNROLL
                for (int t = 0; t < VL; t++)
                    r[t] = t < nr ? vload_cvt(s0 + t * rs * es, DT, cs, c0, nc) : vzero();
            }
            transpose_vl(r);
            float *o = dst + c0 * ldk + j0;
            if (nc == VL) {
T_UNROLL
                for (int t = 0; t < VL; t++)
                    vstore(o + t * ldk, r[t]);
            } else {
T_UNROLL
                for (int t = 0; t < VL; t++)
                    if (t < nc)
                        vstore(o + t * ldk, r[t]);
            }
        }
    }
}

static void t_pack_k(float *dst, const void *src, attn_dtype dt, int64_t rs, int64_t cs,
                     int nk, int bk, int64_t d)
{
    (void)bk;
    switch (dt) {
    case ATTN_F16:  t_pack_k_dt(dst, (const char *)src, ATTN_F16, rs, cs, nk, d); break;
    case ATTN_BF16: t_pack_k_dt(dst, (const char *)src, ATTN_BF16, rs, cs, nk, d); break;
    default:        t_pack_k_dt(dst, (const char *)src, ATTN_F32, rs, cs, nk, d); break;
    }
}

/* V [nk][dv] -> [nk][ldv] f32, zero-padded columns. */
static void t_pack_v(float *dst, const void *src, attn_dtype dt, int64_t rs, int64_t cs,
                     int nk, int bk, int64_t dv)
{
    (void)bk;
    const int64_t ldv = t_ld_packed(dv);
    const int64_t es = (int64_t)attn_dtype_bytes(dt);
    for (int j = 0; j < nk; j++) {
        const char *s = (const char *)src + (int64_t)j * rs * es;
        float *o = dst + (int64_t)j * ldv;
        int64_t c = 0;
        for (; c + VL <= dv; c += VL)
            vstore(o + c, vload_cvt(s, dt, cs, c, VL));
        if (c < dv)
            vstore(o + c, vload_cvt(s, dt, cs, c, (int)(dv - c)));
    }
}

/* ------------------------------------------------------------------ */
/* qk: S = Q K^T                                                        */
/* ------------------------------------------------------------------ */

/* Software prefetch of the next K (V) tile into L2 while qk (pv) works on
 * this one. A head's K/V panel (4 MiB at Sk = 4096, D = 128) outgrows L2, so
 * without it the first row strip of every 64-key block waits on L3 for its
 * 32 KB (the hardware streamer stops at each 4 KiB page and runs only a few
 * lines ahead); the later strips hit L1. The tile's micro-kernel calls share
 * the next tile's lines: call n prefetches lines [n*per, n*per + npf), one per
 * step of its inner loop, so the requests trickle out between the FMAs. The
 * drivers place the tiles of a panel round_up(k_tile_floats(bk, d), 16) floats
 * apart; a prefetch is only a hint and never faults, whatever lies there. */
typedef struct {
    uintptr_t next;      /* address of the next tile (an integer: it may lie
                            past the caller's allocation) */
    int64_t lines;       /* lines in it */
    int64_t per;         /* lines per micro-kernel call */
} t_prefetch;

static inline t_prefetch t_prefetch_plan(const float *tile, int64_t floats, int64_t calls)
{
    t_prefetch pf = { (uintptr_t)tile + (uintptr_t)t_round_up(floats, T_LINE_FLOATS) * 4,
                      (floats + T_LINE_FLOATS - 1) / T_LINE_FLOATS, 0 };
    pf.per = (pf.lines + calls - 1) / calls;
    return pf;
}

/* The lines of micro-kernel call n: start, and count (npf). */
static inline uintptr_t t_prefetch_part(const t_prefetch *pf, int64_t n, int *npf)
{
    const int64_t first = n * pf->per, left = pf->lines - first;
    *npf = left <= 0 ? 0 : (int)(left < pf->per ? left : pf->per);
    return pf->next + (uintptr_t)first * T_LINE_FLOATS * 4;
}

T_INLINE void t_prefetch_line(uintptr_t pf, int npf, int step)
{
    if (step < npf)
        __builtin_prefetch((const void *)(pf + (uintptr_t)step * T_LINE_FLOATS * 4), 0, 2);
}

#ifdef T_FMA_LANE
/* One lane step of the micro-kernels' rank-1 updates:
 *   acc[i][v] += row[v * stride ...] * a[i][L]   (i < MR, v < NV)
 * a B row of NV vectors (`stride` floats apart, NVMAX its register count)
 * against lane L of each A vector a[i]: t_qk_micro's K row by lanes of Q,
 * t_pv_micro's V row by lanes of P. */
#define T_LANE_STEP(acc, row, stride, a, L, NVMAX) \
    { \
        const float *row_ = (row); \
        vf b_[NVMAX]; \
        T_UNROLL for (int v_ = 0; v_ < NV; v_++) b_[v_] = vload(row_ + v_ * (stride)); \
        T_UNROLL for (int i_ = 0; i_ < MR; i_++) \
            T_UNROLL for (int v_ = 0; v_ < NV; v_++) \
                (acc)[i_][v_] = T_FMA_LANE((acc)[i_][v_], b_[v_], (a)[i_], L); \
    }
#endif

/* MR query rows x NV key vectors: row i's query at q[i] (rows anywhere:
 * the neighborhood driver reads f32 queries in place from the caller's
 * tensor, whose rows are not one stride apart), key vector v at k + v * kvs
 * and its scores at s + i * lds + v * svs (VL and VL for one packed tile;
 * runs apart in qk_runs); `tail` = valid lanes of the last vector. */
T_INLINE void t_qk_micro(const int MR, const int NV, const float *const *q, const float *k,
                         int64_t ldk, int64_t kvs, int64_t d, float *s, int64_t lds,
                         int64_t svs, int tail, uintptr_t pf, int npf)
{
    const float *qr[MR_QK];
    vf acc[MR_QK][NV_QK];
T_UNROLL
    for (int i = 0; i < MR; i++) {
        qr[i] = q[i];
T_UNROLL
        for (int v = 0; v < NV; v++)
            acc[i][v] = vzero();
    }
    int64_t c = 0;
#ifdef T_FMA_LANE
    /* 4 dims per step: one vector load of each Q row, FMAs by lane */
    for (; c + 4 <= d; c += 4) {
        t_prefetch_line(pf, npf, c >> 2);
        vf qv[MR_QK];
T_UNROLL
        for (int i = 0; i < MR; i++)
            qv[i] = vload(qr[i] + c);
        T_LANE_STEP(acc, k + c * ldk, kvs, qv, 0, NV_QK)
        T_LANE_STEP(acc, k + (c + 1) * ldk, kvs, qv, 1, NV_QK)
        T_LANE_STEP(acc, k + (c + 2) * ldk, kvs, qv, 2, NV_QK)
        T_LANE_STEP(acc, k + (c + 3) * ldk, kvs, qv, 3, NV_QK)
    }
#endif
#define T_QK_DIM(c) \
    { \
        const float *kc = k + (c) * ldk; \
        vf kv[NV_QK]; \
        T_UNROLL for (int v = 0; v < NV; v++) kv[v] = vload(kc + v * kvs); \
        T_UNROLL for (int i = 0; i < MR; i++) { \
            const vf qb = vbcast(qr[i] + (c)); \
            T_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = vfma(qb, kv[v], acc[i][v]); \
        } \
    }
    /* The steps that prefetch a line come first; the rest run without the
     * test and unrolled: the loop's scalar uops (counter, the test, its
     * branch) compete with the FMAs for ports 0 and 5. The isolated 6 x 4
     * AVX-512 micro-kernel went from 85.5% to 87.7% of the FMA peak. */
    for (const int64_t npre = c + npf < d ? c + npf : d; c < npre; c++) {
        t_prefetch_line(pf, npf, (int)c);
        T_QK_DIM(c)
    }
#pragma GCC unroll 4
    for (; c < d; c++)
        T_QK_DIM(c)
#undef T_QK_DIM
T_UNROLL
    for (int i = 0; i < MR; i++) {
T_UNROLL
        for (int v = 0; v < NV - 1; v++)
            vstore(s + i * lds + v * svs, acc[i][v]);
        if (tail == VL)
            vstore(s + i * lds + (NV - 1) * svs, acc[i][NV - 1]);
        else
            vstore_n(s + i * lds + (NV - 1) * svs, acc[i][NV - 1], tail);
    }
}

#define T_QK_CASE(M, N) \
    case (M) * 8 + (N): \
        if ((M) <= MR_QK && (N) <= NV_QK) t_qk_micro((M) <= MR_QK ? (M) : 1, (N) <= NV_QK ? (N) : 1, \
                                                      q, k, ldk, kvs, d, s, lds, svs, tail, pf, \
                                                      npf); \
        break;
#define T_QK_ROW(M) T_QK_CASE(M, 1) T_QK_CASE(M, 2) T_QK_CASE(M, 3) T_QK_CASE(M, 4)

static void t_qk_block(int mr, int nv, const float *const *q, const float *k, int64_t ldk,
                       int64_t kvs, int64_t d, float *s, int64_t lds, int64_t svs, int tail,
                       uintptr_t pf, int npf)
{
    switch (mr * 8 + nv) {
    T_QK_ROW(1) T_QK_ROW(2) T_QK_ROW(3) T_QK_ROW(4)
    T_QK_ROW(5) T_QK_ROW(6) T_QK_ROW(7) T_QK_ROW(8)
    default: break;
    }
}

/* S = Q K^T against nk keys starting at k, in a packed K of leading dim ldk;
 * pf: the tile to prefetch meanwhile, or NULL, its micro-kernel calls
 * numbered from call. Returns the number after the last call. */
static int64_t t_qk_ld(const float *q, int64_t ldq, int nq, const float *k, int64_t ldk, int nk,
                       int64_t d, float *s, int64_t lds, const t_prefetch *pf, int64_t call)
{
    const int nvec = (nk + VL - 1) / VL;
    for (int jv = 0; jv < nvec; jv += NV_QK) {
        const int nv = t_min(NV_QK, nvec - jv);
        const int tail = nk - (jv + nv - 1) * VL;
        for (int i = 0; i < nq; i += MR_QK, call++) {
            int npf = 0;
            const uintptr_t pfl = pf ? t_prefetch_part(pf, call, &npf) : 0;
            const int mr = t_min(MR_QK, nq - i);
            const float *qr[MR_QK];
            for (int r = 0; r < mr; r++)
                qr[r] = q + (i + r) * ldq;
            t_qk_block(mr, nv, qr, k + jv * VL, ldk, VL, d,
                       s + i * lds + jv * VL, lds, VL, tail, pfl, npf);
        }
    }
    return call;
}

static void t_qk(const float *q, int64_t ldq, int nq, const float *k, int nk, int64_t d,
                 float *s, int64_t lds)
{
    const int64_t floats = (int64_t)t_k_tile_floats(nk, d);
    const int64_t calls = (int64_t)((nk + NV_QK * VL - 1) / (NV_QK * VL)) *
                          ((nq + MR_QK - 1) / MR_QK);
    const t_prefetch pf = t_prefetch_plan(k, floats, calls);
    t_qk_ld(q, ldq, nq, k, t_ld_packed(nk), nk, d, s, lds, &pf, 0);
}

/* Keys j0..j0+nk-1 of nruns K tiles packed with panel_nk keys, run r's at
 * kruns[r] (neighborhood attention: rows of keys, of which a query tile
 * sees a window), run r's scores at column r * pitch, query row i at q[i].
 * Whole vectors: the lanes past nk land in the run's pitch, unused. */
static void t_qk_runs(const float *const *q, int nq, const float *const *kruns, int nruns,
                      int panel_nk, int j0, int nk, int64_t d, float *s, int64_t lds,
                      int64_t pitch)
{
    const int64_t ldk = t_ld_packed(panel_nk);
    if (nk > VL) {
        const int nvec = (nk + VL - 1) / VL;
        for (int r = 0; r < nruns; r++)
            for (int jv = 0; jv < nvec; jv += NV_QK)
                for (int i = 0; i < nq; i += MR_QK)
                    t_qk_block(t_min(MR_QK, nq - i), t_min(NV_QK, nvec - jv), q + i,
                               kruns[r] + j0 + jv * VL, ldk, VL, d,
                               s + i * lds + r * pitch + jv * VL, lds, VL, VL, 0, 0);
        return;
    }
    /* a window fits one vector: the register block spans up to NV_QK runs
     * equally far apart */
    for (int r = 0; r < nruns;) {
        const int64_t kvs = r + 1 < nruns ? (int64_t)(kruns[r + 1] - kruns[r]) : 0;
        int nv = 1;
        while (nv < NV_QK && r + nv < nruns && kruns[r + nv] - kruns[r] == nv * kvs)
            nv++;
        for (int i = 0; i < nq; i += MR_QK)
            t_qk_block(t_min(MR_QK, nq - i), nv, q + i, kruns[r] + j0, ldk, kvs, d,
                       s + i * lds + r * pitch, lds, pitch, VL, 0, 0);
        r += nv;
    }
}

#ifdef T_QK_STAIR
/* kernels.h qk_stair: the band's edge in one register block. With K1 = 13
 * and blocks of 4 runs, the axis-1 query rows that see only part of a
 * block come as 3 rows over 1, 2 and 3 of its runs (or 3, 2 and 1), which
 * as 3 qk_runs calls of 4 queries ran at 30-58 TSC cycles a (query, run)
 * pair against 24.5 in the calls of whole blocks (4 to 12 accumulator
 * chains, and each call's fixed cost). Here: 3 groups of 4 rows x 3 runs,
 * group g against runs [0, g + 1) (LEAD 0) or [g, 3) (LEAD 1): 24
 * accumulators, one K load per run and dim feeding up to 12 FMAs; 27.9
 * cycles a pair. 2-core Zen 5 VM, 128x128, kernel 13, D 64, H 4: the score
 * calls 23.4 -> 20.1 M cycles a call of attn_neighborhood on 1 thread, the
 * whole call 0.983-0.990 (bench/attn-ab, 1 and 2 threads, self and flush;
 * the other phases wait longer on memory). */
T_INLINE void t_qk_stair_micro(const int LEAD, const float *const *q, const float *k,
                               int64_t ldk, int64_t kvs, int64_t d, float *s, int64_t lds,
                               int64_t svs)
{
#define T_STAIR_USED(g, v) (LEAD ? (v) >= (g) : (v) <= (g))
/* every (group, row, run) of the block, run innermost */
#define T_STAIR_EACH \
    T_UNROLL for (int g = 0; g < 3; g++) \
        T_UNROLL for (int i = 0; i < 4; i++) \
            T_UNROLL for (int v = 0; v < 3; v++)
    vf acc[3][4][3];
    const float *qr[12];
T_UNROLL
    for (int i = 0; i < 12; i++)
        qr[i] = q[i];
    T_STAIR_EACH acc[g][i][v] = vzero();
#pragma GCC unroll 2
    for (int64_t c = 0; c < d; c++) {
        const float *kc = k + c * ldk;
        vf kv[3];
T_UNROLL
        for (int v = 0; v < 3; v++)
            kv[v] = vload(kc + v * kvs);
T_UNROLL
        for (int g = 0; g < 3; g++)
T_UNROLL
            for (int i = 0; i < 4; i++) {
                const vf qb = vbcast(qr[4 * g + i] + c);
T_UNROLL
                for (int v = 0; v < 3; v++)
                    if (T_STAIR_USED(g, v))
                        acc[g][i][v] = vfma(qb, kv[v], acc[g][i][v]);
            }
    }
    T_STAIR_EACH if (T_STAIR_USED(g, v))
        vstore(s + (4 * g + i) * lds + v * svs, acc[g][i][v]);
#undef T_STAIR_EACH
#undef T_STAIR_USED
}

/* q: 3 groups of `rows` rows; runs kruns[0..2]; nk keys from j0. Groups
 * of other than 4 rows, windows wider than a vector and runs that are not
 * equally far apart (a ring of run slots wrapping) go as 3 qk_runs calls. */
static void t_qk_stair(const float *const *q, int rows, int lead, const float *const *kruns,
                       int panel_nk, int j0, int nk, int64_t d, float *s, int64_t lds,
                       int64_t pitch)
{
    const int64_t kvs = kruns[1] - kruns[0];
    if (rows == 4 && nk <= VL && kruns[2] - kruns[1] == kvs) {
        if (lead)
            t_qk_stair_micro(1, q, kruns[0] + j0, t_ld_packed(panel_nk), kvs, d, s, lds, pitch);
        else
            t_qk_stair_micro(0, q, kruns[0] + j0, t_ld_packed(panel_nk), kvs, d, s, lds, pitch);
        return;
    }
    for (int g = 0; g < 3; g++) {
        const int lo = lead ? g : 0, hi = lead ? 3 : g + 1;
        t_qk_runs(q + rows * g, rows, kruns + lo, hi - lo, panel_nk, j0, nk, d,
                  s + rows * g * lds + lo * pitch, lds, pitch);
    }
}
#define T_QK_STAIR_ENTRY .qk_stair = t_qk_stair,
#else
#define T_QK_STAIR_ENTRY
#endif

/* ------------------------------------------------------------------ */
/* pv: O = alpha O + P V                                                */
/* ------------------------------------------------------------------ */

/* One key j of the P V micro-kernels: V row j (at vb, ldv floats apart)
 * loaded once, times p[i][j] (at pb, ldp apart) into the accumulators of
 * every row i < MR for which KEEP holds (a constant 1 compiles to no test). */
#define T_PV_KEY(vb, pb, j, KEEP) \
    { \
        const float *vj = (vb) + (int64_t)(j) * ldv; \
        vf vv[NV_PV]; \
        T_UNROLL for (int c = 0; c < NV; c++) vv[c] = vload(vj + c * VL); \
        T_UNROLL for (int i = 0; i < MR; i++) \
            if (KEEP) { \
                const vf pb_ = vbcast((pb) + i * ldp + (j)); \
                T_UNROLL for (int c = 0; c < NV; c++) acc[i][c] = vfma(pb_, vv[c], acc[i][c]); \
            } \
    }

/* MR rows x NV vectors of columns over nk keys of one V tile:
 * O = alpha O + P V. */
T_INLINE void t_pv_micro(const int MR, const int NV, const float *p, int64_t ldp,
                         const float *v, int64_t ldv, int nk, const float *alpha, float *o,
                         int64_t ldo, int tail, uintptr_t pf, int npf)
{
    /* P V accumulates from zero and meets alpha O only at the end: loading
     * and scaling O first made every FMA chain wait for a load and a
     * multiply (the isolated 6 x 4 AVX-512 kernel: 81% -> 83% of the peak). */
    vf acc[MR_PV][NV_PV];
T_UNROLL
    for (int i = 0; i < MR; i++)
T_UNROLL
        for (int c = 0; c < NV; c++)
            acc[i][c] = vzero();
    int j = 0;
#ifdef T_FMA_LANE
    /* 4 keys per step: one vector load of each P row, FMAs by lane */
    for (; j + 4 <= nk; j += 4) {
        t_prefetch_line(pf, npf, j >> 2);
        vf pq[MR_PV];
T_UNROLL
        for (int i = 0; i < MR; i++)
            pq[i] = vload(p + i * ldp + j);
        T_LANE_STEP(acc, v + (int64_t)j * ldv, VL, pq, 0, NV_PV)
        T_LANE_STEP(acc, v + (int64_t)(j + 1) * ldv, VL, pq, 1, NV_PV)
        T_LANE_STEP(acc, v + (int64_t)(j + 2) * ldv, VL, pq, 2, NV_PV)
        T_LANE_STEP(acc, v + (int64_t)(j + 3) * ldv, VL, pq, 3, NV_PV)
    }
#endif
    /* prefetching steps first, then the rest unrolled (see t_qk_micro) */
    for (const int npre = j + npf < nk ? j + npf : nk; j < npre; j++) {
        t_prefetch_line(pf, npf, j);
        T_PV_KEY(v, p, j, 1)
    }
#pragma GCC unroll 4
    for (; j < nk; j++)
        T_PV_KEY(v, p, j, 1)
T_UNROLL
    for (int i = 0; i < MR; i++) {
        const vf a = vset1(alpha[i]);
T_UNROLL
        for (int c = 0; c < NV - 1; c++)
            acc[i][c] = vfma(a, vload(o + i * ldo + c * VL), acc[i][c]);
        acc[i][NV - 1] = vfma(a, tail == VL ? vload(o + i * ldo + (NV - 1) * VL)
                                            : vload_n(o + i * ldo + (NV - 1) * VL, tail),
                              acc[i][NV - 1]);
T_UNROLL
        for (int c = 0; c < NV - 1; c++)
            vstore(o + i * ldo + c * VL, acc[i][c]);
        if (tail == VL)
            vstore(o + i * ldo + (NV - 1) * VL, acc[i][NV - 1]);
        else
            vstore_n(o + i * ldo + (NV - 1) * VL, acc[i][NV - 1], tail);
    }
}

#define T_PV_CASE(M, N) \
    case (M) * 8 + (N): \
        if ((M) <= MR_PV && (N) <= NV_PV) t_pv_micro((M) <= MR_PV ? (M) : 1, (N) <= NV_PV ? (N) : 1, \
                                                      p, ldp, v, ldv, nk, alpha, o, ldo, tail, \
                                                      pf, npf); \
        break;
#define T_PV_ROW(M) T_PV_CASE(M, 1) T_PV_CASE(M, 2) T_PV_CASE(M, 3) T_PV_CASE(M, 4)

static void t_pv_block(int mr, int nv, const float *p, int64_t ldp, const float *v, int64_t ldv,
                       int nk, const float *alpha, float *o, int64_t ldo, int tail, uintptr_t pf,
                       int npf)
{
    switch (mr * 8 + nv) {
    T_PV_ROW(1) T_PV_ROW(2) T_PV_ROW(3) T_PV_ROW(4)
    T_PV_ROW(5) T_PV_ROW(6) T_PV_ROW(7) T_PV_ROW(8)
    default: break;
    }
}

/* pv prefetches the next V tile as qk does the next K tile (see t_prefetch). */
/* O = alpha O + P V over one packed V tile of nk keys, prefetching pf's
 * tile, its micro-kernel calls numbered from call. Returns the number
 * after the last call. */
static int64_t t_pv_pf(const float *p, int64_t ldp, int nq, const float *v, int nk, int64_t dv,
                       const float *alpha, float *o, int64_t ldo, const t_prefetch *pf,
                       int64_t call)
{
    const int64_t ldv = t_ld_packed(dv);
    const int nvec = (int)((dv + VL - 1) / VL);
    for (int cv = 0; cv < nvec; cv += NV_PV) {
        const int nv = t_min(NV_PV, nvec - cv);
        const int tail = (int)(dv - (int64_t)(cv + nv - 1) * VL);
        for (int i = 0; i < nq; i += MR_PV, call++) {
            int npf;
            const uintptr_t pfl = t_prefetch_part(pf, call, &npf);
            t_pv_block(t_min(MR_PV, nq - i), nv, p + i * ldp, ldp, v + cv * VL, ldv, nk,
                       alpha + i, o + i * ldo + cv * VL, ldo, tail, pfl, npf);
        }
    }
    return call;
}

static void t_pv(const float *p, int64_t ldp, int nq, const float *v, int nk, int64_t dv,
                 const float *alpha, float *o, int64_t ldo)
{
    const int nvec = (int)((dv + VL - 1) / VL);
    const int64_t floats = (int64_t)t_v_tile_floats(nk, dv);
    const int64_t calls = (int64_t)((nvec + NV_PV - 1) / NV_PV) * ((nq + MR_PV - 1) / MR_PV);
    const t_prefetch pf = t_prefetch_plan(v, floats, calls);
    t_pv_pf(p, ldp, nq, v, nk, dv, alpha, o, ldo, &pf, 0);
}

/* The keys of MR rows' windows [klo[i], khi[i]) by who weights them:
 * [ulo, hend) and [tbeg, uhi) some rows, [blo, bhi) all rows. */
typedef struct t_key_split {
    int ulo, hend, blo, bhi, tbeg, uhi;
} t_key_split;

T_INLINE t_key_split t_split_keys(const int MR, const int *klo, const int *khi)
{
    t_key_split k = { klo[0], 0, klo[0], khi[0], 0, khi[0] };
T_UNROLL
    for (int i = 1; i < MR; i++) {
        k.ulo = klo[i] < k.ulo ? klo[i] : k.ulo;
        k.uhi = khi[i] > k.uhi ? khi[i] : k.uhi;
        k.blo = klo[i] > k.blo ? klo[i] : k.blo;
        k.bhi = khi[i] < k.bhi ? khi[i] : k.bhi;
    }
    k.hend = k.blo < k.uhi ? k.blo : k.uhi;
    k.bhi = k.bhi > k.blo ? k.bhi : k.blo;
    k.tbeg = k.bhi > k.hend ? k.bhi : k.hend;
    return k;
}

/* MR rows x NV vectors of O = scale P V over nruns V tiles, run r's at
 * vruns[r] + voff (P columns pitch apart), row i weighting keys [klo[i], khi[i]) of
 * each run (its P is 0 elsewhere: neighborhood windows, which shift by a
 * key from one query to the next). The keys every row weights go through
 * unrolled and branch-free; a key only some rows weight costs only their
 * FMAs: with K2 = 13 and 4 query rows over 16 keys a run, 52 of the 64
 * (row, key) products instead of all 64. */
T_INLINE void t_pv_runs_micro(const int MR, const int NV, const float *p, int64_t ldp,
                              const float *const *vruns, int64_t voff, int64_t ldv, int nruns,
                              int64_t pitch, const int *klo, const int *khi, const float *scale,
                              float *o, int64_t ldo, int tail)
{
    const t_key_split ks = t_split_keys(MR, klo, khi);
    const int ulo = ks.ulo, hend = ks.hend, blo = ks.blo, bhi = ks.bhi, tbeg = ks.tbeg,
              uhi = ks.uhi;
    vf acc[MR_PV][NV_PV];
T_UNROLL
    for (int i = 0; i < MR; i++)
T_UNROLL
        for (int c = 0; c < NV; c++)
            acc[i][c] = vzero();
    for (int r = 0; r < nruns; r++) {
        const float *pr = p + r * pitch, *vr = vruns[r] + voff;
        for (int j = ulo; j < hend; j++)
            T_PV_KEY(vr, pr, j, j >= klo[i] && j < khi[i])
#pragma GCC unroll 4
        for (int j = blo; j < bhi; j++)
            T_PV_KEY(vr, pr, j, 1)
        for (int j = tbeg; j < uhi; j++)
            T_PV_KEY(vr, pr, j, j >= klo[i] && j < khi[i])
    }
T_UNROLL
    for (int i = 0; i < MR; i++) {
        const vf sc = vset1(scale[i]);
T_UNROLL
        for (int c = 0; c < NV - 1; c++)
            vstore(o + i * ldo + c * VL, vmul(sc, acc[i][c]));
        if (tail == VL)
            vstore(o + i * ldo + (NV - 1) * VL, vmul(sc, acc[i][NV - 1]));
        else
            vstore_n(o + i * ldo + (NV - 1) * VL, vmul(sc, acc[i][NV - 1]), tail);
    }
}

#undef T_PV_KEY

#ifdef T_PV_PAIR
/* One key j of t_pv_pair_micro: V row j loaded once (NV vectors), times
 * the P of query row A (at pa) if UA and of B (at pb) if UB, row i where
 * KEEP holds. P rows are T_PV_PAIR_LDP floats apart: a constant, so each
 * row's P is an immediate offset (with the row stride in a register the
 * kernel ran out of general registers: 78% of the FMA peak on L1 data
 * instead of 91%). */
#define T_PV_PAIR_LDP 16
#define T_PV2_KEY(vb, pa, pb, j, UA, UB, KEEP) \
    { \
        const float *vj = (vb) + (int64_t)(j) * ldv; \
        vf vv[2]; \
        T_UNROLL for (int c = 0; c < NV; c++) vv[c] = vload(vj + c * VL); \
        T_UNROLL for (int i = 0; i < MR; i++) \
            if (KEEP) { \
                if (UA) { \
                    const vf x_ = vbcast((pa) + i * T_PV_PAIR_LDP + (j)); \
                    T_UNROLL for (int c = 0; c < NV; c++) acc[0][i][c] = vfma(x_, vv[c], acc[0][i][c]); \
                } \
                if (UB) { \
                    const vf x_ = vbcast((pb) + i * T_PV_PAIR_LDP + (j)); \
                    T_UNROLL for (int c = 0; c < NV; c++) acc[1][i][c] = vfma(x_, vv[c], acc[1][i][c]); \
                } \
            } \
    }

/* Runs [r0, r1) of t_pv_pair_micro for row A (if UA) and B (if UB). */
#define T_PV2_RUNS(UA, UB) \
    for (int r = r0; r < r1; r++) { \
        const float *ra = pa + (int64_t)r * pitch, *rb = pb + (int64_t)r * pitch; \
        const float *vr = vruns[r] + voff; \
        for (int j = ulo; j < hend; j++) \
            T_PV2_KEY(vr, ra, rb, j, UA, UB, j >= klo[i] && j < khi[i]) \
        _Pragma("GCC unroll 2") \
        for (int j = blo; j < bhi; j++) \
            T_PV2_KEY(vr, ra, rb, j, UA, UB, 1) \
        for (int j = tbeg; j < uhi; j++) \
            T_PV2_KEY(vr, ra, rb, j, UA, UB, j >= klo[i] && j < khi[i]) \
    }

/* t_pv_runs_micro for two query rows A and B of the same MR queries (same
 * klo, khi), NV <= 2 vectors of columns: A over runs [0, na), B over
 * [sb, sb + nb) of the same V tiles (pb_run: B's P of run sb). */
T_INLINE void t_pv_pair_micro(const int MR, const int NV, const float *pa, const float *pb_run,
                              const float *const *vruns, int64_t voff, int64_t ldv, int na,
                              int sb, int nb, int64_t pitch, const int *klo, const int *khi,
                              const float *sca, const float *scb, float *oa, float *ob,
                              int64_t ldo, int tail)
{
    const float *pb = pb_run - (int64_t)sb * pitch;   /* B's P by A's run numbers */
    const t_key_split ks = t_split_keys(MR, klo, khi);
    const int ulo = ks.ulo, hend = ks.hend, blo = ks.blo, bhi = ks.bhi, tbeg = ks.tbeg,
              uhi = ks.uhi;
    vf acc[2][4][2];
T_UNROLL
    for (int i = 0; i < MR; i++)
T_UNROLL
        for (int c = 0; c < NV; c++)
            acc[0][i][c] = acc[1][i][c] = vzero();
    /* A alone: runs [0, min(sb, na)); both: [sb, na); B alone: the rest */
    int r0 = 0, r1 = sb < na ? sb : na;
    T_PV2_RUNS(1, 0)
    r0 = r1;
    r1 = na;
    T_PV2_RUNS(1, 1)
    r0 = sb > na ? sb : na;
    r1 = sb + nb;
    T_PV2_RUNS(0, 1)
T_UNROLL
    for (int h = 0; h < 2; h++)
T_UNROLL
        for (int i = 0; i < MR; i++) {
            const vf sc = vset1((h ? scb : sca)[i]);
            float *oi = (h ? ob : oa) + i * ldo;
T_UNROLL
            for (int c = 0; c < NV - 1; c++)
                vstore(oi + c * VL, vmul(sc, acc[h][i][c]));
            if (tail == VL)
                vstore(oi + (NV - 1) * VL, vmul(sc, acc[h][i][NV - 1]));
            else
                vstore_n(oi + (NV - 1) * VL, vmul(sc, acc[h][i][NV - 1]), tail);
        }
}

#undef T_PV2_RUNS
#undef T_PV2_KEY

#define T_PVP_CASE(M, N) \
    case (M) * 8 + (N): \
        t_pv_pair_micro(M, N, pa, pb, vruns, voff, ldv, na, sb, nb, pitch, klo, khi, sca, scb, \
                        oa, ob, ldo, tail); \
        break;

static void t_pv_pair_block(int mr, int nv, const float *pa, const float *pb,
                            const float *const *vruns, int64_t voff, int64_t ldv, int na, int sb,
                            int nb, int64_t pitch, const int *klo, const int *khi,
                            const float *sca, const float *scb, float *oa, float *ob,
                            int64_t ldo, int tail)
{
    switch (mr * 8 + nv) {
    T_PVP_CASE(1, 1) T_PVP_CASE(1, 2) T_PVP_CASE(2, 1) T_PVP_CASE(2, 2)
    T_PVP_CASE(3, 1) T_PVP_CASE(3, 2) T_PVP_CASE(4, 1) T_PVP_CASE(4, 2)
    default: break;
    }
}
#undef T_PVP_CASE

/* pv_runs for two query rows at once (kernels.h, pv_pair), by pairs of
 * output vectors: each V vector loaded feeds both rows' FMAs, half the V
 * traffic of two pv_runs calls, which is what bounds those on runs in L2
 * (2 rows x 13 runs x 4 queries, D 64, V in L2: 209 -> 227 GFLOP/s on a
 * Zen 5 core, whose FMA peak is 258-265). */
static void t_pv_pair(const float *pa, const float *pb, int nq, const float *const *vruns,
                      int na, int sb, int nb, int j0, const int *klo, const int *khi,
                      int64_t pitch, int64_t dv, const float *sca, const float *scb, float *oa,
                      float *ob, int64_t ldo)
{
    const int64_t ldv = t_ld_packed(dv);
    const int nvec = (int)((dv + VL - 1) / VL);
    for (int cv = 0; cv < nvec; cv += 2) {
        const int nv = t_min(2, nvec - cv);
        const int tail = (int)(dv - (int64_t)(cv + nv - 1) * VL);
        for (int i = 0; i < nq; i += 4)
            t_pv_pair_block(t_min(4, nq - i), nv, pa + i * T_PV_PAIR_LDP,
                            pb + i * T_PV_PAIR_LDP, vruns, j0 * ldv + cv * VL, ldv, na, sb,
                            nb, pitch, klo + i, khi + i, sca + i, scb + i,
                            oa + i * ldo + cv * VL, ob + i * ldo + cv * VL, ldo, tail);
    }
}
#define T_PV_PAIR_ENTRY .pv_pair = t_pv_pair, .pv_pair_ldp = T_PV_PAIR_LDP,
#else
#define T_PV_PAIR_ENTRY
#endif

#define T_PVR_CASE(M, N) \
    case (M) * 8 + (N): \
        if ((M) <= MR_PV && (N) <= NV_PV) \
            t_pv_runs_micro((M) <= MR_PV ? (M) : 1, (N) <= NV_PV ? (N) : 1, p, ldp, vruns, voff, \
                            ldv, nruns, pitch, klo, khi, scale, o, ldo, tail); \
        break;
#define T_PVR_ROW(M) T_PVR_CASE(M, 1) T_PVR_CASE(M, 2) T_PVR_CASE(M, 3) T_PVR_CASE(M, 4)

static void t_pv_runs_block(int mr, int nv, const float *p, int64_t ldp,
                            const float *const *vruns, int64_t voff, int64_t ldv, int nruns,
                            int64_t pitch, const int *klo, const int *khi, const float *scale,
                            float *o, int64_t ldo, int tail)
{
    switch (mr * 8 + nv) {
    T_PVR_ROW(1) T_PVR_ROW(2) T_PVR_ROW(3) T_PVR_ROW(4)
    T_PVR_ROW(5) T_PVR_ROW(6) T_PVR_ROW(7) T_PVR_ROW(8)
    default: break;
    }
}

/* O = scale P V over keys j0.. of nruns V tiles, run r's at vruns[r] (its
 * P columns at r * pitch), row i weighting keys [klo[i], khi[i])
 * of each run (neighborhood attention). */
static void t_pv_runs(const float *p, int64_t ldp, int nq, const float *const *vruns,
                      int nruns, int j0, const int *klo, const int *khi, int64_t pitch,
                      int64_t dv, const float *scale, float *o, int64_t ldo)
{
    const int64_t ldv = t_ld_packed(dv);
    const int nvec = (int)((dv + VL - 1) / VL);
    for (int cv = 0; cv < nvec; cv += NV_PV) {
        const int nv = t_min(NV_PV, nvec - cv);
        const int tail = (int)(dv - (int64_t)(cv + nv - 1) * VL);
        for (int i = 0; i < nq; i += MR_PV)
            t_pv_runs_block(t_min(MR_PV, nq - i), nv, p + i * ldp, ldp, vruns,
                            j0 * ldv + cv * VL, ldv, nruns, pitch, klo + i, khi + i, scale + i,
                            o + i * ldo + cv * VL, ldo, tail);
    }
}

/* ------------------------------------------------------------------ */
/* exp and the online-softmax update                                    */
/* ------------------------------------------------------------------ */

static void t_vexp(float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        vstore(y + i, vexp_v(vload(y + i)));
    if (i < n)
        vstore_n(y + i, vexp_v(vload_n(y + i, (int)(n - i))), (int)(n - i));
}

/* Rows are processed in groups of VL, in two passes (row maxima, then exp
 * and row sums) with no data-dependent branches, so that the rows of a group
 * overlap in the out-of-order window; m, l and alpha are updated with one
 * vector exp per group. A row with nothing visible (max -inf) uses 0 as its
 * base, so its scores (-inf) give p = 0, and keeps m/l with alpha = 1. */
static void t_softmax_rows(float *s, int64_t lds, int nq, int nk, float *m, float *l, float *alpha)
{
    const vf ninf = vset1(-INFINITY);
    for (int r0 = 0; r0 < nq; r0 += VL) {
        const int g = t_min(VL, nq - r0);
        float mt[VL], base[VL], ts[VL], dlt[VL];
        for (int k = 0; k < g; k++) {
            const float *row = s + (int64_t)(r0 + k) * lds;
            vf vm = ninf;
            int c = 0;
            for (; c + VL <= nk; c += VL)
                vm = vmax(vm, vload(row + c));
            if (c < nk)
                vm = vmax(vm, vload_nfill(row + c, nk - c, -INFINITY));
            mt[k] = vhmax(vm);
        }
        for (int k = 0; k < g; k++) {
            const float mo = m[r0 + k], mn = mt[k] > mo ? mt[k] : mo;
            const int dead = mn == -INFINITY;
            base[k] = dead ? 0.0f : mn;
            dlt[k] = dead ? 0.0f : mo - mn;   /* -inf when m_old = -inf: alpha 0 */
            m[r0 + k] = mn;
        }
        for (int k = 0; k < g; k++) {
            float *row = s + (int64_t)(r0 + k) * lds;
            const vf vmn = vset1(base[k]);
            vf sum = vzero();
            int c = 0;
            for (; c + VL <= nk; c += VL) {
                const vf e = vexp_sm(vsub(vload(row + c), vmn));
                vstore(row + c, e);
                sum = vadd(sum, e);
            }
            if (c < nk) {
                const vf e = vexp_sm(vsub(vload_nfill(row + c, nk - c, -INFINITY), vmn));
                vstore_n(row + c, e, nk - c);
                sum = vadd(sum, e);
            }
            ts[k] = vhsum(sum);
        }
        const vf a = vexp_sm(vload_n(dlt, g));
        vstore_n(alpha + r0, a, g);
        vstore_n(l + r0, vfma(a, vload_n(l + r0, g), vload_n(ts, g)), g);
    }
}

/* The softmax of a neighborhood query tile over its runs (see kernels.h):
 * one additive mask row per query, the same for each of its runs (whose
 * columns hold the same axis-2 positions), instead of -inf written into
 * every run's hidden columns. */
/* R rows of t_softmax_runs whose runs are NVR vectors each (pitch = NVR
 * VL), side by side: their max, exp and sum chains interleave, and each
 * row's mask stays in registers. */
T_INLINE void t_softmax_runs_vl(const int R, const int NVR, float *s, int64_t lds, int nruns,
                                int64_t rstride, float scale, const float *bias, int64_t ldb,
                                float *m, float *l)
{
    const vf sc = vset1(scale);
    vf b[4][2], mx[4], sum[4];
T_UNROLL
    for (int k = 0; k < R; k++) {
T_UNROLL
        for (int v = 0; v < NVR; v++)
            b[k][v] = vload(bias + k * ldb + v * VL);
        mx[k] = vset1(-INFINITY);
        sum[k] = vzero();
    }
    for (int r = 0; r < nruns; r++)
T_UNROLL
        for (int k = 0; k < R; k++)
T_UNROLL
            for (int v = 0; v < NVR; v++)
                mx[k] = vmax(mx[k], vfma(vload(s + k * lds + r * rstride + v * VL), sc, b[k][v]));
T_UNROLL
    for (int k = 0; k < R; k++) {
        m[k] = vhmax(mx[k]);
T_UNROLL
        for (int v = 0; v < NVR; v++)   /* exp(scale s + bias - m) as exp(scale s + (bias - m)) */
            b[k][v] = vsub(b[k][v], vset1(m[k]));
    }
    for (int r = 0; r < nruns; r++)
T_UNROLL
        for (int k = 0; k < R; k++)
T_UNROLL
            for (int v = 0; v < NVR; v++) {
                float *x = s + k * lds + r * rstride + v * VL;
                const vf e = vexp_sm(vfma(vload(x), sc, b[k][v]));
                vstore(x, e);
                sum[k] = vadd(sum[k], e);
            }
T_UNROLL
    for (int k = 0; k < R; k++)
        l[k] = vhsum(sum[k]);
}

/* Rows [i, nq) of t_softmax_runs for runs of NVR vectors: 4 at a time,
 * then 2, then 1. */
T_INLINE void t_softmax_runs_nvr(const int NVR, float *s, int64_t lds, int i, int nq, int nruns,
                                 int64_t rstride, float scale, const float *bias, int64_t ldb,
                                 float *m, float *l)
{
    for (; i + 4 <= nq; i += 4)
        t_softmax_runs_vl(4, NVR, s + i * lds, lds, nruns, rstride, scale, bias + i * ldb, ldb,
                          m + i, l + i);
    for (; i + 2 <= nq; i += 2)
        t_softmax_runs_vl(2, NVR, s + i * lds, lds, nruns, rstride, scale, bias + i * ldb, ldb,
                          m + i, l + i);
    for (; i < nq; i++)
        t_softmax_runs_vl(1, NVR, s + i * lds, lds, nruns, rstride, scale, bias + i * ldb, ldb,
                          m + i, l + i);
}

/* The softmax of a neighborhood query tile over its runs (see kernels.h):
 * one additive mask row per query, the same for each of its runs (whose
 * columns hold the same axis-2 positions), instead of -inf written into
 * every run's hidden columns. Runs of one or two vectors (K2 up to 13-15
 * with 16 lanes, 5-7 with 8) go 4 rows at a time (1 thread, 128x128,
 * kernel 13, D 64, H 4, AVX-512: 22.03 ms, 2 rows 22.42, one at a time
 * through the loop below 23.26). */
static void t_softmax_runs(float *s, int64_t lds, int nq, int nruns, int64_t pitch,
                           int64_t rstride, float scale, const float *bias, int64_t ldb,
                           float *m, float *l)
{
    if (pitch == VL) {
        t_softmax_runs_nvr(1, s, lds, 0, nq, nruns, rstride, scale, bias, ldb, m, l);
        return;
    }
    if (pitch == 2 * VL) {
        t_softmax_runs_nvr(2, s, lds, 0, nq, nruns, rstride, scale, bias, ldb, m, l);
        return;
    }
    const vf sc = vset1(scale);
    for (int i = 0; i < nq; i++) {
        float *row = s + (int64_t)i * lds;
        const float *b = bias + (int64_t)i * ldb;
        vf vm = vset1(-INFINITY);
        for (int r = 0; r < nruns; r++)
            for (int64_t c = 0; c < pitch; c += VL)
                vm = vmax(vm, vfma(vload(row + r * rstride + c), sc, vload(b + c)));
        const float mx = vhmax(vm);
        const vf vmx = vset1(mx);
        vf sum = vzero();
        for (int r = 0; r < nruns; r++)
            for (int64_t c = 0; c < pitch; c += VL) {
                float *x = row + r * rstride + c;
                const vf e = vexp_sm(vsub(vfma(vload(x), sc, vload(b + c)), vmx));
                vstore(x, e);
                sum = vadd(sum, e);
            }
        m[i] = mx;
        l[i] = vhsum(sum);
    }
}

/* ------------------------------------------------------------------ */
/* attend: one key tile, strip by strip                                 */
/* ------------------------------------------------------------------ */

/* Query rows per strip of t_attend: 8 register blocks. A strip's Q rows,
 * scores and O rows (3 x 24 KB at 48 rows, d = 128, 128 keys) stay in L2
 * and mostly in L1 from its qk to its pv, and each K (V) block of the
 * micro-kernels still serves 8 calls from L1. 24- and 48-row strips measured
 * alike, 6- and 12-row strips slower (the K and V blocks then come from L2
 * for every call). */
#define T_STRIP_ROWS (8 * MR_QK)

/* qk, softmax_rows and pv of one key tile, one strip of query rows after the
 * other: the strip's scores are read by the softmax and by pv while they are
 * still in L1, where three passes over all nq rows let each pass evict the
 * scores and O rows that the next one reads. K and V tiles (72 KB each at
 * d = 128) are read from L2 once per strip. The next tiles are prefetched
 * into L2 over all the strips' micro-kernel calls, as t_qk and t_pv do. */
static void t_attend(const float *q, int64_t ldq, int nq, const float *k, const float *v, int nk,
                     int64_t d, int64_t dv, float *s, int64_t lds, float *m, float *l,
                     float *alpha, float *o, int64_t ldo)
{
    const int kvec = (nk + VL - 1) / VL, ovec = (int)((dv + VL - 1) / VL);
    const int64_t strips = (nq + T_STRIP_ROWS - 1) / T_STRIP_ROWS;
    const int64_t qk_calls = strips * ((kvec + NV_QK - 1) / NV_QK) *
                             ((T_STRIP_ROWS + MR_QK - 1) / MR_QK);
    const int64_t pv_calls = strips * ((ovec + NV_PV - 1) / NV_PV) *
                             ((T_STRIP_ROWS + MR_PV - 1) / MR_PV);
    const t_prefetch kpf = t_prefetch_plan(k, (int64_t)t_k_tile_floats(nk, d), qk_calls);
    const t_prefetch vpf = t_prefetch_plan(v, (int64_t)t_v_tile_floats(nk, dv), pv_calls);
    int64_t kcall = 0, vcall = 0;
    for (int i0 = 0; i0 < nq; i0 += T_STRIP_ROWS) {
        const int ns = t_min(T_STRIP_ROWS, nq - i0);
        kcall = t_qk_ld(q + i0 * ldq, ldq, ns, k, t_ld_packed(nk), nk, d, s, lds, &kpf, kcall);
        t_softmax_rows(s, lds, ns, nk, m + i0, l + i0, alpha + i0);
        vcall = t_pv_pf(s, lds, ns, v, nk, dv, alpha + i0, o + i0 * ldo, ldo, &vpf, vcall);
    }
}

/* kernels.h store_stream: vstream (defined by the ISA files that have a
 * streaming vector store) for whole vectors to vector-aligned rows; other
 * rows, and sets without vstream, go through the 16-byte path (plain
 * stores where that is missing too). 2-core Zen 5 VM, neighborhood 128x128,
 * kernel 13, D 64, 64-byte aligned tensors, bench/attn-ab against the
 * 16-byte path for all rows: 2 threads H 4 0.993, H 16 0.994, D 32 0.995,
 * 56x56 H 8 0.986; 1 thread H 4 0.978. */
static void t_store_stream(float *dst, const float *src, int64_t n)
{
#ifdef vstream
    if (((uintptr_t)dst & (VL * sizeof(float) - 1)) == 0) {
        int64_t c = 0;
        for (; c + VL <= n; c += VL)
            vstream(dst + c, vload(src + c));
        for (; c < n; c++)
            dst[c] = src[c];
        return;
    }
#endif
    attn_cpu_store_scaled_stream(dst, src, n, 1.0f);
}

/* The template's f32 kernel set, for the attn_cpu_kernels table of each
 * per-ISA file (which adds .name, .isa and defines t_tile_sizes). */
#define T_SDPA_KERNELS                                                          \
    .tile_sizes = t_tile_sizes, .load_rows = t_load_rows,                      \
    .k_tile_floats = t_k_tile_floats, .v_tile_floats = t_v_tile_floats,        \
    .pack_k = t_pack_k, .pack_v = t_pack_v, .qk = t_qk, .qk_runs = t_qk_runs,  \
    .pv = t_pv, .pv_runs = t_pv_runs, .vexp = t_vexp, .softmax_rows = t_softmax_rows, \
    .softmax_runs = t_softmax_runs, .store_stream = t_store_stream, T_PV_PAIR_ENTRY \
    T_QK_STAIR_ENTRY \
    .attend = t_attend

#endif
