/* Prefetching spread over compute, for the CPU neighborhood driver with
 * keys in the lanes (neighborhood.c).
 *
 * The driver packs key rows that the next block will read, and reads query
 * rows and writes out rows that lie H x D elements apart, which the
 * hardware prefetchers do not follow. Issued in one burst (a run's rows
 * while the run before is packed, a tile's q and out rows at its start),
 * those misses exceed what a core keeps in flight and it stalls until most
 * have arrived. These cursors instead issue a few lines at each call of
 * their step function, which the driver makes once per kernel call of the
 * block before: the misses then overlap the compute. The queries-in-lanes
 * driver (neighborhood_lanes.c) was measured with them too, each thread
 * claiming its next task when starting one so that the next task's key
 * rows could be prefetched: no gain (128x128, kernel 7, D 64, H 16, 2
 * threads 34.2 -> 35.2 ms; H 4, D 32 the same; reading every task's keys
 * from a few cached rows was no faster at H 16 either). */
#ifndef ATTN_CPU_NEIGHBORHOOD_PREFETCH_H
#define ATTN_CPU_NEIGHBORHOOD_PREFETCH_H

#include "neighborhood_grid.h"

/* Starts loading the lines of `bytes` from row, with the hint for the outer
 * caches: the next block's rows, read only when it packs them (into L1 as
 * well, prefetcht0, measured 1.5-2% slower on the Zen 5 VM). */
static inline void nb_prefetch_l2(const char *row, int64_t bytes)
{
#if defined(__GNUC__)
    for (int64_t x = 0; x < bytes; x += 64)
        __builtin_prefetch(row + x, 0, 1);
#else
    (void)row;
    (void)bytes;
#endif
}

/* Key runs of KV head hk, batch b: nk0 axis-0 keys from sub-grid position s0
 * (class c0) by nb1 axis-1 keys from u1s (class c1), each nkeys keys along
 * axis 2 from grid index x0 (dilation apart). Run r is (axis-1 key r / nk0,
 * axis-0 key r % nk0) when axis1_major, else (axis-0 r / nb1, axis-1 r %
 * nb1). K and V rows are prefetched whole, one key at a time. */
typedef struct nb_kv_pf {
    const attn_neighborhood_problem *p;
    int64_t b, hk, c0, s0, nk0, c1, u1s, nb1, x0, nkeys;
    int axis1_major;
    int64_t r, nruns, j;         /* next run and key; runs in all */
    int64_t per_step;            /* lines per nb_kv_pf_step */
    int64_t kstep, vstep, kbytes, vbytes;
    const char *krow, *vrow;     /* run r's first K and V rows */
} nb_kv_pf;

/* The run set above, to be prefetched over `steps` calls of nb_kv_pf_step
 * (none where steps or the set is empty). */
static inline void nb_kv_pf_start(nb_kv_pf *pf, const attn_neighborhood_problem *p, int64_t b,
                                  int64_t hk, int64_t c0, int64_t s0, int64_t nk0, int64_t c1,
                                  int64_t u1s, int64_t nb1, int axis1_major, int64_t x0,
                                  int64_t nkeys, int64_t steps)
{
    const int64_t kes = (int64_t)attn_dtype_size(p->k.dtype);
    const int64_t ves = (int64_t)attn_dtype_size(p->v.dtype);
    pf->p = p;
    pf->b = b;
    pf->hk = hk;
    pf->c0 = c0;
    pf->s0 = s0;
    pf->nk0 = nk0;
    pf->c1 = c1;
    pf->u1s = u1s;
    pf->nb1 = nb1;
    pf->axis1_major = axis1_major;
    pf->x0 = x0;
    pf->nkeys = nkeys;
    pf->r = pf->j = 0;
    pf->nruns = steps > 0 && nkeys > 0 ? nb_max64(0, nk0) * nb_max64(0, nb1) : 0;
    pf->kbytes = p->d * kes;
    pf->vbytes = p->dv * ves;
    pf->kstep = p->dil[2] * p->k.stride[3] * kes;
    pf->vstep = p->dil[2] * p->v.stride[3] * ves;
    const int64_t lines = pf->nruns * nkeys * ((pf->kbytes + 63) / 64 + (pf->vbytes + 63) / 64);
    pf->per_step = steps > 0 ? (lines + steps - 1) / steps : 0;
}

/* Prefetches the next per_step lines of the run set (whole keys). */
static inline void nb_kv_pf_step(nb_kv_pf *pf)
{
    const attn_neighborhood_problem *p = pf->p;
    for (int64_t n = 0; n < pf->per_step && pf->r < pf->nruns;) {
        if (pf->j == 0) {
            const int64_t a = pf->axis1_major ? pf->r % pf->nk0 : pf->r / pf->nb1;
            const int64_t c = pf->axis1_major ? pf->r / pf->nk0 : pf->r % pf->nb1;
            const int64_t g0 = pf->c0 + p->dil[0] * (pf->s0 + a);
            const int64_t g1 = pf->c1 + p->dil[1] * (pf->u1s + c);
            pf->krow = nb_elem(&p->k, pf->b, g0, g1, pf->x0, pf->hk);
            pf->vrow = nb_elem(&p->v, pf->b, g0, g1, pf->x0, pf->hk);
        }
        nb_prefetch_l2(pf->krow + pf->j * pf->kstep, pf->kbytes);
        nb_prefetch_l2(pf->vrow + pf->j * pf->vstep, pf->vbytes);
        n += (pf->kbytes + 63) / 64 + (pf->vbytes + 63) / 64;
        if (++pf->j == pf->nkeys) {
            pf->j = 0;
            pf->r++;
        }
    }
}

/* The q and out rows of head h's queries (g0, g1 + dil1 i, g2 + dil2 l), i <
 * n1, l < n2 (grid indices), query by query. */
typedef struct nb_q_pf {
    const attn_neighborhood_problem *p;
    int64_t b, g0, g1, g2, h, n2;
    int64_t i, n;                /* next query, queries in all */
    int64_t per_step;            /* queries per nb_q_pf_step */
} nb_q_pf;

/* The queries above, to be prefetched over `steps` calls of nb_q_pf_step
 * (none where steps is 0). */
static inline void nb_q_pf_start(nb_q_pf *pf, const attn_neighborhood_problem *p, int64_t b,
                                 int64_t g0, int64_t g1, int64_t n1, int64_t g2, int64_t n2,
                                 int64_t h, int64_t steps)
{
    pf->p = p;
    pf->b = b;
    pf->g0 = g0;
    pf->g1 = g1;
    pf->g2 = g2;
    pf->h = h;
    pf->n2 = n2;
    pf->i = 0;
    pf->n = steps > 0 ? n1 * n2 : 0;
    pf->per_step = steps > 0 ? (pf->n + steps - 1) / steps : 0;
}

/* Prefetches the q and out rows of the next `count` queries. */
static inline void nb_q_pf_run(nb_q_pf *pf, int64_t count)
{
    const attn_neighborhood_problem *p = pf->p;
    for (const int64_t e = nb_min64(pf->n, pf->i + count); pf->i < e; pf->i++)
        nb_prefetch_query(p, pf->b, pf->g0, pf->g1 + p->dil[1] * (pf->i / pf->n2),
                          pf->g2 + p->dil[2] * (pf->i % pf->n2), pf->h);
}

static inline void nb_q_pf_step(nb_q_pf *pf) { nb_q_pf_run(pf, pf->per_step); }

#endif
