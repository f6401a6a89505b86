/* ISA-generic neighborhood-attention micro-kernels with QUERIES in the vector
 * lanes (included by simd/avx2_sdpa.c, simd/avx512_sdpa.c, simd/neon_sdpa.c
 * after sdpa_tmpl.h; the driver is src/cpu/neighborhood_lanes.c).
 *
 * A lane vector holds VL consecutive queries along the grid's last axis.
 * Keys and values are packed transposed, one key row (fixed outer-axis
 * position) at a time: kt[c * ldk + col], col contiguous. For window offset
 * e, lane l's key is column (first query + l + e): the VL keys of one offset
 * are one unaligned vector load, every lane is useful, and the softmax over
 * a window is elementwise across the score vectors (no horizontal step).
 *
 * Register blocks: NB_R query rows (consecutive on the next-outer axis, same
 * lane columns) x NB_G offsets. Per dim, NB_R aligned Q loads and NB_G
 * unaligned K loads feed NB_R * NB_G FMAs; a K vector serves every query row
 * whose window holds its key row. P V has the same shape with NB_G vectors
 * of output dims in place of offsets.
 *
 * The including file defines NB_R <= 4 and NB_G <= 7 (accumulators NB_R *
 * NB_G plus NB_R + 1 live vectors must fit the register file), optionally
 * NB_G_QK <= 7 for the score blocks alone (default NB_G), transpose_vl,
 * vf nb_hide(vf s, vf bias): lanes where bias is -inf become -inf, the
 * others keep s (a select, so that a NaN or Inf key outside a lane's window
 * never reaches it), a lane index type nb_lidx with nb_clamp_idx(lo, hi)
 * and vf nb_clamp_lanes(vf v, nb_lidx i): lane l takes lane min(max(l, lo),
 * hi) of v (one permute), and may define T_NB_IN_REG(x) to keep vector x in
 * a register (see below). */
#ifndef ATTN_NB_TMPL_H
#define ATTN_NB_TMPL_H

/* An unaligned K (V) vector feeds up to NB_R FMAs; with fewer rows in a
 * block x86 compilers fold the load into each FMA, which then repeats the
 * (cache-line-splitting) load once per row: half the speed at 3 rows. */
#ifndef NB_G_QK
#define NB_G_QK NB_G
#endif

#ifndef T_NB_IN_REG
#define T_NB_IN_REG(x) ((void)0)
#endif

/* Packed key rows live in L2 (a block reads 2-3 lines of each of D dims
 * per key row, pitch floats apart, which the hardware prefetchers do not
 * follow): nb_qk fetches the same dim of the key row NB_PF_KROWS ahead (the
 * next call's), nb_pv the lines of the key row NB_PF_ROWS ahead. Without
 * them the kernels ran at 40% of the FMA peak on L2-resident rows instead
 * of 63%; one key row ahead was 1.08x faster than 8 dims ahead in place. */
#define NB_PF_KROWS 1
#define NB_PF_ROWS 6

/* dst[c * ldc + i] = scale * src[i][c] for c < d, i < n (lanes n..VL-1 of
 * the last block of VL zero); the rows are rs elements apart. */
T_INLINE void t_nb_load_t_dt(float *dst, int64_t ldc, const char *src, const attn_dtype DT,
                             int64_t rs, int64_t cs, int n, int64_t d, float scale)
{
    const int64_t es = (int64_t)attn_dtype_bytes(DT);
    const vf vs = vset1(scale);
    for (int i0 = 0; i0 < n; i0 += VL) {
        const int ni = t_min(VL, n - i0);
        const char *s0 = src + i0 * rs * es;
        for (int64_t c0 = 0; c0 < d; c0 += VL) {
            const int nc = (int)(d - c0 < VL ? d - c0 : VL);
            vf r[VL];
            T_UNROLL
            for (int t = 0; t < VL; t++)
                r[t] = t < ni ? vmul(vs, vload_cvt(s0 + t * rs * es, DT, cs, c0, nc)) : vzero();
            transpose_vl(r);
            float *o = dst + c0 * ldc + i0;
            T_UNROLL
            for (int t = 0; t < VL; t++)
                if (t < nc)
                    vstore(o + t * ldc, r[t]);
        }
    }
}

static void t_nb_load_t(float *dst, int64_t ldc, const void *src, attn_dtype dt, int64_t rs,
                        int64_t cs, int n, int64_t d, float scale)
{
    switch (dt) {
    case ATTN_F16:  t_nb_load_t_dt(dst, ldc, (const char *)src, ATTN_F16, rs, cs, n, d, scale); break;
    case ATTN_BF16: t_nb_load_t_dt(dst, ldc, (const char *)src, ATTN_BF16, rs, cs, n, d, scale); break;
    default:        t_nb_load_t_dt(dst, ldc, (const char *)src, ATTN_F32, rs, cs, n, d, scale); break;
    }
}

/* dst row i (rows rs elements apart), column c = ot[c * VL + i] * inv[i]
 * for i < n, c < dv, converted to dt; f32 rows with unit column stride past
 * the caches where stream is set (t_store_stream's paths). */
static void t_nb_store_o(void *dst, attn_dtype dt, int64_t rs, int64_t cs, const float *ot,
                         const float *inv, int n, int64_t dv, int stream)
{
    float tmp[VL * VL] __attribute__((aligned(64)));
    const vf vinv = vload(inv);
    const int64_t es = (int64_t)attn_dtype_bytes(dt);
    for (int64_t cb = 0; cb < dv; cb += VL) {
        const int nc = (int)(dv - cb < VL ? dv - cb : VL);
        vf r[VL];
        T_UNROLL
        for (int c = 0; c < VL; c++)
            r[c] = c < nc ? vmul(vload(ot + (cb + c) * VL), vinv) : vzero();
        transpose_vl(r);
        for (int i = 0; i < n; i++) {
            char *row = (char *)dst + (int64_t)i * rs * es;
            if (dt == ATTN_F32 && cs == 1 && stream) {
                vstore(tmp, r[i]);
                t_store_stream((float *)row + cb, tmp, nc);
            } else if (dt == ATTN_F32 && cs == 1) {
                if (nc == VL)
                    vstore((float *)row + cb, r[i]);
                else
                    vstore_n((float *)row + cb, r[i], nc);
            } else {
                vstore(tmp, r[i]);
                for (int c = 0; c < nc; c++)
                    attn_store_f32(row, dt, (cb + c) * cs, tmp[c]);
            }
        }
    }
}

/* s[i * lds + g * VL + l] = sum_c qt[i * ldq + c * VL + l] * kt[c * ldk + g + l']
 * for R rows and G offsets, l' = l, or with FIX l' = min(max(l, lo), hi)
 * (fi: nb_clamp_idx(lo, hi)). */
T_INLINE void t_nb_qk_micro(const int R, const int G, const int FIX, const float *qt,
                            int64_t ldq, const float *kt, int64_t ldk, int64_t d, float *s,
                            int64_t lds, nb_lidx fi)
{
    vf acc[4][7];
    T_UNROLL
    for (int i = 0; i < R; i++)
        T_UNROLL
        for (int g = 0; g < G; g++)
            acc[i][g] = vzero();
    for (int64_t c = 0; c < d; c++) {
        const float *kc = kt + c * ldk;
        __builtin_prefetch(kc + NB_PF_KROWS * d * ldk);
        __builtin_prefetch(kc + NB_PF_KROWS * d * ldk + VL + G - 1);
        vf q[4];
        T_UNROLL
        for (int i = 0; i < R; i++)
            q[i] = vload(qt + i * ldq + c * VL);
        T_UNROLL
        for (int g = 0; g < G; g++) {
            vf k = vload(kc + g);
            if (FIX)
                k = nb_clamp_lanes(k, fi);
            T_NB_IN_REG(k);
            T_UNROLL
            for (int i = 0; i < R; i++)
                acc[i][g] = vfma(q[i], k, acc[i][g]);
        }
    }
    T_UNROLL
    for (int i = 0; i < R; i++)
        T_UNROLL
        for (int g = 0; g < G; g++)
            vstore(s + i * lds + g * VL, acc[i][g]);
}

/* ot[i * ldo + g * VL + l] += sum_r sum_e p[i * ldp + (r * ne + e) * VL + l]
 *                                       * vrows[r][g * ldv + e + l']
 * for R rows and G output-dim vectors, over nr key rows and ne offsets; l'
 * as in t_nb_qk_micro. */
T_INLINE void t_nb_pv_micro(const int R, const int G, const int FIX, const float *p,
                            int64_t ldp, const float *const *vrows, int64_t voff, int64_t ldv,
                            int nr, int ne, float *ot, int64_t ldo, nb_lidx fi)
{
    vf acc[4][7];
    T_UNROLL
    for (int i = 0; i < R; i++)
        T_UNROLL
        for (int g = 0; g < G; g++)
            acc[i][g] = vload(ot + i * ldo + g * VL);
    for (int r = 0; r < nr; r++) {
        const float *v = vrows[r] + voff;
        const float *pr = p + (int64_t)r * ne * VL;
        if (r + NB_PF_ROWS < nr) {
            const float *vn = vrows[r + NB_PF_ROWS] + voff;
            T_UNROLL
            for (int g = 0; g < G; g++) {
                __builtin_prefetch(vn + g * ldv);
                __builtin_prefetch(vn + g * ldv + ne + VL - 1);
            }
        }
        for (int e = 0; e < ne; e++) {
            vf pv[4];
            T_UNROLL
            for (int i = 0; i < R; i++)
                pv[i] = vload(pr + i * ldp + e * VL);
            T_UNROLL
            for (int g = 0; g < G; g++) {
                vf x = vload(v + g * ldv + e);
                if (FIX)
                    x = nb_clamp_lanes(x, fi);
                T_NB_IN_REG(x);
                T_UNROLL
                for (int i = 0; i < R; i++)
                    acc[i][g] = vfma(pv[i], x, acc[i][g]);
            }
        }
    }
    T_UNROLL
    for (int i = 0; i < R; i++)
        T_UNROLL
        for (int g = 0; g < G; g++)
            vstore(ot + i * ldo + g * VL, acc[i][g]);
}

typedef void (*t_nb_qk_fn)(const float *, int64_t, const float *, int64_t, int64_t, float *,
                           int64_t, nb_lidx);
typedef void (*t_nb_pv_fn)(const float *, int64_t, const float *const *, int64_t, int64_t, int,
                           int, float *, int64_t, nb_lidx);

/* One function per block shape (R, G) <= (NB_R, NB_G), plain (F 0) and with
 * clamped lanes (F 1). */
#define T_NB_SHAPE_F(R, G, F)                                                               \
    static void t_nb_qk_##R##_##G##_##F(const float *qt, int64_t ldq, const float *kt,      \
                                        int64_t ldk, int64_t d, float *s, int64_t lds,      \
                                        nb_lidx fi)                                         \
    {                                                                                      \
        t_nb_qk_micro(R, G, F, qt, ldq, kt, ldk, d, s, lds, fi);                           \
    }                                                                                      \
    static void t_nb_pv_##R##_##G##_##F(const float *p, int64_t ldp, const float *const *vrows, \
                                        int64_t voff, int64_t ldv, int nr, int ne, float *ot, \
                                        int64_t ldo, nb_lidx fi)                            \
    {                                                                                      \
        t_nb_pv_micro(R, G, F, p, ldp, vrows, voff, ldv, nr, ne, ot, ldo, fi);             \
    }
#define T_NB_SHAPE(R, G) T_NB_SHAPE_F(R, G, 0) T_NB_SHAPE_F(R, G, 1)
#define T_NB_ROW(R) \
    T_NB_SHAPE(R, 1) T_NB_SHAPE(R, 2) T_NB_SHAPE(R, 3) T_NB_SHAPE(R, 4) \
    T_NB_SHAPE(R, 5) T_NB_SHAPE(R, 6) T_NB_SHAPE(R, 7)
T_NB_ROW(1)
T_NB_ROW(2)
T_NB_ROW(3)
T_NB_ROW(4)
#define T_NB_FN_ROW(R, F) { T_NB_ENTRY(R, 1, F), T_NB_ENTRY(R, 2, F), T_NB_ENTRY(R, 3, F), \
                            T_NB_ENTRY(R, 4, F), T_NB_ENTRY(R, 5, F), T_NB_ENTRY(R, 6, F), \
                            T_NB_ENTRY(R, 7, F) }
#define T_NB_FN_SET(F) { T_NB_FN_ROW(1, F), T_NB_FN_ROW(2, F), T_NB_FN_ROW(3, F), \
                         T_NB_FN_ROW(4, F) }
#define T_NB_ENTRY(R, G, F) t_nb_qk_##R##_##G##_##F
static const t_nb_qk_fn t_nb_qk_fns[2][4][7] = { T_NB_FN_SET(0), T_NB_FN_SET(1) };
#undef T_NB_ENTRY
#define T_NB_ENTRY(R, G, F) t_nb_pv_##R##_##G##_##F
static const t_nb_pv_fn t_nb_pv_fns[2][4][7] = { T_NB_FN_SET(0), T_NB_FN_SET(1) };
#undef T_NB_ENTRY

/* Block sizes for n items in chunks of at most m: as equal as possible
 * (13 offsets by 7: 7 + 6, not 7 + 6 of which one block is 1 wide). */
static inline int t_nb_chunk(int n, int m, int k)
{
    const int nch = (n + m - 1) / m, base = n / nch, extra = n % nch;
    return base + (k < extra);
}

/* The lane index vector of fix (attn_nb_fix; NULL: every lane its own). */
static inline nb_lidx t_nb_fix_idx(const attn_nb_fix *fix)
{
    return fix ? nb_clamp_idx(fix->lo, fix->hi) : nb_clamp_idx(0, VL - 1);
}

/* Scores of nr <= NB_R query rows (qt rows ldq apart) against one key row:
 * kt points at the column of lane 0's first offset, ne offsets; fix: NULL
 * or the clamped lanes (attn_nb_fix). */
static void t_nb_qk(const float *qt, int64_t ldq, int nr, const float *kt, int64_t ldk,
                    int ne, int64_t d, float *s, int64_t lds, const attn_nb_fix *fix)
{
    const int f = fix != NULL;
    const nb_lidx fi = t_nb_fix_idx(fix);
    const int nch = (ne + NB_G_QK - 1) / NB_G_QK;
    for (int k = 0, e = 0; k < nch; k++) {
        const int g = t_nb_chunk(ne, NB_G_QK, k);
        t_nb_qk_fns[f][nr - 1][g - 1](qt, ldq, kt + e, ldk, d, s + e * VL, lds, fi);
        e += g;
    }
}

/* P V of nr <= NB_R query rows over nkr key rows (vrows, already at lane 0's
 * first offset), ne offsets each, into ot (dv vectors of VL per row); fix as
 * in t_nb_qk. */
static void t_nb_pv(const float *p, int64_t ldp, int nr, const float *const *vrows,
                    int64_t ldv, int nkr, int ne, int64_t dv, float *ot, int64_t ldo,
                    const attn_nb_fix *fix)
{
    const int f = fix != NULL;
    const nb_lidx fi = t_nb_fix_idx(fix);
    const int nch = (int)((dv + NB_G - 1) / NB_G);
    for (int k = 0, c = 0; k < nch; k++) {
        const int g = t_nb_chunk((int)dv, NB_G, k);
        t_nb_pv_fns[f][nr - 1][g - 1](p, ldp, vrows, c * ldv, ldv, nkr, ne, ot + c * VL, ldo,
                                      fi);
        c += g;
    }
}

/* Softmax of one query row's window, per lane over nkr x ne score vectors:
 * scores hidden where bias[e * VL + l] is -inf (0: kept; NULL: none), then m = max,
 * s = exp(s - m), l = sum. Every lane sees at least one unbiased score. */
static void t_nb_softmax(float *s, int nkr, int ne, const float *bias, float *m, float *l)
{
    const int n = nkr * ne;
    vf mx = vset1(-INFINITY);
    if (bias)
        for (int r = 0; r < nkr; r++)
            for (int e = 0; e < ne; e++) {
                float *x = s + ((int64_t)r * ne + e) * VL;
                const vf v = nb_hide(vload(x), vload(bias + e * VL));
                vstore(x, v);
                mx = vmax(mx, v);
            }
    else
        for (int j = 0; j < n; j++)
            mx = vmax(mx, vload(s + (int64_t)j * VL));
    vf sum = vzero();
    for (int j = 0; j < n; j++) {
        const vf x = vexp_sm(vsub(vload(s + (int64_t)j * VL), mx));
        vstore(s + (int64_t)j * VL, x);
        sum = vadd(sum, x);
    }
    vstore(m, mx);
    vstore(l, sum);
}

#define T_NB_KERNELS                                                                  \
    .nb_vl = VL, .nb_rows = NB_R, .nb_load_t = t_nb_load_t, .nb_store_o = t_nb_store_o, \
    .nb_qk = t_nb_qk, .nb_softmax = t_nb_softmax, .nb_pv = t_nb_pv

#endif
