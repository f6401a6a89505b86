/* The CPU attn_neighborhood driver with QUERIES in the vector lanes (the
 * kernels: simd/nb_tmpl.h).
 *
 * Grids are 3 axes, outermost first. A lane vector is VL consecutive
 * queries along axis 2 of one dilation class; a block is up to R such
 * vectors on consecutive axis-1 rows (same axis-0 position, same columns).
 * Lane l of the vector at y0 sees, at window offset e, the key in column
 * y0 + l + e of each key row (a key row: one (axis-0, axis-1) position), so
 * the VL keys of one offset are one vector load from K packed transposed
 * per key row, Kt[row][d][col]. Offsets span [e_min, e_max): in the grid's
 * interior exactly K2 of them, every lane using each. Near a non-causal
 * axis-2 border the lanes whose window is clamped there share the window
 * of the nearest lane whose window is not; the kernels permute that lane's
 * keys into theirs (attn_nb_fix), so the block still spans K2 offsets.
 * Where no lane of the vector is unclamped, and at a causal start, the
 * block covers the union of the lanes' offsets and a per-lane mask sets the
 * scores of the keys outside each lane's own window to -inf. Lanes past the
 * axis end copy the last query's window (or, where that one is unclamped,
 * read the finite keys at their own columns); they are never stored.
 *
 * Per block: scores S[row][key row][offset][lane] for every key row the
 * block sees (a key row serves all query rows whose axis-1 window holds it:
 * one nb_qk call with that contiguous range of rows), then per query row
 * one softmax over its key rows (elementwise across vectors), then
 * O = P V over runs of key rows seen by the same range of rows (nb_pv keeps
 * the outputs of those rows in registers across the run), then 1 / l and a
 * transpose back to the out rows.
 *
 * Tasks and packing: a task is one band of NL_BAND_BLOCKS row blocks x one
 * segment of NL_SEG_VECS lane vectors (fewer on small grids), for every
 * query head of one KV head (GQA group). It packs the key rows and columns
 * its queries see, once for the group, into a per-thread buffer that stays
 * in L2 while its blocks read it (about 2.4 packs of each key). Measured on a 2-core AVX-512 VM
 * (1 thread, 128x128 grid, kernel 13, D 64, H 4, process CPU time): packing
 * whole class sub-grids once per KV head, read from L3 by the blocks, was
 * 1.2x slower; a region's KV heads one task after the other (their source
 * rows share pages and lines) 1.1x faster than heads outermost; bands of 8
 * blocks or segments of 4 vectors (less re-packing, more than L2) the same
 * within noise. Memory: per thread, O(region keys x (D + Dv)).
 *
 * Where it is used (neighborhood.c decides): 2-D and 3-D grids with kernels
 * whose runs would leave lanes of the other driver's vectors idle. Against
 * that driver (same machine, 1 thread, %FMA per CPU-second): 128x128 k7
 * 1.5-2x, 56x56 k7 1.2-2x, 3-D 16x32x32 k3x7x7 D32 1.2x, k9 and k11 1.05x;
 * k13 0.9x (its runs fill whole vectors there; both measured before the
 * border lanes were permuted instead of masked). The kernels reach 63% of
 * the FMA peak on L1/L2-resident data (4 x 5 blocks); the rest goes to
 * packing (about a quarter of the time), row blocks cut at the band's
 * window ends (1-3 rows), softmax and transposes. Border vectors with the
 * union of their lanes' offsets (K2 + (K2 - 1) / 2) and a mask instead of the
 * permute cost, against it (attn-ab, 2 threads, aligned, AVX-512): 3-D
 * 16x32x32 k3x7x7 D32 1.24x, 56x56 k7 H8 1.09x, 64x64 k9 1.12x, 128x128 k7
 * H16 1.02x; AVX2: 1.14x, 1.02x, 1.00x (128x128 k7 H4). */
#include <math.h>
#include <string.h>
#include "config.h"
#include "cpu_backend.h"
#include "neighborhood_grid.h"
#include "neighborhood_lanes.h"
#include "stream_store.h"
#include "task_queue.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

/* Row blocks per task band, lane vectors per task segment (at most: see
 * plan), tasks per thread (at least, where the grid allows). */
#define NL_BAND_BLOCKS 4
#define NL_SEG_VECS 2
#define NL_TASKS_PER_THREAD 4

typedef struct nl_plan {
    const attn_neighborhood_problem *p;
    const attn_cpu_kernels *ks;
    int64_t vl, nr;               /* lanes per vector, query rows per block */
    int64_t band, segc;           /* query rows per task band, columns per segment */
    int64_t nband, nsegc;         /* bands, segments on the longest class */
    int64_t ntasks;               /* of the flat task space (task_at) */
    int64_t padl, pitch;          /* packed row: column cbeg at padl, pitch floats per dim */
    int64_t kt_row, vt_row;       /* floats per packed key row of K, of V */
    int64_t max_ne, max_rows;     /* offsets per lane vector, key rows per block */
    int64_t reg_rows;             /* key rows per task region */
    int64_t ldq, ldo, lds;        /* floats per query row of Qt, Ot, S */
    int64_t ptr_floats;           /* room for max_rows pointers */
    int stream_out;               /* out rows stored past the caches (nb_stream_out) */
    size_t  ws_floats;
} nl_plan;

/* A task: batch b, KV head hk, class c per axis (class sub-grid n), axis-0
 * query j0 (key window [s0, s0 + nk0)), query rows [r1b, r1e) (key rows
 * [u1s, u1e)), query columns [ybeg, yend) (packed key columns [cbeg, cend)),
 * and its packed region: key row (k0, j1) at kt + (k0 * (u1e - u1s) + j1 -
 * u1s) * kt_row, V likewise from vt. */
typedef struct nl_task {
    int64_t b, hk, c[3], n[3], j0, s0, nk0;
    int64_t r1b, r1e, u1s, u1e, ybeg, yend, cbeg, cend;
    float *kt, *vt;
} nl_task;

/* Per-thread workspace. */
typedef struct nl_ws {
    float *kt, *vt, *qt, *ot, *s, *bias, *m, *l, *inv;
    const float **vrows;
} nl_ws;

static nl_ws carve(const nl_plan *pl, float *ws)
{
    nl_ws w;
    w.kt = ws;
    w.vt = w.kt + pl->reg_rows * pl->kt_row;
    w.qt = w.vt + pl->reg_rows * pl->vt_row;
    w.ot = w.qt + pl->nr * pl->ldq;
    w.s = w.ot + pl->nr * pl->ldo;
    w.bias = w.s + pl->nr * pl->lds;
    w.m = w.bias + nb_round_up(pl->max_ne * pl->vl, 16);
    w.l = w.m + nb_round_up(pl->nr * pl->vl, 16);
    w.inv = w.l + nb_round_up(pl->nr * pl->vl, 16);
    w.vrows = (const float **)(void *)(w.inv + nb_round_up(pl->vl, 16));
    return w;
}

/* Where the task's key row i starts in view v (columns from cbeg): axis-0
 * key s0 + i / nb1, axis-1 key u1s + i % nb1. */
static inline const char *key_row(const attn_neighborhood_problem *p, const nl_task *tk,
                                  const attn_view *v, int64_t i, int64_t nb1)
{
    return nb_elem(v, tk->b, tk->c[0] + p->dil[0] * (tk->s0 + i / nb1),
                   tk->c[1] + p->dil[1] * (tk->u1s + i % nb1), tk->c[2] + p->dil[2] * tk->cbeg,
                   tk->hk);
}

/* The task's key rows, columns [cbeg, cend), transposed: dim c of a row at
 * c * pitch, column j at padl + j - cbeg. The columns around them hold
 * zeros or earlier tasks' keys (the workspace starts zeroed): lanes past
 * the axis end read them, and masked lanes (score -inf, P 0) multiply them
 * by 0, so they must be finite. */
static void pack_region(const nl_plan *pl, const nl_task *tk)
{
    const attn_neighborhood_problem *p = pl->p;
    const attn_view *views[2] = { &p->k, &p->v };
    const int64_t dims[2] = { p->d, p->dv }, rows[2] = { pl->kt_row, pl->vt_row };
    float *bases[2] = { tk->kt, tk->vt };
    const int64_t n = tk->cend - tk->cbeg, nb1 = tk->u1e - tk->u1s, nrows = tk->nk0 * nb1;
    int64_t es[2], step[2];
    for (int t = 0; t < 2; t++) {
        es[t] = (int64_t)attn_dtype_size(views[t]->dtype);
        step[t] = p->dil[2] * views[t]->stride[3] * es[t];
    }
    /* key row i: axis-0 key s0 + i / nb1, axis-1 key u1s + i % nb1; the next
     * row's K and V rows load while this one packs */
    for (int64_t i = 0; i < nrows; i++)
        for (int t = 0; t < 2; t++) {
            const attn_view *v = views[t];
            if (i + 1 < nrows)
                nb_prefetch_rows(key_row(p, tk, v, i + 1, nb1), step[t], n, dims[t] * es[t],
                                 1);
            pl->ks->nb_load_t(bases[t] + i * rows[t] + pl->padl, pl->pitch,
                              key_row(p, tk, v, i, nb1), v->dtype, p->dil[2] * v->stride[3],
                              v->stride[5], (int)n, dims[t], 1.0f);
        }
}

/* The query rows [*ia, *ib) of a block whose axis-1 windows hold key row j1. */
static inline void rows_seeing(const int64_t *w1s, const int64_t *w1e, int64_t nr, int64_t j1,
                               int64_t *ia, int64_t *ib)
{
    *ia = 0;
    while (w1e[*ia] <= j1)
        (*ia)++;
    *ib = nr;
    while (w1s[*ib - 1] > j1)
        (*ib)--;
}

/* Query head h, axis-1 rows [r1, r1 + nr), lane vector at axis-2 position
 * y0, of task tk. */
static void run_block(const nl_plan *pl, const nl_task *tk, const nl_ws *w, int64_t h,
                      int64_t r1, int64_t y0)
{
    const attn_neighborhood_problem *p = pl->p;
    const attn_cpu_kernels *ks = pl->ks;
    const int64_t vl = pl->vl, n1 = tk->n[1], n2 = tk->n[2], nk0 = tk->nk0;
    const int64_t nr = nb_min64(pl->nr, n1 - r1), nl = nb_min64(vl, n2 - y0);
    int64_t w1s[4], w1e[4];
    for (int64_t i = 0; i < nr; i++)
        nb_window(p, 1, r1 + i, n1, &w1s[i], &w1e[i]);
    const int64_t u1s = w1s[0], u1e = w1e[nr - 1], nb1 = tk->u1e - tk->u1s;

    /* Offsets: lane l's window [a, b) relative to its own position. */
    int64_t a[64], bnd[64], e_min = INT64_MAX, e_max = INT64_MIN;
    for (int64_t l = 0; l < vl; l++) {
        const int64_t pos = y0 + nb_min64(l, nl - 1);
        int64_t s, e;
        nb_window(p, 2, pos, n2, &s, &e);
        a[l] = s - pos;
        bnd[l] = e - pos;
        e_min = nb_min64(e_min, a[l]);
        e_max = nb_max64(e_max, bnd[l]);
    }
    /* Near a non-causal border the lanes whose window is clamped there (a
     * prefix or a suffix; lanes past the axis end are the last query's) see
     * the window of the first (last) lane whose window is not: the kernels
     * give them that lane's keys by a lane permute (attn_nb_fix), and the
     * block spans K2 offsets, not the union of the lanes' ones. Blocks with
     * no such lane (a short last vector, or a kernel as long as the axis)
     * and causal axes keep the union and a mask. */
    attn_nb_fix fixv, *fix = NULL;
    if (!p->causal[2] && e_max - e_min > p->kernel[2]) {
        const int64_t reg = nb_lead(p, 2);
        int64_t lo = 0, hi = vl - 1;
        while (lo < vl && a[lo] > reg)
            lo++;
        while (hi >= 0 && a[hi] < reg)
            hi--;
        if (lo <= hi) {
            fixv = (attn_nb_fix){ (int)lo, (int)hi };
            fix = &fixv;
            e_min = reg;
            e_max = reg + p->kernel[2];
        }
    }
    const int64_t ne = e_max - e_min;
    int uniform = 1;
    if (!fix)
        for (int64_t l = 0; l < vl; l++)
            uniform &= a[l] == e_min && bnd[l] == e_max;
    if (!uniform)
        for (int64_t e = 0; e < ne; e++)
            for (int64_t l = 0; l < vl; l++)
                w->bias[e * vl + l] = e + e_min >= a[l] && e + e_min < bnd[l] ? 0.0f : -INFINITY;

    const int64_t g0 = tk->c[0] + p->dil[0] * tk->j0, g2 = tk->c[2] + p->dil[2] * y0;
    const attn_view *qv = &p->q, *ov = &p->out;
    for (int64_t i = 0; i < nr; i++)
        ks->nb_load_t(w->qt + i * pl->ldq, vl,
                      nb_elem(qv, tk->b, g0, tk->c[1] + p->dil[1] * (r1 + i), g2, h), qv->dtype,
                      p->dil[2] * qv->stride[3], qv->stride[5], (int)nl, p->d, p->scale);

    /* Scores of every key row the block sees, ordered (j1, k0). */
    const int64_t col = pl->padl + y0 - tk->cbeg + e_min, rstep = ne * vl;
    for (int64_t j1 = u1s; j1 < u1e; j1++) {
        int64_t ia, ib;
        rows_seeing(w1s, w1e, nr, j1, &ia, &ib);
        for (int64_t k0 = 0; k0 < nk0; k0++) {
            const int64_t ridx = (j1 - u1s) * nk0 + k0, lr = k0 * nb1 + j1 - tk->u1s;
            w->vrows[ridx] = tk->vt + lr * pl->vt_row + col;
            ks->nb_qk(w->qt + ia * pl->ldq, pl->ldq, (int)(ib - ia),
                      tk->kt + lr * pl->kt_row + col, pl->pitch, (int)ne, p->d,
                      w->s + ia * pl->lds + ridx * rstep, pl->lds, fix);
        }
    }
    for (int64_t i = 0; i < nr; i++) {
        const int64_t lo = (w1s[i] - u1s) * nk0, hi = (w1e[i] - u1s) * nk0;
        ks->nb_softmax(w->s + i * pl->lds + lo * rstep, (int)(hi - lo), (int)ne,
                       uniform ? NULL : w->bias, w->m + i * vl, w->l + i * vl);
    }

    /* O = P V, by runs of axis-1 key rows that the same query rows see. */
    memset(w->ot, 0, (size_t)(nr * pl->ldo) * sizeof(float));
    for (int64_t j1 = u1s; j1 < u1e;) {
        int64_t ia, ib, ja, jb, j1e = j1 + 1;
        rows_seeing(w1s, w1e, nr, j1, &ia, &ib);
        while (j1e < u1e && (rows_seeing(w1s, w1e, nr, j1e, &ja, &jb), ja == ia && jb == ib))
            j1e++;
        const int64_t ridx = (j1 - u1s) * nk0;
        ks->nb_pv(w->s + ia * pl->lds + ridx * rstep, pl->lds, (int)(ib - ia), w->vrows + ridx,
                  pl->pitch, (int)((j1e - j1) * nk0), (int)ne, p->dv, w->ot + ia * pl->ldo,
                  pl->ldo, fix);
        j1 = j1e;
    }

    for (int64_t i = 0; i < nr; i++) {
        const int64_t g1 = tk->c[1] + p->dil[1] * (r1 + i);
        const float *m = w->m + i * vl, *l = w->l + i * vl;
        for (int64_t x = 0; x < vl; x++)
            w->inv[x] = 1.0f / l[x];
        ks->nb_store_o((void *)nb_elem(ov, tk->b, g0, g1, g2, h), ov->dtype,
                       p->dil[2] * ov->stride[3], ov->stride[5], w->ot + i * pl->ldo, w->inv,
                       (int)nl, p->dv, pl->stream_out);
        if (p->has_lse)
            for (int64_t x = 0; x < nl; x++)
                *(float *)nb_elem(&p->lse, tk->b, g0, g1, g2 + p->dil[2] * x, h) =
                    m[x] + logf(l[x]);
    }
}

/* Task x of the flat task space (batch, class per axis, axis-0 query,
 * band, segment, KV head: the heads of one region run one after the other,
 * their keys sharing the source rows' pages and lines already fetched); 0
 * where that band or segment lies past its class's end. */
static int task_at(const nl_plan *pl, int64_t x, nl_task *tk)
{
    const attn_neighborhood_problem *p = pl->p;
    tk->hk = x % p->hkv;
    x /= p->hkv;
    const int64_t sg = x % pl->nsegc, bd = x / pl->nsegc % pl->nband;
    int64_t rest = x / pl->nsegc / pl->nband;
    tk->j0 = rest % nb_class_len(p, 0, 0);
    rest /= nb_class_len(p, 0, 0);
    for (int a = 2; a >= 0; a--) {
        tk->c[a] = rest % p->dil[a];
        rest /= p->dil[a];
        tk->n[a] = nb_class_len(p, a, tk->c[a]);
    }
    tk->b = rest;
    tk->r1b = bd * pl->band;
    tk->ybeg = sg * pl->segc;
    if (tk->j0 >= tk->n[0] || tk->r1b >= tk->n[1] || tk->ybeg >= tk->n[2])
        return 0;
    tk->r1e = nb_min64(tk->r1b + pl->band, tk->n[1]);
    tk->yend = nb_min64(tk->ybeg + pl->segc, tk->n[2]);
    int64_t e, s;
    nb_window(p, 0, tk->j0, tk->n[0], &tk->s0, &e);
    tk->nk0 = e - tk->s0;
    nb_window(p, 1, tk->r1b, tk->n[1], &tk->u1s, &e);
    nb_window(p, 1, tk->r1e - 1, tk->n[1], &s, &tk->u1e);
    /* the keys of the queries' windows (lanes past yend copy the last one's) */
    nb_window(p, 2, tk->ybeg, tk->n[2], &tk->cbeg, &e);
    nb_window(p, 2, tk->yend - 1, tk->n[2], &s, &tk->cend);
    return 1;
}

/* One task: pack its region, then every block of every query head of its
 * KV head, prefetching the next block's q and out rows. */
static void run_task(const nl_plan *pl, nl_task *tk, const nl_ws *w)
{
    const attn_neighborhood_problem *p = pl->p;
    tk->kt = w->kt;
    tk->vt = w->vt;
    pack_region(pl, tk);
    const int64_t group = p->hq / p->hkv;
    const int64_t nrb = (tk->r1e - tk->r1b + pl->nr - 1) / pl->nr;
    const int64_t nv = (tk->yend - tk->ybeg + pl->vl - 1) / pl->vl;
    const int64_t nblk = group * nv * nrb;
    for (int64_t x = 0; x < nblk; x++) {
        if (x + 1 < nblk) {   /* the next block's q and out rows */
            const int64_t y = x + 1, r1 = tk->r1b + y % nrb * pl->nr;
            const int64_t y0 = tk->ybeg + y / nrb % nv * pl->vl;
            nb_prefetch_queries(p, tk->b, tk->hk * group + y / nrb / nv,
                                tk->c[0] + p->dil[0] * tk->j0, tk->c[1] + p->dil[1] * r1,
                                nb_min64(pl->nr, tk->n[1] - r1), tk->c[2] + p->dil[2] * y0,
                                nb_min64(pl->vl, tk->n[2] - y0), !pl->stream_out, 1);
        }
        run_block(pl, tk, w, tk->hk * group + x / nrb / nv, tk->r1b + x % nrb * pl->nr,
                  tk->ybeg + x / nrb % nv * pl->vl);
    }
}

/* Scores of a block: R rows x (R + K1 - 1) x K0 key rows x up to 2 K2 - 1
 * offsets x VL lanes. Above this (large 3-D kernels), main's path. */
#define NL_MAX_SCORE_FLOATS (256 * 1024)

int attn_cpu_nb_lanes_suits(const attn_neighborhood_problem *p, const attn_cpu_kernels *ks)
{
    if (!ks->nb_qk || ks->nb_vl > 64 || ks->nb_rows > 4)
        return 0;
    /* 1-D grids: no query rows to share a key load across (load-bound);
     * measured (16384 tokens, H 4, D 64, 1 thread) 0.94x the other driver
     * at K 7, 0.95x at 17, 1.02x at 63. */
    if (p->len[1] == 1 && p->len[0] == 1)
        return 0;
    const int64_t rows = (ks->nb_rows + p->kernel[1] - 1) * p->kernel[0];
    return ks->nb_rows * rows * (2 * p->kernel[2] - 1) * ks->nb_vl <= NL_MAX_SCORE_FLOATS;
}

static void plan(nl_plan *pl, const attn_neighborhood_problem *p, const attn_cpu_kernels *ks,
                 int nt)
{
    pl->p = p;
    pl->ks = ks;
    pl->vl = ks->nb_vl;
    pl->nr = ks->nb_rows;
    /* Smaller bands, then segments, where the grid leaves fewer than
     * NL_TASKS_PER_THREAD tasks per thread. */
    const int64_t others = p->b * p->hkv * p->dil[0] * p->dil[1] * p->dil[2] *
                           nb_class_len(p, 0, 0);
    int64_t bb = NL_BAND_BLOCKS, sv = NL_SEG_VECS;
    for (;;) {
        pl->band = bb * pl->nr;
        pl->segc = sv * pl->vl;
        pl->nband = (nb_class_len(p, 1, 0) + pl->band - 1) / pl->band;
        pl->nsegc = (nb_class_len(p, 2, 0) + pl->segc - 1) / pl->segc;
        pl->ntasks = others * pl->nband * pl->nsegc;
        if (pl->ntasks >= (int64_t)nt * NL_TASKS_PER_THREAD || bb * sv == 1)
            break;
        if (bb > 1)
            bb /= 2;
        else
            sv /= 2;
    }
    const int64_t k2 = p->kernel[2];
    /* Columns read, relative to cbeg >= ybeg - (K2 - 1): from -(K2 - 1) (a
     * border lane vector's first offset) to below segc + 2 (K2 - 1); the
     * transposing load writes whole vectors of the cend - cbeg <= segc + K2 - 1
     * keys. An odd number of 64-byte lines per dim spreads a key row's D dims
     * over the L1 sets. */
    pl->padl = k2 - 1;
    pl->pitch = nb_round_up(pl->padl + nb_max64(pl->segc + 2 * k2 - 2,
                                                nb_round_up(pl->segc + k2 - 1, pl->vl)), 16);
    if (pl->pitch / 16 % 2 == 0)
        pl->pitch += 16;
    pl->kt_row = p->d * pl->pitch;
    pl->vt_row = p->dv * pl->pitch;
    pl->max_ne = 2 * k2 - 1;
    pl->max_rows = (pl->nr + p->kernel[1] - 1) * p->kernel[0];
    pl->reg_rows = nb_min64(pl->band + p->kernel[1] - 1, nb_class_len(p, 1, 0)) * p->kernel[0];
    pl->ldq = p->d * pl->vl;
    pl->ldo = p->dv * pl->vl;
    pl->lds = pl->max_rows * pl->max_ne * pl->vl;
    pl->ptr_floats =
        nb_round_up(pl->max_rows * (int64_t)sizeof(float *), 64) / (int64_t)sizeof(float);
    pl->ws_floats = (size_t)nb_round_up(pl->reg_rows * (pl->kt_row + pl->vt_row) +
                                            pl->nr * (pl->ldq + pl->ldo + pl->lds) +
                                            nb_round_up(pl->max_ne * pl->vl, 16) +
                                            2 * nb_round_up(pl->nr * pl->vl, 16) +
                                            nb_round_up(pl->vl, 16) + pl->ptr_floats, 16);
}

attn_status attn_cpu_nb_lanes(attn_device *dev, const attn_neighborhood_problem *p,
                              const attn_cpu_kernels *ks)
{
    attn_cpu_state *st = dev->impl;
    nl_plan pl;
    plan(&pl, p, ks, st->num_threads);
    /* Large outputs' rows past the caches, not prefetched for writing
     * (bench/attn-ab --before self against plain stores into prefetched
     * rows, 2 threads, kernel 7, 64-byte aligned tensors: 128x128 D 64 H 16
     * 0.926, D 32 H 4 0.966, 56x56 D 64 H 8 0.946; 1 thread, H 16 0.978;
     * the lent 16-core Xeon, 16 threads, H 16 0.927). */
    pl.stream_out = nb_stream_out(p);
    const int nt = (int)nb_min64(st->num_threads, pl.ntasks);
    const size_t bytes = (size_t)nt * pl.ws_floats * sizeof(float);
    int kept;
    float *mem = attn_cpu_scratch_acquire(&st->scratch, bytes, &kept);
    /* tasks with affinity (task_queue.h), against a shared counter on 2
     * threads: 128x128, kernel 7, D 64, H 16 25.75 -> 25.21 ms; 56x56,
     * kernel 7, D 32, H 4 0.518 -> 0.501; 16x32x32, kernel 3x7x7, D 32, H 4
     * 7.84 -> 7.53 (threads owning whole KV heads instead: see
     * neighborhood.c, attn_cpu_neighborhood). */
    attn_task_queue queue;
    if (!mem || attn_task_queue_init(&queue, nt, pl.ntasks, 0)) {
        if (mem)
            attn_cpu_scratch_release(&st->scratch, mem, kept);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_neighborhood: cannot allocate %zu bytes "
                         "of workspace", bytes);
    }
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef HAVE_OPENMP
        const int me = omp_get_thread_num();
#else
        const int me = 0;
#endif
        float *mine = mem + (size_t)me * pl.ws_floats;
        memset(mine, 0, pl.ws_floats * sizeof(float));
        const nl_ws w = carve(&pl, mine);
        for (int64_t x; (x = attn_task_queue_next(&queue, me, NULL)) >= 0;) {
            nl_task tk;
            if (task_at(&pl, x, &tk))
                run_task(&pl, &tk, &w);
        }
        if (pl.stream_out)
            attn_cpu_stream_fence();
    }
    attn_task_queue_free(&queue);
    attn_cpu_scratch_release(&st->scratch, mem, kept);
    return ATTN_OK;
}
