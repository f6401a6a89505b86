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
 * interior exactly K2 of them, every lane using each; near an axis-2 border
 * (or causal start) the lanes' windows are not one shift of each other, so
 * the block covers the union of their offsets and a per-lane bias of -inf
 * hides the keys outside each lane's own window (up to K2 + K2/2 offsets at
 * a non-causal border instead of K2). Lanes past the axis end copy the last
 * query's window and read zero padding; they are never stored.
 *
 * Per block: scores S[row][key row][offset][lane] for every key row the
 * block sees (a key row serves all query rows whose axis-1 window holds it:
 * one nb_qk call with that contiguous range of rows), then per query row
 * one softmax over its key rows (elementwise across vectors), then
 * O = P V over runs of key rows seen by the same range of rows (nb_pv keeps
 * the outputs of those rows in registers across the run), then 1 / l and a
 * transpose back to the out rows.
 *
 * Packing: per (batch, KV head, dilation class on each axis), all key rows
 * of the class sub-grid at once, by all threads, before its blocks run; a
 * GQA group's query heads share it. Memory: O(class tokens x (D + Dv)). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "cpu_backend.h"
#include "neighborhood_grid.h"
#include "neighborhood_lanes.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

typedef struct nl_plan {
    const attn_neighborhood_problem *p;
    const attn_cpu_kernels *ks;
    int64_t vl, nr;               /* lanes per vector, query rows per block */
    int64_t padl, pitch;          /* packed row: first column at padl, pitch floats per dim */
    int64_t kt_row, vt_row;       /* floats per packed key row of K, of V */
    int64_t max_ne, max_rows;     /* offsets per lane vector, key rows per block */
    int64_t ldq, ldo, lds;        /* floats per query row of Qt, Ot, S */
    int64_t ptr_floats;           /* room for max_rows pointers */
    int64_t k_floats;             /* packed K of one KV head (V follows) */
    int64_t head_floats, heads;   /* packed K and V of one KV head; KV heads per group */
    size_t  ws_floats;
} nl_plan;

/* A (batch, class per axis, KV heads [hk0, hk0 + nhk)), its class sub-grid
 * and its packed heads. */
typedef struct nl_group {
    int64_t b, hk0, nhk, c[3], n[3];
    float *pack;
} nl_group;

static inline float *head_kt(const nl_plan *pl, const nl_group *gr, int64_t hk)
{
    return gr->pack + (hk - gr->hk0) * pl->head_floats;
}

/* Per-thread workspace. */
typedef struct nl_ws {
    float *qt, *ot, *s, *bias, *m, *l, *inv;
    const float **vrows;
} nl_ws;

static nl_ws carve(const nl_plan *pl, float *ws)
{
    nl_ws w;
    w.qt = ws;
    w.ot = w.qt + pl->nr * pl->ldq;
    w.s = w.ot + pl->nr * pl->ldo;
    w.bias = w.s + pl->nr * pl->lds;
    w.m = w.bias + round_up(pl->max_ne * pl->vl, 16);
    w.l = w.m + round_up(pl->nr * pl->vl, 16);
    w.inv = w.l + round_up(pl->nr * pl->vl, 16);
    w.vrows = (const float **)(void *)(w.inv + round_up(pl->vl, 16));
    return w;
}

/* Key row ro = j0 * n1 + j1 of group gr's class sub-grid for KV head hk,
 * transposed: dim c at kt + ro * kt_row + c * pitch, column j at padl + j,
 * zero elsewhere (V the same, k_floats after K). */
static void pack_row(const nl_plan *pl, const nl_group *gr, int64_t hk, int64_t ro)
{
    const attn_neighborhood_problem *p = pl->p;
    const int64_t j0 = ro / gr->n[1], j1 = ro % gr->n[1];
    const int64_t g0 = gr->c[0] + p->dil[0] * j0, g1 = gr->c[1] + p->dil[1] * j1;
    const attn_view *views[2] = { &p->k, &p->v };
    float *kt = head_kt(pl, gr, hk);
    float *dsts[2] = { kt + ro * pl->kt_row, kt + pl->k_floats + ro * pl->vt_row };
    const int64_t dims[2] = { p->d, p->dv }, n2 = gr->n[2];
    for (int t = 0; t < 2; t++) {
        const attn_view *v = views[t];
        pl->ks->nb_load_t(dsts[t] + pl->padl, pl->pitch,
                          nb_elem(v, gr->b, g0, g1, gr->c[2], hk), v->dtype,
                          p->dil[2] * v->stride[3], v->stride[5], (int)n2, dims[t], 1.0f);
        for (int64_t c = 0; c < dims[t]; c++) {
            float *row = dsts[t] + c * pl->pitch;
            memset(row, 0, (size_t)pl->padl * sizeof(float));
            memset(row + pl->padl + n2, 0, (size_t)(pl->pitch - pl->padl - n2) * sizeof(float));
        }
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

/* Starts loading the q rows and the out rows (for writing) of the block at
 * axis-1 rows [r1, r1 + nr), lane vector y0, into the cache: they lie H x D
 * elements apart, and reading them on demand stalls on memory. */
static void prefetch_block(const nl_plan *pl, const nl_group *gr, int64_t h, int64_t j0,
                           int64_t r1, int64_t y0)
{
#if defined(__GNUC__)
    const attn_neighborhood_problem *p = pl->p;
    const int64_t nr = nb_min64(pl->nr, gr->n[1] - r1), nl = nb_min64(pl->vl, gr->n[2] - y0);
    const int64_t qb = p->d * (int64_t)attn_dtype_size(p->q.dtype);
    const int64_t ob = p->dv * (int64_t)attn_dtype_size(p->out.dtype);
    const int64_t g0 = gr->c[0] + p->dil[0] * j0;
    for (int64_t i = 0; i < nr; i++)
        for (int64_t l = 0; l < nl; l++) {
            const int64_t g1 = gr->c[1] + p->dil[1] * (r1 + i);
            const int64_t g2 = gr->c[2] + p->dil[2] * (y0 + l);
            const char *q = nb_elem(&p->q, gr->b, g0, g1, g2, h);
            const char *o = nb_elem(&p->out, gr->b, g0, g1, g2, h);
            for (int64_t x = 0; x < qb; x += 64)
                __builtin_prefetch(q + x);
            for (int64_t x = 0; x < ob; x += 64)
                __builtin_prefetch(o + x, 1);
        }
#else
    (void)pl; (void)gr; (void)h; (void)j0; (void)r1; (void)y0;
#endif
}

/* Query head h, axis-0 query j0, axis-1 rows [r1, r1 + nr), lane vector at
 * axis-2 position y0, of group gr. */
static void run_block(const nl_plan *pl, const nl_group *gr, const nl_ws *w, int64_t h,
                      int64_t j0, int64_t r1, int64_t y0)
{
    const attn_neighborhood_problem *p = pl->p;
    const attn_cpu_kernels *ks = pl->ks;
    const int64_t vl = pl->vl, n1 = gr->n[1], n2 = gr->n[2];
    const int64_t nr = nb_min64(pl->nr, n1 - r1), nl = nb_min64(vl, n2 - y0);
    int64_t s0, e0, w1s[4], w1e[4];
    nb_window(p, 0, j0, gr->n[0], &s0, &e0);
    const int64_t nk0 = e0 - s0;
    for (int64_t i = 0; i < nr; i++)
        nb_window(p, 1, r1 + i, n1, &w1s[i], &w1e[i]);
    const int64_t u1s = w1s[0], u1e = w1e[nr - 1];

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
    const int64_t ne = e_max - e_min;
    int uniform = 1;
    for (int64_t l = 0; l < vl; l++)
        uniform &= a[l] == e_min && bnd[l] == e_max;
    if (!uniform)
        for (int64_t e = 0; e < ne; e++)
            for (int64_t l = 0; l < vl; l++)
                w->bias[e * vl + l] = e + e_min >= a[l] && e + e_min < bnd[l] ? 0.0f : -INFINITY;

    const int64_t g0 = gr->c[0] + p->dil[0] * j0, g2 = gr->c[2] + p->dil[2] * y0;
    const attn_view *qv = &p->q, *ov = &p->out;
    for (int64_t i = 0; i < nr; i++)
        ks->nb_load_t(w->qt + i * pl->ldq, vl,
                      nb_elem(qv, gr->b, g0, gr->c[1] + p->dil[1] * (r1 + i), g2, h), qv->dtype,
                      p->dil[2] * qv->stride[3], qv->stride[5], (int)nl, p->d, p->scale);

    /* Scores of every key row the block sees, ordered (j1, j0). */
    const int64_t col = pl->padl + y0 + e_min, rstep = ne * vl;
    const float *kth = head_kt(pl, gr, h / (p->hq / p->hkv));
    for (int64_t j1 = u1s; j1 < u1e; j1++) {
        int64_t ia, ib;
        rows_seeing(w1s, w1e, nr, j1, &ia, &ib);
        for (int64_t k0 = 0; k0 < nk0; k0++) {
            const int64_t ridx = (j1 - u1s) * nk0 + k0;
            const float *kt = kth + ((s0 + k0) * n1 + j1) * pl->kt_row + col;
            w->vrows[ridx] = kth + pl->k_floats + ((s0 + k0) * n1 + j1) * pl->vt_row + col;
            ks->nb_qk(w->qt + ia * pl->ldq, pl->ldq, (int)(ib - ia), kt, pl->pitch, (int)ne,
                      p->d, w->s + ia * pl->lds + ridx * rstep, pl->lds);
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
                  pl->ldo);
        j1 = j1e;
    }

    for (int64_t i = 0; i < nr; i++) {
        const int64_t g1 = gr->c[1] + p->dil[1] * (r1 + i);
        const float *m = w->m + i * vl, *l = w->l + i * vl;
        for (int64_t x = 0; x < vl; x++)
            w->inv[x] = 1.0f / l[x];
        ks->nb_store_o((void *)nb_elem(ov, gr->b, g0, g1, g2, h), ov->dtype,
                       p->dil[2] * ov->stride[3], ov->stride[5], w->ot + i * pl->ldo, w->inv,
                       (int)nl, p->dv);
        if (p->has_lse)
            for (int64_t x = 0; x < nl; x++)
                *(float *)nb_elem(&p->lse, gr->b, g0, g1, g2 + p->dil[2] * x, h) =
                    m[x] + logf(l[x]);
    }
}

/* Scores of a block: R rows x (R + K1 - 1) x K0 key rows x up to 2 K2 - 1
 * offsets x VL lanes. Above this (large 3-D kernels), main's path. */
#define NL_MAX_SCORE_FLOATS (256 * 1024)

/* Row blocks per task at most (a task prefetches the next block's q and out
 * rows), and tasks per thread at least where the grid allows. */
#define NL_SEG_BLOCKS 8
#define NL_TASKS_PER_THREAD 4

/* Packed KV heads at once: as many as fit this many floats (256 MiB). */
#define NL_PACK_FLOATS ((int64_t)64 << 20)

int attn_cpu_nb_lanes_suits(const attn_neighborhood_problem *p, const attn_cpu_kernels *ks)
{
    if (!ks->nb_qk || ks->nb_vl > 64 || ks->nb_rows > 4)
        return 0;
    /* 1-D grids: no query rows to share a key load across (load-bound). */
    if (p->len[1] == 1 && p->len[0] == 1)
        return 0;
    const int64_t rows = (ks->nb_rows + p->kernel[1] - 1) * p->kernel[0];
    return ks->nb_rows * rows * (2 * p->kernel[2] - 1) * ks->nb_vl <= NL_MAX_SCORE_FLOATS;
}

static void plan(nl_plan *pl, const attn_neighborhood_problem *p, const attn_cpu_kernels *ks)
{
    pl->p = p;
    pl->ks = ks;
    pl->vl = ks->nb_vl;
    pl->nr = ks->nb_rows;
    const int64_t k2 = p->kernel[2], n2 = nb_class_len(p, 2, 0);
    /* Columns read: [y0 + e_min, y0 + e_max - 1 + VL) with e_min >= 1 - K2,
     * e_max <= K2, y0 < n2; the transposing load writes whole vectors. An
     * odd number of 64-byte lines per dim spreads a key row's D dims over
     * the L1 sets. */
    pl->padl = k2 - 1;
    pl->pitch = round_up(pl->padl + nb_max64(n2 + k2 + pl->vl - 2, round_up(n2, pl->vl)), 16);
    if (pl->pitch / 16 % 2 == 0)
        pl->pitch += 16;
    pl->kt_row = p->d * pl->pitch;
    pl->vt_row = p->dv * pl->pitch;
    pl->max_ne = 2 * k2 - 1;
    pl->max_rows = (pl->nr + p->kernel[1] - 1) * p->kernel[0];
    pl->ldq = p->d * pl->vl;
    pl->ldo = p->dv * pl->vl;
    pl->lds = pl->max_rows * pl->max_ne * pl->vl;
    pl->ptr_floats = round_up(pl->max_rows * (int64_t)sizeof(float *), 64) / (int64_t)sizeof(float);
    const int64_t rows = nb_class_len(p, 0, 0) * nb_class_len(p, 1, 0);
    pl->k_floats = rows * pl->kt_row;
    pl->head_floats = pl->k_floats + rows * pl->vt_row;
    pl->heads = nb_max64(1, nb_min64(p->hkv, NL_PACK_FLOATS / pl->head_floats));
    pl->ws_floats = (size_t)round_up(pl->nr * (pl->ldq + pl->ldo + pl->lds) +
                                         round_up(pl->max_ne * pl->vl, 16) +
                                         2 * round_up(pl->nr * pl->vl, 16) +
                                         round_up(pl->vl, 16) + pl->ptr_floats, 16);
}

attn_status attn_cpu_nb_lanes(attn_device *dev, const attn_neighborhood_problem *p,
                              const attn_cpu_kernels *ks)
{
    attn_cpu_state *st = dev->impl;
    nl_plan pl;
    plan(&pl, p, ks);
    const int nt = st->num_threads;
    const size_t pack_floats = (size_t)(pl.heads * pl.head_floats);
    const size_t bytes = (pack_floats + (size_t)nt * pl.ws_floats) * sizeof(float);
    int kept;
    float *mem = attn_cpu_scratch_acquire(&st->scratch, bytes, &kept);
    if (!mem)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_neighborhood: cannot allocate %zu bytes "
                         "of workspace", bytes);
    const int64_t ndil = p->dil[0] * p->dil[1] * p->dil[2];
    const int64_t nhc = (p->hkv + pl.heads - 1) / pl.heads, group = p->hq / p->hkv;
    const int64_t ngroups = p->b * ndil * nhc;
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef HAVE_OPENMP
        const nl_ws w = carve(&pl, mem + pack_floats + (size_t)omp_get_thread_num() * pl.ws_floats);
#else
        const nl_ws w = carve(&pl, mem + pack_floats);
#endif
        for (int64_t gi = 0; gi < ngroups; gi++) {
            nl_group gr;
            int64_t cls = gi / nhc % ndil;
            gr.b = gi / nhc / ndil;
            gr.hk0 = gi % nhc * pl.heads;
            gr.nhk = nb_min64(pl.heads, p->hkv - gr.hk0);
            for (int a = 2; a >= 0; a--) {
                gr.c[a] = cls % p->dil[a];
                cls /= p->dil[a];
                gr.n[a] = nb_class_len(p, a, gr.c[a]);
            }
            gr.pack = mem;
            /* All KV heads of a key row together: their elements share the
             * source rows' pages (the hardware prefetchers fetch ahead). */
            const int64_t nrows = gr.n[0] * gr.n[1];
#ifdef HAVE_OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t ro = 0; ro < nrows; ro++)
                for (int64_t hk = gr.hk0; hk < gr.hk0 + gr.nhk; hk++)
                    pack_row(&pl, &gr, hk, ro);
            /* Tasks: segments of a column strip (one lane vector, consecutive
             * axis-1 row blocks; consecutive blocks share all but R of their
             * key rows, in L2) for every query head of the group, heads
             * innermost but one: the q and out rows of the next head lie
             * next to this one's. Enough tasks to balance the threads. */
            const int64_t nvec = (gr.n[2] + pl.vl - 1) / pl.vl;
            const int64_t nrb = (gr.n[1] + pl.nr - 1) / pl.nr;
            const int64_t strips = gr.n[0] * nvec;
            const int64_t seg = nb_max64(1, nb_min64(NL_SEG_BLOCKS, strips * nrb /
                                                                   (nt * NL_TASKS_PER_THREAD)));
            const int64_t nseg = (nrb + seg - 1) / seg;
            const int64_t h0 = gr.hk0 * group, h1 = (gr.hk0 + gr.nhk) * group;
#ifdef HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t x = 0; x < strips * nseg; x++) {
                const int64_t sg = x % nseg, yv = x / nseg % nvec, j0 = x / nseg / nvec;
                const int64_t rb0 = sg * seg, rb1 = nb_min64(nrb, rb0 + seg);
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t rb = rb0; rb < rb1; rb++) {
                        if (rb + 1 < rb1)
                            prefetch_block(&pl, &gr, h, j0, (rb + 1) * pl.nr, yv * pl.vl);
                        else if (h + 1 < h1)
                            prefetch_block(&pl, &gr, h + 1, j0, rb0 * pl.nr, yv * pl.vl);
                        run_block(&pl, &gr, &w, h, j0, rb * pl.nr, yv * pl.vl);
                    }
            }
        }
    }
    attn_cpu_scratch_release(&st->scratch, mem, kept);
    return ATTN_OK;
}
