/* The CPU attn_neighborhood driver.
 *
 * A task is one (batch, query head, query tile). A query tile is 1 x T1 x T2
 * queries of one dilation class per axis (axes outermost first; 1-D and 2-D
 * grids are padded in front with length-1 axes): consecutive positions on
 * the class's sub-grid along the two inner axes.
 *
 * Neighbouring queries share most of their keys. Along the innermost axis,
 * the T2 queries of a tile row together see U2 = T2 + K2 - 1 consecutive
 * sub-grid keys (fewer at a border), so every key row ("run": one position
 * on each outer axis) is packed once per tile as U2 keys and multiplied
 * against every query row of the tile whose window contains it:
 *     S[rows of the run, U2 columns] = Q K_run^T          (kernel set: qk)
 * Runs are ordered (axis-1 key, axis-0 key) so that the runs a query row
 * sees are one contiguous column range of S; that range gets one softmax
 * and one P V product (kernel sets: softmax_rows, pv). Scores of runs a row
 * does not see are never computed, and within a run only the U2 - K2 keys
 * outside the row's innermost window are wasted (masked to -inf): with
 * T2 = 16 - K2 + 1, U2 is one 16-float vector, e.g. 13 of 16 useful for
 * K2 = 13. Nothing is materialised per window: memory is per tile. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "cpu_backend.h"
#include "half.h"
#include "neighborhood.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* One tile along one axis: `cnt` sub-grid positions from `p0` of class `c`. */
typedef struct axis_tile {
    int64_t c, p0, cnt;
} axis_tile;

typedef struct nb_plan {
    const attn_neighborhood_problem *p;
    const attn_cpu_kernels *ks;
    int64_t t[3];                 /* tile extent per axis (t[0] = 1) */
    axis_tile *tiles[3];          /* tiles per axis */
    int64_t ntiles[3];
    int64_t group;                /* Hq / Hkv */
    int64_t max_runs, max_u2, max_nq;
    int64_t ldq, ldo, lds, ldv, ktf;
    size_t  ws_floats;
} nb_plan;

/* Sub-grid window [*s, *e) of position p on a class sub-grid of n tokens. */
static inline void window(const attn_neighborhood_problem *p, int a, int64_t pos, int64_t n,
                          int64_t *s, int64_t *e)
{
    const int64_t k = p->kernel[a];
    if (p->causal[a]) {
        *s = max64(0, pos - k + 1);
        *e = pos + 1;
    } else {
        *s = min64(max64(pos - (k - 1) / 2, 0), n - k);
        *e = *s + k;
    }
}

/* Tokens of class c on axis a. */
static inline int64_t class_len(const attn_neighborhood_problem *p, int a, int64_t c)
{
    return (p->len[a] - c + p->dil[a] - 1) / p->dil[a];
}

static int64_t count_tiles(const attn_neighborhood_problem *p, int a, int64_t t, axis_tile *out)
{
    int64_t n = 0;
    for (int64_t c = 0; c < p->dil[a]; c++) {
        const int64_t len = class_len(p, a, c);
        for (int64_t p0 = 0; p0 < len; p0 += t, n++)
            if (out) {
                out[n].c = c;
                out[n].p0 = p0;
                out[n].cnt = min64(t, len - p0);
            }
    }
    return n;
}

static inline const char *elem(const attn_view *v, int64_t b, int64_t g0, int64_t g1,
                               int64_t g2, int64_t h)
{
    return v->base + (b * v->stride[0] + g0 * v->stride[1] + g1 * v->stride[2] +
                      g2 * v->stride[3] + h * v->stride[4]) * (int64_t)attn_dtype_size(v->dtype);
}

/* The online-softmax update for kernel sets without softmax_rows (each row
 * here sees its first key, so the maximum is finite). */
static void softmax_rows_portable(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq,
                                  int nk, float *m, float *l, float *alpha)
{
    for (int r = 0; r < nq; r++) {
        float *row = s + r * lds;
        float mt = m[r];
        for (int c = 0; c < nk; c++)
            mt = row[c] > mt ? row[c] : mt;
        alpha[r] = expf(m[r] - mt);
        m[r] = mt;
        for (int c = 0; c < nk; c++)
            row[c] -= mt;
        ks->vexp(row, nk);
        float sum = 0.0f;
        for (int c = 0; c < nk; c++)
            sum += row[c];
        l[r] = l[r] * alpha[r] + sum;
    }
}

static void run_task(const nb_plan *pl, int64_t b, int64_t h, const axis_tile *t0,
                     const axis_tile *t1, const axis_tile *t2, float *ws)
{
    const attn_neighborhood_problem *p = pl->p;
    const attn_cpu_kernels *ks = pl->ks;
    const int64_t hk = h / pl->group;
    const int64_t n0 = class_len(p, 0, t0->c), n1 = class_len(p, 1, t1->c);
    const int64_t n2 = class_len(p, 2, t2->c);
    const int64_t d0 = p->dil[0], d1 = p->dil[1], d2 = p->dil[2];
    const int64_t m1 = t1->cnt, m2 = t2->cnt;
    const int nq = (int)(m1 * m2);

    /* Key ranges (sub-grid positions): the axis-0 window of the single
     * axis-0 query, the unions of the windows along axes 1 and 2, and each
     * query row's own window along axes 1 and 2. */
    int64_t s0, e0, u1s, u1e, u2s, u2e, tmp;
    window(p, 0, t0->p0, n0, &s0, &e0);
    window(p, 1, t1->p0, n1, &u1s, &tmp);
    window(p, 1, t1->p0 + m1 - 1, n1, &tmp, &u1e);
    window(p, 2, t2->p0, n2, &u2s, &tmp);
    window(p, 2, t2->p0 + m2 - 1, n2, &tmp, &u2e);
    const int64_t nk0 = e0 - s0, u2 = u2e - u2s;

    float *Q = ws, *O = Q + pl->max_nq * pl->ldq, *S = O + pl->max_nq * pl->ldo;
    float *K = S + pl->max_nq * pl->lds, *V = K + pl->max_runs * pl->ktf;
    float *m = V + pl->max_runs * pl->max_u2 * pl->ldv;
    float *l = m + round_up(pl->max_nq, 16), *alpha = l + round_up(pl->max_nq, 16);
    int64_t *w1 = (int64_t *)(alpha + round_up(pl->max_nq, 16));   /* [m1][2] */
    int64_t *w2 = w1 + 2 * pl->t[1];                                /* [m2][2] */
    for (int64_t i = 0; i < m1; i++)
        window(p, 1, t1->p0 + i, n1, &w1[2 * i], &w1[2 * i + 1]);
    for (int64_t i = 0; i < m2; i++)
        window(p, 2, t2->p0 + i, n2, &w2[2 * i], &w2[2 * i + 1]);

    const attn_view *qv = &p->q, *kv = &p->k, *vv = &p->v;
    const int64_t g0 = t0->c + d0 * t0->p0;
    for (int64_t i = 0; i < m1; i++)
        ks->load_rows(Q + i * m2 * pl->ldq, pl->ldq,
                      elem(qv, b, g0, t1->c + d1 * (t1->p0 + i), t2->c + d2 * t2->p0, h),
                      qv->dtype, d2 * qv->stride[3], qv->stride[5], (int)m2, p->d, p->scale);

    /* Pack every run once; V runs lie back to back so that a row's runs form
     * one V panel. */
    const int64_t x0 = t2->c + d2 * u2s;
    for (int64_t j1 = u1s; j1 < u1e; j1++)
        for (int64_t j0 = s0; j0 < e0; j0++) {
            const int64_t r = (j1 - u1s) * nk0 + (j0 - s0);
            const int64_t gk0 = t0->c + d0 * j0, gk1 = t1->c + d1 * j1;
            ks->pack_k(K + r * pl->ktf, elem(kv, b, gk0, gk1, x0, hk), kv->dtype,
                       d2 * kv->stride[3], kv->stride[5], (int)u2, (int)u2, p->d);
            ks->pack_v(V + r * u2 * pl->ldv, elem(vv, b, gk0, gk1, x0, hk), vv->dtype,
                       d2 * vv->stride[3], vv->stride[5], (int)u2, (int)u2, p->dv);
        }

    /* Scores: each run against the contiguous block of query rows that see
     * it (windows along axis 1 are monotone in the query position). */
    int64_t lo = 0, hi = 0;
    for (int64_t j1 = u1s; j1 < u1e; j1++) {
        while (lo < m1 && w1[2 * lo + 1] <= j1) lo++;
        while (hi < m1 && w1[2 * hi] <= j1) hi++;
        for (int64_t j0 = 0; j0 < nk0; j0++) {
            const int64_t r = (j1 - u1s) * nk0 + j0;
            ks->qk(Q + lo * m2 * pl->ldq, pl->ldq, (int)((hi - lo) * m2), K + r * pl->ktf,
                   (int)u2, p->d, S + lo * m2 * pl->lds + r * u2, pl->lds);
        }
    }

    /* Hide the keys of each run outside the row's own axis-2 window, then one
     * softmax and one P V over each query row's run range. */
    memset(O, 0, (size_t)(nq * pl->ldo) * sizeof(float));
    for (int64_t i1 = 0; i1 < m1; i1++) {
        const int64_t c_lo = (w1[2 * i1] - u1s) * nk0 * u2;
        const int64_t c_hi = (w1[2 * i1 + 1] - u1s) * nk0 * u2;
        float *Srow = S + i1 * m2 * pl->lds;
        for (int64_t i2 = 0; i2 < m2; i2++) {
            float *row = Srow + i2 * pl->lds;
            const int64_t ws2 = w2[2 * i2] - u2s, we2 = w2[2 * i2 + 1] - u2s;
            for (int64_t c = c_lo; c < c_hi; c += u2) {
                for (int64_t x = 0; x < ws2; x++)
                    row[c + x] = -INFINITY;
                for (int64_t x = we2; x < u2; x++)
                    row[c + x] = -INFINITY;
            }
        }
        float *mr = m + i1 * m2, *lr = l + i1 * m2, *ar = alpha + i1 * m2;
        for (int64_t i2 = 0; i2 < m2; i2++) {
            mr[i2] = -INFINITY;
            lr[i2] = 0.0f;
        }
        if (ks->softmax_rows)
            ks->softmax_rows(Srow + c_lo, pl->lds, (int)m2, (int)(c_hi - c_lo), mr, lr, ar);
        else
            softmax_rows_portable(ks, Srow + c_lo, pl->lds, (int)m2, (int)(c_hi - c_lo), mr, lr,
                                  ar);
        ks->pv(Srow + c_lo, pl->lds, (int)m2, V + c_lo * pl->ldv, (int)(c_hi - c_lo), p->dv, ar,
               O + i1 * m2 * pl->ldo, pl->ldo);
    }

    /* Normalise and store. */
    const attn_view *ov = &p->out, *lv = &p->lse;
    for (int64_t i1 = 0; i1 < m1; i1++)
        for (int64_t i2 = 0; i2 < m2; i2++) {
            const int64_t r = i1 * m2 + i2;
            const int64_t g1 = t1->c + d1 * (t1->p0 + i1), g2 = t2->c + d2 * (t2->p0 + i2);
            const float inv = 1.0f / l[r];
            char *dst = (char *)elem(ov, b, g0, g1, g2, h);
            const float *o = O + r * pl->ldo;
            for (int64_t c = 0; c < p->dv; c++)
                attn_store_f32(dst, ov->dtype, c * ov->stride[5], o[c] * inv);
            if (p->has_lse)
                *(float *)elem(lv, b, g0, g1, g2, h) = m[r] + logf(l[r]);
        }
}

/* Tile extents: along axis 2, T2 = round_up(K2, 16) - K2 + 1 (at least 2)
 * makes the key band of a tile row U2 = T2 + K2 - 1 a whole number of
 * 16-float vectors; along axis 1 enough rows for about NB_TILE_QUERIES
 * queries, which amortises packing each run over many query rows. */
#define NB_TILE_QUERIES 64
#define NB_MAX_T1 16

static void tile_extents(const attn_neighborhood_problem *p, int64_t t[3])
{
    const int64_t k2 = p->kernel[2];
    t[0] = 1;
    t[2] = max64(2, round_up(k2, 16) - k2 + 1);
    t[1] = max64(1, min64(NB_MAX_T1, NB_TILE_QUERIES / t[2]));
    /* never longer than the longest class sub-grid */
    t[2] = min64(t[2], class_len(p, 2, 0));
    t[1] = min64(t[1], class_len(p, 1, 0));
}

attn_status attn_cpu_neighborhood(attn_device *dev, const attn_neighborhood_problem *p)
{
    const attn_cpu_state *st = dev->impl;
    nb_plan pl = { 0 };
    pl.p = p;
    /* V runs are packed back to back into one panel: the f32 kernel set's
     * plain [keys][ldv] layout (the AVX512_BF16 set tags each packed tile). */
    pl.ks = attn_cpu_kernels_for_features(st->kernels->isa,
                                          st->features & ~(uint64_t)ATTN_CPU_AVX512_BF16);
    tile_extents(p, pl.t);
    pl.group = p->hq / p->hkv;
    pl.max_u2 = pl.t[2] + p->kernel[2] - 1;
    pl.max_runs = (pl.t[1] + p->kernel[1] - 1) * p->kernel[0];
    pl.max_nq = pl.t[1] * pl.t[2];
    pl.ldq = round_up(p->d, 16);
    pl.ldo = round_up(p->dv, 16);
    pl.lds = round_up(pl.max_runs * pl.max_u2, 16);
    pl.ldv = (int64_t)pl.ks->v_tile_floats(1, p->dv);
    pl.ktf = round_up((int64_t)pl.ks->k_tile_floats((int)pl.max_u2, p->d), 16);
    pl.ws_floats = (size_t)(pl.max_nq * (pl.ldq + pl.ldo + pl.lds) + pl.max_runs * pl.ktf +
                            round_up(pl.max_runs * pl.max_u2 * pl.ldv, 16) +
                            3 * round_up(pl.max_nq, 16) + 2 * (pl.t[1] + pl.t[2]) * 2);
    pl.ws_floats = (size_t)round_up((int64_t)pl.ws_floats, 16);

    int64_t ntot = 0;
    for (int a = 0; a < 3; a++)
        ntot += pl.ntiles[a] = count_tiles(p, a, pl.t[a], NULL);
    axis_tile *tiles = malloc((size_t)ntot * sizeof *tiles);
    if (!tiles)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_neighborhood: out of memory");
    pl.tiles[0] = tiles;
    pl.tiles[1] = pl.tiles[0] + pl.ntiles[0];
    pl.tiles[2] = pl.tiles[1] + pl.ntiles[1];
    for (int a = 0; a < 3; a++)
        count_tiles(p, a, pl.t[a], pl.tiles[a]);

    const int64_t per_head = pl.ntiles[0] * pl.ntiles[1] * pl.ntiles[2];
    const int64_t ntasks = p->b * p->hq * per_head;
    int nt = st->num_threads;
    if (nt > ntasks)
        nt = (int)ntasks;
    float *ws = aligned_alloc(64, (size_t)nt * pl.ws_floats * sizeof(float));
    if (!ws) {
        free(tiles);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_neighborhood: cannot allocate %zu bytes "
                         "of workspace", (size_t)nt * pl.ws_floats * sizeof(float));
    }
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef HAVE_OPENMP
        float *mine = ws + (size_t)omp_get_thread_num() * pl.ws_floats;
#pragma omp for schedule(dynamic, 1)
#else
        float *mine = ws;
#endif
        for (int64_t x = 0; x < ntasks; x++) {
            const int64_t bh = x / per_head, t = x % per_head;
            const int64_t i2 = t % pl.ntiles[2], i1 = t / pl.ntiles[2] % pl.ntiles[1];
            const int64_t i0 = t / pl.ntiles[2] / pl.ntiles[1];
            run_task(&pl, bh / p->hq, bh % p->hq, &pl.tiles[0][i0], &pl.tiles[1][i1],
                     &pl.tiles[2][i2], mine);
        }
    }
    free(ws);
    free(tiles);
    return ATTN_OK;
}
