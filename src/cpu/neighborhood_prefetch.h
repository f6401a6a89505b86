/* Prefetching (and output stores) spread over compute, for the CPU
 * neighborhood driver with keys in the lanes (neighborhood.c).
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

/* The key runs [0, nk0 x nb1) of KV head hk, batch b, numbered as
 * nb_run_start numbers them (axis-1 key row first, from sub-grid positions
 * s0 and u1s of classes c[0], c[1]), each nkeys keys along axis 2 from grid
 * index x0 (dilation apart). K and V rows are prefetched whole, one key at
 * a time. */
typedef struct nb_kv_pf {
    const attn_neighborhood_problem *p;
    int64_t b, hk, c[2], s0, nk0, u1s, x0, nkeys;
    int64_t r, nruns, j;         /* next run and key; runs in all */
    int64_t per_step;            /* lines per nb_kv_pf_step */
    int64_t kstep, vstep, kbytes, vbytes;
    const char *krow, *vrow;     /* run r's first K and V rows */
} nb_kv_pf;

/* The run set above, to be prefetched over `steps` calls of nb_kv_pf_step
 * (none where steps or the set is empty). */
static inline void nb_kv_pf_start(nb_kv_pf *pf, const attn_neighborhood_problem *p, int64_t b,
                                  int64_t hk, const int64_t c[2], int64_t s0, int64_t nk0,
                                  int64_t u1s, int64_t nb1, int64_t x0, int64_t nkeys,
                                  int64_t steps)
{
    const int64_t kes = (int64_t)attn_dtype_bytes(p->k.dtype);
    const int64_t ves = (int64_t)attn_dtype_bytes(p->v.dtype);
    pf->p = p;
    pf->b = b;
    pf->hk = hk;
    pf->c[0] = c[0];
    pf->c[1] = c[1];
    pf->s0 = s0;
    pf->nk0 = nk0;
    pf->u1s = u1s;
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
            pf->krow = nb_run_start(p, &p->k, pf->b, pf->hk, pf->c, pf->s0, pf->nk0, pf->u1s,
                                    pf->x0, pf->r);
            pf->vrow = nb_run_start(p, &p->v, pf->b, pf->hk, pf->c, pf->s0, pf->nk0, pf->u1s,
                                    pf->x0, pf->r);
        }
        /* into L2 only: the next block's rows are read only when it packs
         * them (into L1 as well, measured 1.5-2% slower on the Zen 5 VM) */
        nb_prefetch_span(pf->krow + pf->j * pf->kstep, pf->kbytes, 0, 1);
        nb_prefetch_span(pf->vrow + pf->j * pf->vstep, pf->vbytes, 0, 1);
        n += (pf->kbytes + 63) / 64 + (pf->vbytes + 63) / 64;
        if (++pf->j == pf->nkeys) {
            pf->j = 0;
            pf->r++;
        }
    }
}

/* The q rows, and the out rows where out is set, of head h's queries (g0,
 * g1 + dil1 i, g2 + dil2 l), i < n1, l < n2 (grid indices), query by query
 * (along l, the addresses a step apart: no division or index product per
 * query). */
typedef struct nb_q_pf {
    const attn_neighborhood_problem *p;
    int64_t b, g0, g1, g2, h, n2;
    int out;
    int64_t i, n;                /* next query, queries in all */
    int64_t l;                   /* its position along axis 2 (i % n2) */
    int64_t per_step;            /* queries per nb_q_pf_step */
    int64_t qbytes, obytes, qstep, ostep;
    const char *qa, *oa;         /* query i's q and out rows (oa: where out is set) */
} nb_q_pf;

/* Points the cursor at row i / n2's first query (i a multiple of n2). */
static inline void nb_q_pf_row(nb_q_pf *pf)
{
    const attn_neighborhood_problem *p = pf->p;
    const int64_t g1 = pf->g1 + p->dil[1] * (pf->i / pf->n2);
    pf->qa = nb_elem(&p->q, pf->b, pf->g0, g1, pf->g2, pf->h);
    pf->oa = pf->out ? nb_elem(&p->out, pf->b, pf->g0, g1, pf->g2, pf->h) : NULL;
    pf->l = 0;
}

/* The queries above, to be prefetched over `steps` calls of nb_q_pf_step
 * (none where steps is 0). */
static inline void nb_q_pf_start(nb_q_pf *pf, const attn_neighborhood_problem *p, int64_t b,
                                 int64_t g0, int64_t g1, int64_t n1, int64_t g2, int64_t n2,
                                 int64_t h, int out, int64_t steps)
{
    pf->p = p;
    pf->out = out;
    pf->b = b;
    pf->g0 = g0;
    pf->g1 = g1;
    pf->g2 = g2;
    pf->h = h;
    pf->n2 = n2;
    pf->i = 0;
    pf->n = steps > 0 ? n1 * n2 : 0;
    pf->per_step = steps > 0 ? (pf->n + steps - 1) / steps : 0;
    const int64_t qes = (int64_t)attn_dtype_bytes(p->q.dtype);
    const int64_t oes = (int64_t)attn_dtype_bytes(p->out.dtype);
    pf->qbytes = p->d * qes;
    pf->obytes = p->dv * oes;
    pf->qstep = p->dil[2] * p->q.stride[3] * qes;
    pf->ostep = p->dil[2] * p->out.stride[3] * oes;
    if (pf->n > 0)
        nb_q_pf_row(pf);
}

/* Prefetches the q and out rows of the next `count` queries. */
static inline void nb_q_pf_run(nb_q_pf *pf, int64_t count)
{
    for (const int64_t e = nb_min64(pf->n, pf->i + count); pf->i < e;) {
        nb_prefetch_span(pf->qa, pf->qbytes, 0, 0);
        if (pf->out)
            nb_prefetch_span(pf->oa, pf->obytes, 1, 0);
        pf->i++;
        if (++pf->l < pf->n2) {
            pf->qa += pf->qstep;
            if (pf->out)
                pf->oa += pf->ostep;
        } else if (pf->i < pf->n) {
            nb_q_pf_row(pf);
        }
    }
}

static inline void nb_q_pf_step(nb_q_pf *pf) { nb_q_pf_run(pf, pf->per_step); }

/* A query tile's f32 output rows, computed into a workspace buffer (row i
 * at src + i ldo), stored to their out rows (dst[i]) past the caches
 * (kernels.h store_stream) a few at each step of the next tile. A
 * plain store to a cold out line first reads it (RFO), and the driver had
 * to prefetch the out rows for writing, a tile ahead, to keep the P V
 * kernels' stores from waiting on those reads; streaming stores read
 * nothing, and issued a few at a time between kernel calls they do not
 * fill the write-combining buffers, as the P V kernels' bursts of them did
 * (measured in neighborhood.c, nb_out_mode; streamed from the P V
 * kernels' own stores instead, measured earlier on the same VM, 128x128,
 * kernel 13, D 64, H 4: 1 thread 1.027, 2 threads 1.009 of the time of
 * plain stores). Computing the out rows' addresses as the rows are stored,
 * instead of into dst when the tile ends, measured 1-2.5% slower (four
 * runs, 2 threads). */
#define NB_OUT_STREAM_ROWS 64
typedef struct nb_out_stream {
    float *dst[NB_OUT_STREAM_ROWS];
    void (*store)(float *dst, const float *src, int64_t n);   /* kernels.h store_stream */
    const float *src;
    int64_t ldo, dv;
    int64_t i, n;                /* next row, rows in all */
    int64_t per_step;            /* rows per nb_out_stream_step */
} nb_out_stream;

/* Stores the next `count` rows. */
static inline void nb_out_stream_run(nb_out_stream *os, int64_t count)
{
    for (const int64_t e = nb_min64(os->n, os->i + count); os->i < e; os->i++)
        os->store(os->dst[os->i], os->src + os->i * os->ldo, os->dv);
}

static inline void nb_out_stream_step(nb_out_stream *os) { nb_out_stream_run(os, os->per_step); }

/* Stores what the steps left (none where os holds no rows: n = i = 0). */
static inline void nb_out_stream_finish(nb_out_stream *os) { nb_out_stream_run(os, os->n - os->i); }

/* Stores the rows the steps left, then takes n rows from src, whose out
 * rows the caller has set in dst, to be stored with `store` over `steps`
 * calls of nb_out_stream_step (all at the next nb_out_stream_finish where
 * steps is 0). */
static inline void nb_out_stream_start(nb_out_stream *os,
                                       void (*store)(float *, const float *, int64_t),
                                       const float *src, int64_t ldo, int64_t dv, int64_t n,
                                       int64_t steps)
{
    nb_out_stream_finish(os);
    os->store = store;
    os->src = src;
    os->ldo = ldo;
    os->dv = dv;
    os->i = 0;
    os->n = n;
    os->per_step = steps > 0 ? (n + steps - 1) / steps : 0;
}

#endif
