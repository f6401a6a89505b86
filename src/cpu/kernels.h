/* The CPU micro-kernel interface: one table per ISA (scalar here in src/cpu,
 * avx2/avx512/neon in simd/). The tiled drivers in src/cpu/ own the loops,
 * the masks and the bookkeeping; a kernel set owns only the inner products,
 * the packing of tiles into its preferred layout and the vector exp.
 *
 * Layout contract: the driver keeps Q rows and the output accumulator as f32
 * row-major with leading dimensions it chooses (multiples of 16 floats, rows
 * 64-byte aligned). K and V tiles are packed by the kernel set into
 * workspace the driver sizes with k_tile_floats/v_tile_floats; the sdpa
 * driver's Q rows come from load_q where a set has it. The Q, score
 * and output buffers hold bq rows (a multiple of 16 when tile_sizes makes it
 * one): qk/pv may read and write rows nq..round_up(nq, 16)-1 of them as
 * scratch; the driver ignores those rows. The drivers put the K (V) tiles of
 * a panel round_up(k_tile_floats(bk, d), 16) (v_tile_floats) floats apart,
 * and qk/pv may prefetch the next tile there while they work (a hint, never a
 * read: past the last tile it touches nothing). */
#ifndef ATTN_CPU_KERNELS_H
#define ATTN_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "attn.h"

/* A queries-in-lanes vector (nb_qk, nb_pv) at a non-causal border of its
 * axis: the lanes below lo (above hi) have their windows clamped to the
 * axis start (end), which is the window of lane lo (hi), so they read that
 * lane's keys: lane l reads as lane min(max(l, lo), hi). The lanes lo..hi
 * see the regular shift of their position, so every lane reads exactly its
 * own K2 keys: no offsets beyond K2, no masked scores. */
typedef struct attn_nb_fix {
    int lo, hi;
} attn_nb_fix;

typedef struct attn_cpu_kernels {
    const char *name;
    attn_isa    isa;

    /* Preferred tile sizes for head dim d (rows of Q, rows of K/V). */
    void (*tile_sizes)(int64_t d, int64_t dv, int *bq, int *bk);

    /* dst[i*ldd + c] = scale * src[i*row_stride + c*col_stride] for i < n, c < d,
     * converting from dtype; columns d..ldd-1 are zeroed. */
    void (*load_rows)(float *dst, int64_t ldd, const void *src, attn_dtype dt,
                      int64_t row_stride, int64_t col_stride, int n, int64_t d, float scale);

    /* Optional (NULL = load_rows): load_rows for the Q rows of attn_sdpa,
     * which only qk reads, so a kernel set may store them in its own format
     * (the AMX set: bf16 rows). */
    void (*load_q)(float *dst, int64_t ldd, const void *src, attn_dtype dt,
                   int64_t row_stride, int64_t col_stride, int n, int64_t d, float scale);

    /* Workspace (in floats) for a packed K tile of bk keys and d dims, and
     * for a packed V tile of bk keys and dv dims. */
    size_t (*k_tile_floats)(int bk, int64_t d);
    size_t (*v_tile_floats)(int bk, int64_t dv);

    /* Pack nk <= bk rows (keys) of K / V from a strided source. */
    void (*pack_k)(float *dst, const void *src, attn_dtype dt, int64_t row_stride,
                   int64_t col_stride, int nk, int bk, int64_t d);
    void (*pack_v)(float *dst, const void *src, attn_dtype dt, int64_t row_stride,
                   int64_t col_stride, int nk, int bk, int64_t dv);

    /* s[i*lds + j] = sum_c q[i*ldq + c] * k_j[c] for i < nq, j < nk. */
    void (*qk)(const float *q, int64_t ldq, int nq, const float *kpacked, int nk,
               int64_t d, float *s, int64_t lds);

    /* Neighborhood attention: like qk, query row i's d floats at q[i]
     * (rows anywhere, f32, unit stride), against keys j0..j0+nk-1 of each
     * of nruns tiles that pack_k packed with panel_nk keys, run r's at
     * kruns[r] (anywhere: SIMD sets block runs equally far apart); run r's
     * scores go to s[i*lds + r*pitch + j]. pitch is a
     * multiple of 16 >= nk, and columns nk..pitch-1 of each run may be
     * overwritten. SIMD sets load whole vectors: they may read up to 15
     * floats past the last tile (never used), so it must not end the
     * caller's allocation. NULL in the AVX512_BF16 and AMX sets (tagged tiles). */
    void (*qk_runs)(const float *const *q, int nq, const float *const *kruns, int nruns,
                    int panel_nk, int j0, int nk, int64_t d, float *s, int64_t lds,
                    int64_t pitch);

    /* qk_runs for a staircase: 3 groups of `rows` query rows (group g at
     * q[rows g ..]) over runs kruns[0..2], group g against runs [0, g + 1)
     * if lead is 0, [g, 3) if it is 1 (the other scores are not written).
     * NULL where a set has no such kernel (the caller makes the 3 qk_runs
     * calls). */
    void (*qk_stair)(const float *const *q, int rows, int lead, const float *const *kruns,
                     int panel_nk, int j0, int nk, int64_t d, float *s, int64_t lds,
                     int64_t pitch);

    /* o[i*ldo + c] = alpha[i] * o[i*ldo + c] + sum_j p[i*ldp + j] * v_j[c]. */
    void (*pv)(const float *p, int64_t ldp, int nq, const float *vpacked, int nk,
               int64_t dv, const float *alpha, float *o, int64_t ldo);

    /* Neighborhood attention, the pair of qk_runs: over keys j0.. of nruns
     * tiles that pack_v packed, run r's at vruns[r], row i weighting
     * keys j0 + [klo[i], khi[i]) of each (its P is 0 at the others, which
     * are not read):
     *   o[i*ldo + c] = scale[i] * sum_r sum_{klo[i] <= j < khi[i]}
     *                  p[i*ldp + r*pitch + j] * v_r,j0+j[c].
     * NULL in the AVX512_BF16 and AMX sets. */
    void (*pv_runs)(const float *p, int64_t ldp, int nq, const float *const *vruns, int nruns,
                    int j0, const int *klo, const int *khi, int64_t pitch, int64_t dv,
                    const float *scale, float *o, int64_t ldo);

    /* Optional (NULL: pv_runs row by row): pv_runs for two query rows A and
     * B of the same nq queries (same klo, khi) over one set of V tiles: A
     * over runs [0, na) (P at pa), B over runs [sb, sb + nb) (its P of run
     * sb at pb), 0 <= sb and na <= sb + nb; P rows pv_pair_ldp floats
     * apart (a constant of the set); scales sca / scb, outputs oa / ob
     * (rows ldo apart). */
    void (*pv_pair)(const float *pa, const float *pb, int nq, const float *const *vruns, int na,
                    int sb, int nb, int j0, const int *klo, const int *khi, int64_t pitch,
                    int64_t dv, const float *sca, const float *scb, float *oa, float *ob,
                    int64_t ldo);
    int pv_pair_ldp;

    /* Neighborhood attention, between qk_runs and pv_runs: the softmax of
     * each row i < nq of scale * s (s rows lds floats apart) over its nruns
     * runs of pitch scores (pitch a multiple of 16; run r at r * rstride),
     * with the additive mask bias[i*ldb + c] (c < pitch; 0 where the row's
     * window keeps run column c, -inf elsewhere; every row keeps at least
     * one column, and every column holds a finite score):
     *   m[i] = max over kept columns of scale s + bias;
     *   s[i][r*pitch + c] = exp(scale s + bias - m[i]) (0 at the hidden
     *   columns); l[i] = the sum of row i.
     * NULL in the AVX512_BF16 and AMX sets. */
    void (*softmax_runs)(float *s, int64_t lds, int nq, int nruns, int64_t pitch,
                         int64_t rstride, float scale, const float *bias, int64_t ldb, float *m,
                         float *l);

    /* dst[c] = src[c] for c < n, past the caches (output rows written once,
     * stream_store.h): whole vectors where dst is vector-aligned, else
     * attn_cpu_store_scaled_stream's 16-byte stores; the caller fences with
     * attn_cpu_stream_fence. NULL in the AVX512_BF16 and AMX sets. */
    void (*store_stream)(float *dst, const float *src, int64_t n);

    /* Neighborhood attention with queries in the vector lanes (simd/nb_tmpl.h;
     * 0 / NULL where a set lacks them: the driver then uses qk_runs).
     * nb_vl queries per lane vector; nb_rows query rows per register block.
     *   nb_load_t:  dst[c*ldc + i] = scale * src_row_i[c], i < n, c < d
     *               (lanes n..nb_vl-1 of each vector zero)
     *   nb_store_o: dst_row_i[c] = ot[c*nb_vl + i] * inv[i], i < n, c < dv;
     *               stream: f32 rows with unit column stride go past the
     *               caches, as store_stream (the caller fences)
     *   nb_qk:      s[i*lds + e*vl + l] = sum_c qt[i*ldq + c*vl + l] * kt[c*ldk + e + l]
     *               for i < nr <= nb_rows, e < ne (one key row)
     *   nb_pv:      ot[i*ldo + c*vl + l] += sum_r sum_e p[i*ldp + (r*ne + e)*vl + l]
     *                                       * vrows[r][c*ldv + e + l]
     *   nb_softmax: per lane over nkr*ne vectors of s: s = -inf where
     *               bias[e*vl + l] is -inf (0: kept; bias NULL: none),
     *               m = max, s = exp(s - m), l = sum.
     *   fix (nb_qk, nb_pv): NULL, or lane l reads column e + min(max(l,
     *               fix->lo), fix->hi) instead of e + l (see attn_nb_fix).
     * kt / vrows are read up to nb_vl - 1 floats past column ne - 1. */
    int nb_vl, nb_rows;
    void (*nb_load_t)(float *dst, int64_t ldc, const void *src, attn_dtype dt, int64_t rs,
                      int64_t cs, int n, int64_t d, float scale);
    void (*nb_store_o)(void *dst, attn_dtype dt, int64_t rs, int64_t cs, const float *ot,
                       const float *inv, int n, int64_t dv, int stream);
    void (*nb_qk)(const float *qt, int64_t ldq, int nr, const float *kt, int64_t ldk, int ne,
                  int64_t d, float *s, int64_t lds, const attn_nb_fix *fix);
    void (*nb_softmax)(float *s, int nkr, int ne, const float *bias, float *m, float *l);
    void (*nb_pv)(const float *p, int64_t ldp, int nr, const float *const *vrows, int64_t ldv,
                  int nkr, int ne, int64_t dv, float *ot, int64_t ldo, const attn_nb_fix *fix);

    /* In place y = exp(y) over n floats; -inf gives 0. */
    void (*vexp)(float *y, int64_t n);

    /* Optional (NULL = the driver's portable loop): the online-softmax update
     * of an nq x nk score tile with row stride lds. For each row r:
     *   mn = max(m[r], max_c s[r][c]);
     *   if mn == -inf: alpha[r] = 1, the row becomes zeros, m/l unchanged;
     *   else alpha[r] = exp(m[r] - mn); s[r][c] = exp(s[r][c] - mn);
     *        l[r] = alpha[r] * l[r] + sum_c s[r][c]; m[r] = mn. */
    void (*softmax_rows)(float *s, int64_t lds, int nq, int nk, float *m, float *l, float *alpha);

    /* Optional (NULL = qk, softmax_rows and pv in turn): one whole key tile
     * of nk keys against nq query rows, with nothing between qk and the
     * softmax: S = Q K^T; softmax_rows(S, m, l, alpha); O = alpha O + S V.
     * s is scratch of nq rows (lds floats apart). */
    void (*attend)(const float *q, int64_t ldq, int nq, const float *kpacked,
                   const float *vpacked, int nk, int64_t d, int64_t dv, float *s, int64_t lds,
                   float *m, float *l, float *alpha, float *o, int64_t ldo);

    /* Optional (NULL = nothing to do): called by every thread of an
     * attn_sdpa call before its first and after its last qk/pv, for
     * per-thread hardware state (the AMX tile configuration). */
    void (*thread_begin)(void);
    void (*thread_end)(void);
} attn_cpu_kernels;

/* The kernel sets compiled into this library; NULL where not built. */
extern const attn_cpu_kernels attn_cpu_kernels_scalar;
const attn_cpu_kernels *attn_cpu_kernels_avx2(void);
const attn_cpu_kernels *attn_cpu_kernels_avx512(void);
/* AVX-512 plus AVX512_BF16 (vdpbf16ps for bf16 K/V): only for CPUs with
 * ATTN_CPU_AVX512_BF16; built whenever the avx512 set is. */
const attn_cpu_kernels *attn_cpu_kernels_avx512_bf16(void);
/* AMX-BF16 (tdpbf16ps tiles) for bf16 q/k/v, the avx512_bf16 set for the
 * rest: only for CPUs with ATTN_CPU_AMX_TILE/AMX_BF16 and AVX512_BF16, once
 * the OS has granted the process tile data (attn_cpu_amx_permit). */
const attn_cpu_kernels *attn_cpu_kernels_amx(void);
const attn_cpu_kernels *attn_cpu_kernels_neon(void);

/* The kernel set for an ISA level the CPU supports, refined by its feature
 * bits (ATTN_CPU_*, e.g. AVX512_BF16); falls back to scalar where the ISA's
 * file was not compiled in. */
const attn_cpu_kernels *attn_cpu_kernels_for_features(attn_isa isa, uint64_t features);

#endif
