/* The CPU attn_neighborhood driver with keys in the vector lanes; 2-D and
 * 3-D grids whose last-axis kernel leaves its runs' vectors under-used go
 * to the queries-in-lanes driver instead (neighborhood_lanes.c, keeps_runs).
 *
 * Grids are held as 3 axes, outermost first (1-D and 2-D grids are padded in
 * front with length-1 axes). A task is one (batch, block of query heads,
 * axis-0 query, strip of NB_STRIP_BLOCKS blocks of T1 axis-1 queries,
 * segment of axis-2 queries), all of one dilation class per axis:
 * consecutive positions on the class's sub-grid. Within a task, for each KV
 * head, the blocks of the strip go in order, and for each of its query
 * heads, query tiles of 1 x T1 x T2 queries walk the segment.
 *
 * Neighbouring queries share most of their keys. A "run" is a row of keys
 * along axis 2 (one position on each outer axis). A block packs, once per KV
 * head (so once for a whole GQA group), every run its queries can see over
 * the union of their axis-2 windows (K and V in the kernel set's layout),
 * but the runs the block before also saw stay where they are (a ring of
 * run slots).
 * A query tile sees a window of U2 = T2 + K2 - 1
 * consecutive keys of each run (fewer at a border), read in place. Runs are
 * ordered (axis-1 key, axis-0 key), so the runs one axis-1 row of queries
 * sees are one range (axis-1 windows are monotone in the query position);
 * S holds run by run each query's U2 scores (rounded up to 16). Scores go
 * by blocks of NB_QK_RUNS runs, each against every query row that sees it,
 * so the block's K windows stay in L1
 *     S[runs][rows that see them, U2] = Q K_runs[window]^T   (qk_runs)
 * then per axis-1 row of queries one softmax over its runs, the keys
 * outside each query's own axis-2 window hidden by an additive mask row
 * shared by all of its runs (softmax_runs; S is whole, no online
 * rescaling), and O = P V / l over all of its runs with the accumulators
 * in registers, each query's V rows only those of its window, two axis-1
 * rows at a time (pv_pair: one V load for both).
 * Within a run, U2 - K2 of the U2 scores qk_runs forms are wasted per
 * query (3 of 16 for K2 = 13). Nothing is materialised
 * per window: memory is per task, O(runs x segment x D).
 *
 * Why the runs are packed per task, from k and v in place, one KV head at
 * a time: measured on a 2-core AVX-512 VM (1 thread, 128x128 grid, kernel
 * 13, D 64, H 4, process CPU time; packing is about 21% of it, bound by
 * memory traffic: each key row is packed by about 2.4 tasks), these were
 * slower: K and V copied once per call into contiguous per-head rows, then
 * packed per task (15%: the extra pass costs more than it saves); whole
 * rows packed once per call and read in place by qk_runs / pv_runs (20%:
 * the kernels then wait on memory instead of L1/L2); one GQA group per task
 * with tasks walking axis 1 so that consecutive tasks share runs in L2
 * (10-15%, on cores shared with other processes). Packing all of a task's
 * KV heads in one pass, prefetching q / out rows one axis-1 row at a time
 * instead of a tile's at once, and non-temporal out stores: no faster.
 * Later, on a 2-core Zen 4 VM (both threads, H 16): the strip's blocks
 * reusing the runs they share (each key row packed about 1.6 times instead
 * of 2.4) 58.3-60.7 -> 55.3-57.2 ms; H 4 the same within 1%; strips of 2
 * or 8 blocks no better. Not kept: a buffer for the whole strip, each
 * block's runs starting further along it instead of the shared runs moved
 * to the front (1-2% at H 16, the same at H 4 and on one thread, for 2.7x
 * the workspace); prefetching every other line of a K/V row, or only its
 * first (1-3% slower). */
#include <math.h>
#include <stdlib.h>
#include "config.h"
#include "cpu_backend.h"
#include "half.h"
#include "neighborhood.h"
#include "neighborhood_grid.h"
#include "neighborhood_lanes.h"
#include "neighborhood_prefetch.h"
#include "stream_store.h"
#include "task_queue.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

/* `cnt` consecutive sub-grid positions from `p0` of class `c` on one axis. */
typedef struct axis_tile {
    int64_t c, p0, cnt;
} axis_tile;

/* How run_tile's O = P V / l reaches out. */
enum {
    NB_OUT_STREAM,   /* into w->O, then past the caches (nb_out_stream) */
    NB_OUT_DIRECT,   /* by the P V kernels, into the out rows */
    NB_OUT_COPY      /* into w->O, then converted element by element */
};

/* f32 out rows with unit column stride are streamed (nb_out_stream) where
 * nb_stream_out says so (large outputs). Smaller ones are written in place
 * by the P V kernels and may stay cached for the caller; within the call
 * the two measured the same there (2 threads, kernel 13, D 64, H 4: 40x40
 * 0.998, 24x24 1.008 streamed / in place), and in place was 1 thread,
 * 128x128, 23.1-23.2 -> 22.6 ms against a copy from w->O before streaming
 * existed. Other dtypes and layouts go through w->O and are converted
 * element by element. Streamed against in place (bench/attn-ab --before
 * self, 2 threads, kernel 13, D 64, 64-byte aligned tensors): 128x128 H 4
 * 0.996 (1 thread 1.007), H 16 0.981, D 32 0.994; 56x56 H 8 0.993; the
 * lent 16-core Xeon, 16 threads, H 4 0.993, H 16 0.962. Rows 16 bytes
 * past a line (malloc's) gained more here (D 32 0.931) but lost on the
 * Xeon (H 16 1.016), and are not streamed (nb_stream_out). */
static int nb_out_mode(const attn_neighborhood_problem *p, const attn_cpu_kernels *ks)
{
    if (p->out.dtype != ATTN_F32 || p->out.stride[5] != 1)
        return NB_OUT_COPY;
    return nb_stream_out(p) && ks->store_stream ? NB_OUT_STREAM : NB_OUT_DIRECT;
}

typedef struct nb_plan {
    const attn_neighborhood_problem *p;
    const attn_cpu_kernels *ks;
    int64_t t[3];                 /* positions per task on each axis (t[0] = 1) */
    int64_t t2;                   /* axis-2 positions per query tile */
    axis_tile *tiles[3];          /* task extents per axis */
    int64_t ntiles[3];
    int64_t group;                /* Hq / Hkv */
    int64_t max_runs, max_u2, max_seg_keys, max_nq, max_calls;
    int64_t ldq, ldo, ktf, vtf;
    int q_in_place;               /* qk_runs reads q where it lies (run_tile) */
    int out_mode;                 /* how O reaches out (NB_OUT_*, run_tile) */
    int64_t lds, srs;             /* S: query q's run r at q * lds + r * srs */
    size_t  ws_floats;
} nb_plan;

static int64_t count_tiles(const attn_neighborhood_problem *p, int a, int64_t t, axis_tile *out)
{
    int64_t n = 0;
    for (int64_t c = 0; c < p->dil[a]; c++) {
        const int64_t len = nb_class_len(p, a, c);
        for (int64_t p0 = 0; p0 < len; p0 += t, n++)
            if (out) {
                out[n].c = c;
                out[n].p0 = p0;
                out[n].cnt = nb_min64(t, len - p0);
            }
    }
    return n;
}

/* One score call of a block: axis-1 query rows [i1, i1 + n1) against runs
 * [r_lo, r_hi) (qk_runs), or, where stair is 1 (-1), the 3 rows i1 + g
 * against runs [r_lo, r_lo + g + 1) ([r_lo + g, r_hi)): kernels.h
 * qk_stair's trailing (leading) band edge. */
typedef struct nb_qk_call {
    int i1, n1, r_lo, r_hi, stair;
} nb_qk_call;

/* Per-thread workspace, carved from one block. */
typedef struct nb_ws {
    float *Q, *O, *S, *K, *V, *m, *l;
    float *inv;          /* 1 / l */
    float *bias;         /* [T2][pitch]: softmax_runs' mask of each axis-2 query */
    int64_t *w1;         /* [T1][2]: axis-1 windows of the tile's query rows */
    nb_qk_call *calls;   /* [max_calls]: the block's qk_runs calls (plan_qk) */
    const float **kruns, **vruns;   /* [max_runs]: where the block's run r is packed */
} nb_ws;

static nb_ws carve(const nb_plan *pl, float *ws)
{
    nb_ws w;
    const int64_t nq16 = nb_round_up(pl->max_nq, 16);
    w.Q = ws;
    w.O = w.Q + pl->max_nq * pl->ldq;
    w.S = w.O + 2 * pl->max_nq * pl->ldo;   /* two halves (run_tile) */
    w.K = w.S + pl->max_runs * pl->srs;
    w.V = w.K + pl->max_runs * pl->ktf;
    w.m = w.V + pl->max_runs * pl->vtf;   /* also what qk_runs may over-read past K */
    w.l = w.m + nq16;
    w.inv = w.l + nq16;
    w.bias = w.inv + nq16;
    w.w1 = (int64_t *)(w.bias + pl->t2 * nb_round_up(pl->max_u2, 16));
    w.kruns = (const float **)(w.w1 + 2 * pl->t[1]);
    w.vruns = w.kruns + pl->max_runs;
    w.calls = (nb_qk_call *)(w.vruns + pl->max_runs);   /* last: ints after pointers */
    return w;
}

/* Task geometry shared by its query tiles. */
typedef struct nb_task {
    int64_t b, h, hk;
    int64_t c[3];               /* class per axis */
    int64_t g0;                 /* grid index of the axis-0 query */
    int64_t s0, nk0;            /* its axis-0 key window (sub-grid) */
    int64_t p1, m1, n1, u1s;    /* axis-1 queries [p1, p1+m1) of n1; first key */
    int64_t n2, seg_s, nseg;    /* axis-2 class length; packed keys [seg_s, seg_s+nseg) */
    int64_t nruns;              /* runs the queries see */
    int64_t ncalls;             /* qk_runs calls per tile (plan_qk) */
} nb_task;

/* What a block prefetches while its tiles compute (neighborhood_prefetch.h):
 * the K and V rows of the runs the next block will pack (the next block of
 * the strip, or the strip's first block for the next KV head), a few lines
 * at each qk_runs and pv_runs call of the block's tiles, and each tile the
 * next tile's q and out rows likewise. 2-core Zen 5 VM, 128x128 grid,
 * kernel 13, D 64: reading every block's K and V from a few cached rows
 * instead (timing only) was 9% faster on 1 thread at H 4, so packing
 * waited on memory; with the rows prefetched a run ahead by pack_runs and
 * a tile's q and out rows at its start, 1 thread, H 4, 24.0-24.4 ms, with
 * this 23.1-23.2; 2 threads, H 16, 54-62 -> 48-53 ms (the cached-rows
 * bound: 47). A task's last block prefetches the first block of the unit
 * next in its thread's range, without claiming it (a claimed unit would no
 * longer be there for an idle thread to take: dynamic balancing is what
 * cores of unequal speed need); if another thread takes it, the prefetch
 * is wasted. */
typedef struct nb_pf {
    nb_kv_pf kv;                /* the next block's new runs */
    nb_q_pf q;                  /* the next tile's queries */
    nb_out_stream *os;          /* the tile before's out rows (NB_OUT_STREAM) */
} nb_pf;

static inline void pf_step(nb_pf *pf)
{
    nb_q_pf_step(&pf->q);
    nb_kv_pf_step(&pf->kv);
    nb_out_stream_step(pf->os);
}

/* Points pf at the runs of axis-1 key rows [u1s, u1e) of KV head hk over
 * the task's segment, to be prefetched over `steps` calls of pf_step. */
static void pf_runs_start(const nb_plan *pl, const nb_task *tk, nb_pf *pf, int64_t hk,
                          int64_t u1s, int64_t u1e, int64_t steps)
{
    const attn_neighborhood_problem *p = pl->p;
    nb_kv_pf_start(&pf->kv, p, tk->b, hk, tk->c, tk->s0, tk->nk0, u1s, u1e - u1s,
                   tk->c[2] + p->dil[2] * tk->seg_s, tk->nseg, steps);
}

/* Runs per block of the scores: their packed K windows (with D 64, 8 KB a
 * run: the windows straddle cache lines) stay in L1 across the query rows. */
#define NB_QK_RUNS 4

/* Queries per tile along axis 2, axis-1 rows per block, at most (see
 * extents). */
#define NB_MAX_T2 4
#define NB_MAX_T1 16
_Static_assert(NB_MAX_T1 * NB_MAX_T2 <= NB_OUT_STREAM_ROWS, "a tile's rows fit nb_out_stream");

/* The runs [*lo, *hi) that axis-1 query row i1 of the task sees. */
static inline void row_runs(const nb_task *tk, const nb_ws *w, int64_t i1, int64_t *lo,
                            int64_t *hi)
{
    *lo = (w->w1[2 * i1] - tk->u1s) * tk->nk0;
    *hi = (w->w1[2 * i1 + 1] - tk->u1s) * tk->nk0;
}

static inline int sees_all(const nb_task *tk, const nb_ws *w, int64_t i1, int64_t rb,
                           int64_t re)
{
    int64_t lo, hi;
    row_runs(tk, w, i1, &lo, &hi);
    return lo <= rb && hi >= re;
}

/* Replaces the last 3 calls of a block's plan by one qk_stair call where
 * they are single rows one after the other forming a staircase: over 1, 2
 * and 3 runs from the same first run, or 3, 2 and 1 up to the same end. */
static int64_t merge_stair(nb_qk_call *calls, int64_t n)
{
    if (n < 3)
        return n;
    const nb_qk_call *a = &calls[n - 3], *b = &calls[n - 2], *c = &calls[n - 1];
    if (a->n1 != 1 || b->n1 != 1 || c->n1 != 1 || a->stair || b->stair || c->stair ||
        b->i1 != a->i1 + 1 || c->i1 != a->i1 + 2)
        return n;
    if (a->r_lo == b->r_lo && b->r_lo == c->r_lo && a->r_hi == a->r_lo + 1 &&
        b->r_hi == a->r_lo + 2 && c->r_hi == a->r_lo + 3) {
        calls[n - 3] = (nb_qk_call){ a->i1, 3, a->r_lo, a->r_lo + 3, 1 };
        return n - 2;
    }
    if (a->r_hi == b->r_hi && b->r_hi == c->r_hi && a->r_lo == a->r_hi - 3 &&
        b->r_lo == a->r_hi - 2 && c->r_lo == a->r_hi - 1) {
        calls[n - 3] = (nb_qk_call){ a->i1, 3, a->r_lo, a->r_hi, -1 };
        return n - 2;
    }
    return n;
}

/* The block's score calls, the same for each of its tiles: block of runs
 * by block of runs, all the query rows that see a block use its keys while
 * they are in L1 (one call for the rows that see all of it, one per axis-1
 * row for the rows that see a part, or one qk_stair call for 3 of these
 * where stairs is set). Returns their number. */
static int64_t plan_qk(const nb_task *tk, const nb_ws *w, int stairs)
{
    int64_t n = 0;
    for (int64_t rb = 0; rb < tk->nruns; rb += NB_QK_RUNS) {
        const int64_t re = nb_min64(rb + NB_QK_RUNS, tk->nruns);
        for (int64_t i1 = 0; i1 < tk->m1; i1++) {
            int64_t r_lo, r_hi, i1e = i1 + 1;
            row_runs(tk, w, i1, &r_lo, &r_hi);
            r_lo = nb_max64(r_lo, rb);
            r_hi = nb_min64(r_hi, re);
            if (r_lo >= r_hi)
                continue;
            if (r_lo == rb && r_hi == re)
                while (i1e < tk->m1 && sees_all(tk, w, i1e, rb, re))
                    i1e++;
            w->calls[n++] = (nb_qk_call){ (int)i1, (int)(i1e - i1), (int)r_lo, (int)r_hi, 0 };
            if (stairs)
                n = merge_stair(w->calls, n);
            i1 = i1e - 1;
        }
    }
    return n;
}

/* One query tile: axis-2 positions [p2, p2 + m2) of the task. */
static void run_tile(const nb_plan *pl, const nb_task *tk, const nb_ws *w, nb_pf *pf,
                     int64_t p2, int64_t m2)
{
    const attn_neighborhood_problem *p = pl->p;
    const attn_cpu_kernels *ks = pl->ks;
    const int64_t d1 = p->dil[1], d2 = p->dil[2], m1 = tk->m1;
    int64_t u2s, u2e, tmp;
    nb_window(p, 2, p2, tk->n2, &u2s, &tmp);
    nb_window(p, 2, p2 + m2 - 1, tk->n2, &tmp, &u2e);
    const int64_t u2 = u2e - u2s, off = u2s - tk->seg_s;   /* window within the runs */
    int klo[NB_MAX_T2], khi[NB_MAX_T2];   /* each query's window within the tile's */
    for (int64_t i = 0; i < m2; i++) {
        int64_t ws2, we2;
        nb_window(p, 2, p2 + i, tk->n2, &ws2, &we2);
        klo[i] = (int)(ws2 - u2s);
        khi[i] = (int)(we2 - u2s);
    }

    const attn_view *qv = &p->q;
    /* the next tile's q rows, and out rows unless streamed */
    nb_q_pf_start(&pf->q, p, tk->b, tk->g0, tk->c[1] + d1 * tk->p1, m1, tk->c[2] + d2 * (p2 + m2),
                  m2, tk->h, pl->out_mode != NB_OUT_STREAM,
                  p2 + 2 * m2 <= tk->n2 ? tk->ncalls + m1 : 0);
    /* qk_runs reads f32 query rows with unit column stride where they lie
     * (the softmax applies the scale); other dtypes and layouts are
     * converted into w->Q first. Against always converting (the scaled copy
     * waited on the rows' lines and wrote 16 KB a tile), 128x128, kernel
     * 13, D 64, H 4 (bench/attn-ab, --before self and flush): 1 thread
     * 0.964-0.982, 2 threads 0.985-1.004. */
    const float *qrows[NB_MAX_T1 * NB_MAX_T2];
    const int64_t qcs = d2 * qv->stride[3];
    for (int64_t i = 0; i < m1; i++) {
        const char *row = nb_elem(qv, tk->b, tk->g0, tk->c[1] + d1 * (tk->p1 + i),
                                  tk->c[2] + d2 * p2, tk->h);
        if (pl->q_in_place) {
            for (int64_t j = 0; j < m2; j++)
                qrows[i * m2 + j] = (const float *)row + j * qcs;
            continue;
        }
        float *qt = w->Q + i * m2 * pl->ldq;
        ks->load_rows(qt, pl->ldq, row, qv->dtype, qcs, qv->stride[5], (int)m2, p->d, 1.0f);
        for (int64_t j = 0; j < m2; j++)
            qrows[i * m2 + j] = qt + j * pl->ldq;
    }

    /* Scores, by the block's plan (plan_qk): run r's at column r * pitch */
    const int64_t pitch = nb_round_up(u2, 16);
    for (int64_t c = 0; c < tk->ncalls; c++) {
        const nb_qk_call *q = &w->calls[c];
        float *s = w->S + q->i1 * m2 * pl->lds + q->r_lo * pl->srs;
        pf_step(pf);
        if (!q->stair) {
            ks->qk_runs(qrows + q->i1 * m2, q->n1 * (int)m2, w->kruns + q->r_lo,
                        q->r_hi - q->r_lo, (int)tk->nseg, (int)off, (int)u2, p->d, s, pl->lds,
                        pl->srs);
        } else {
            ks->qk_stair(qrows + q->i1 * m2, (int)m2, q->stair < 0, w->kruns + q->r_lo,
                         (int)tk->nseg, (int)off, (int)u2, p->d, s, pl->lds, pl->srs);
        }
    }

    /* Per axis-1 row of queries, over the runs it sees (one column range):
     * one softmax, keys outside each query's axis-2 window hidden by its
     * mask row (the same for all of its runs), then O = P V / l. Where the
     * tile's window is narrower than the pitch, qk_runs' whole vectors
     * leave anything in the columns past it (reads past the packed runs):
     * they are set to 0 first, which the mask then hides whatever the
     * scale's sign. */
    for (int64_t i2 = 0; i2 < m2; i2++)
        for (int64_t x = 0; x < pitch; x++)
            w->bias[i2 * pitch + x] = x >= klo[i2] && x < khi[i2] ? 0.0f : -INFINITY;
    const attn_view *ov = &p->out, *lv = &p->lse;
    const int direct = pl->out_mode == NB_OUT_DIRECT;
    /* NB_OUT_STREAM: O into the half of w->O that the stream is not
     * storing from */
    float *obuf = pf->os->src == w->O ? w->O + pl->max_nq * pl->ldo : w->O;
    for (int64_t i1 = 0; i1 < m1; i1++) {
        int64_t r_lo, r_hi;
        pf_step(pf);
        row_runs(tk, w, i1, &r_lo, &r_hi);
        const int nr = (int)(r_hi - r_lo);
        float *Srow = w->S + i1 * m2 * pl->lds + r_lo * pl->srs;
        if (u2 < pitch)
            for (int64_t i2 = 0; i2 < m2; i2++)
                for (int64_t r = 0; r < nr; r++)
                    for (int64_t x = u2; x < pitch; x++)
                        Srow[i2 * pl->lds + r * pl->srs + x] = 0.0f;
        float *lr = w->l + i1 * m2, *inv = w->inv + i1 * m2;
        /* each row here sees at least its own key: its maximum is finite */
        ks->softmax_runs(Srow, pl->lds, (int)m2, nr, pitch, pl->srs, p->scale, w->bias, pitch,
                         w->m + i1 * m2, lr);
        for (int64_t i2 = 0; i2 < m2; i2++)
            inv[i2] = 1.0f / lr[i2];
    }
    /* O = P V / l, two axis-1 rows at a time where the set has pv_pair
     * (they share all their runs but one or two: 1 thread, 128x128, kernel
     * 13, D 64, H 4: 22.0 -> 21.3 ms; 2 threads 11.8 -> 11.1). Not kept:
     * 16 or 32 output columns of every pair before the next columns, so
     * that the runs the next pair shares stay in L1 (16: 1.13x slower, 32:
     * the same). */
    float *o_rows[NB_MAX_T1];
    int64_t ldo = pl->ldo;
    for (int64_t i1 = 0; i1 < m1; i1++)
        o_rows[i1] = direct ? (float *)nb_elem(ov, tk->b, tk->g0, tk->c[1] + d1 * (tk->p1 + i1),
                                               tk->c[2] + d2 * p2, tk->h)
                            : obuf + i1 * m2 * pl->ldo;
    if (direct)
        ldo = d2 * ov->stride[3];
    int64_t i1 = 0;
    if (ks->pv_pair && pl->lds == ks->pv_pair_ldp)
        for (; i1 + 2 <= m1; i1 += 2) {
            int64_t alo, ahi, blo, bhi;
            row_runs(tk, w, i1, &alo, &ahi);
            row_runs(tk, w, i1 + 1, &blo, &bhi);
            ks->pv_pair(w->S + i1 * m2 * pl->lds + alo * pl->srs,
                        w->S + (i1 + 1) * m2 * pl->lds + blo * pl->srs, (int)m2,
                        w->vruns + alo, (int)(ahi - alo), (int)(blo - alo),
                        (int)(bhi - blo), (int)off, klo, khi, pl->srs, p->dv, w->inv + i1 * m2,
                        w->inv + (i1 + 1) * m2, o_rows[i1], o_rows[i1 + 1], ldo);
        }
    for (; i1 < m1; i1++) {
        int64_t r_lo, r_hi;
        row_runs(tk, w, i1, &r_lo, &r_hi);
        ks->pv_runs(w->S + i1 * m2 * pl->lds + r_lo * pl->srs, pl->lds, (int)m2,
                    w->vruns + r_lo, (int)(r_hi - r_lo), (int)off, klo, khi,
                    pl->srs, p->dv, w->inv + i1 * m2, o_rows[i1], ldo);
    }

    nb_q_pf_run(&pf->q, pf->q.n);   /* what the steps left */
    if (pl->out_mode == NB_OUT_STREAM) {   /* over the next tile's steps */
        nb_out_stream *os = pf->os;
        nb_out_stream_start(os, ks->store_stream, obuf, pl->ldo, p->dv, m1 * m2,
                            tk->ncalls + m1);
        for (int64_t i1 = 0; i1 < m1; i1++)
            for (int64_t i2 = 0; i2 < m2; i2++)
                os->dst[i1 * m2 + i2] = (float *)nb_elem(ov, tk->b, tk->g0,
                                                         tk->c[1] + d1 * (tk->p1 + i1),
                                                         tk->c[2] + d2 * (p2 + i2), tk->h);
    }
    if (pl->out_mode != NB_OUT_COPY && !p->has_lse)
        return;
    for (int64_t i1 = 0; i1 < m1; i1++)
        for (int64_t i2 = 0; i2 < m2; i2++) {
            const int64_t r = i1 * m2 + i2;
            const int64_t g1 = tk->c[1] + d1 * (tk->p1 + i1), g2 = tk->c[2] + d2 * (p2 + i2);
            if (pl->out_mode == NB_OUT_COPY) {
                char *dst = (char *)nb_elem(ov, tk->b, tk->g0, g1, g2, tk->h);
                for (int64_t c = 0; c < p->dv; c++)
                    attn_store_f32(dst, ov->dtype, c * ov->stride[5], w->O[r * pl->ldo + c]);
            }
            if (p->has_lse)
                *(float *)nb_elem(lv, tk->b, tk->g0, g1, g2, tk->h) = w->m[r] + logf(w->l[r]);
        }
}

/* Where run r of the block (tk) starts in view v, axis-2 key x0. */
static inline const char *run_start(const attn_neighborhood_problem *p, const nb_task *tk,
                                    const attn_view *v, int64_t r, int64_t x0)
{
    return nb_run_start(p, v, tk->b, tk->hk, tk->c, tk->s0, tk->nk0, tk->u1s, x0, r);
}

/* Packs, for KV head tk->hk, every run of the block's queries over the
 * segment's key range [seg_s, seg_s + nseg), into a ring of max_runs slots:
 * run r at slot (*head + r) mod max_runs (w->kruns, w->vruns). The block
 * before prefetched the new runs' rows into the outer caches (nb_pf); each
 * run's rows are prefetched again, into L1, while the run before it is
 * packed, its K rows during that run's K and its V rows during its V (half
 * the burst of misses at a time): some lines have left L2 by then (1 thread,
 * 128x128, kernel 13, D 64, H 4: 22.4 -> 22.2 ms; 2 threads 12.2 -> 11.8 ms
 * against skipping the runs nb_pf covered; the split 0-1.5% faster). The
 * runs of axis-1 key rows [prev_s, prev_e), packed for the block before
 * (same KV head), that this block sees too stay in their slots, the ring's
 * head moved past the runs dropped: windows only move forward, and runs go
 * by axis-1 key row first. Against moving the kept runs to the front of the
 * buffer (a copy of 12 of the 28 runs each block; 128x128, kernel 13, D 64,
 * H 4, calls of the two builds alternated in one process): 1 thread 21.74 ->
 * 21.48 ms, 2 threads 11.29 -> 11.17. */
static void pack_runs(const nb_plan *pl, const nb_task *tk, const nb_ws *w, int64_t prev_s,
                      int64_t prev_e, int64_t *head)
{
    const attn_neighborhood_problem *p = pl->p;
    const attn_cpu_kernels *ks = pl->ks;
    const attn_view *kv = &p->k, *vv = &p->v;
    const int64_t d2 = p->dil[2], x0 = tk->c[2] + d2 * tk->seg_s;
    const int64_t kes = (int64_t)attn_dtype_bytes(kv->dtype), ves = (int64_t)attn_dtype_bytes(vv->dtype);
    const int64_t kstep = d2 * kv->stride[3] * kes, vstep = d2 * vv->stride[3] * ves;
    const int64_t u1e = tk->u1s + tk->nruns / tk->nk0;
    int64_t first = 0;
    if (prev_s <= tk->u1s && prev_e > tk->u1s) {
        first = (nb_min64(prev_e, u1e) - tk->u1s) * tk->nk0;
        *head = (*head + (tk->u1s - prev_s) * tk->nk0) % pl->max_runs;
    } else {
        *head = 0;
    }
    for (int64_t r = 0; r < tk->nruns; r++) {
        const int64_t slot = (*head + r) % pl->max_runs;
        w->kruns[r] = w->K + slot * pl->ktf;
        w->vruns[r] = w->V + slot * pl->vtf;
    }
    for (int64_t r = first; r < tk->nruns; r++) {
        if (r + 1 < tk->nruns)
            nb_prefetch_rows(run_start(p, tk, kv, r + 1, x0), kstep, tk->nseg, p->d * kes, 0);
        ks->pack_k((float *)w->kruns[r], run_start(p, tk, kv, r, x0), kv->dtype,
                   d2 * kv->stride[3], kv->stride[5], (int)tk->nseg, (int)tk->nseg, p->d);
        if (r + 1 < tk->nruns)
            nb_prefetch_rows(run_start(p, tk, vv, r + 1, x0), vstep, tk->nseg, p->dv * ves, 0);
        ks->pack_v((float *)w->vruns[r], run_start(p, tk, vv, r, x0), vv->dtype,
                   d2 * vv->stride[3], vv->stride[5], (int)tk->nseg, (int)tk->nseg, p->dv);
    }
}

/* The axis-1 key rows [*s, *e) that the block of the strip t1 from query
 * row q1 sees (windows are monotone in the query position). */
static void block_rows(const nb_plan *pl, const nb_task *tk, const axis_tile *t1, int64_t q1,
                       int64_t *s, int64_t *e)
{
    int64_t tmp;
    nb_window(pl->p, 1, q1, tk->n1, s, &tmp);
    nb_window(pl->p, 1, nb_min64(q1 + pl->t[1], t1->p0 + t1->cnt) - 1, tk->n1, &tmp, e);
}

/* One unit of the task queue: query heads [h0, h1) of batch b over the
 * tiles t[0..2] of the plan's lists (a task, or a part of one by heads). */
typedef struct nb_unit {
    int64_t b, h0, h1;
    const axis_tile *t[3];
} nb_unit;

/* The geometry of unit u that all its blocks share. */
static void task_init(const nb_plan *pl, const nb_unit *u, nb_task *tk)
{
    const attn_neighborhood_problem *p = pl->p;
    const axis_tile *t0 = u->t[0], *t1 = u->t[1], *t2 = u->t[2];
    tk->b = u->b;
    tk->c[0] = t0->c;
    tk->c[1] = t1->c;
    tk->c[2] = t2->c;
    tk->g0 = t0->c + p->dil[0] * t0->p0;
    tk->n1 = nb_class_len(p, 1, t1->c);
    tk->n2 = nb_class_len(p, 2, t2->c);
    int64_t e0, tmp, seg_e;
    nb_window(p, 0, t0->p0, nb_class_len(p, 0, t0->c), &tk->s0, &e0);
    tk->nk0 = e0 - tk->s0;
    nb_window(p, 2, t2->p0, tk->n2, &tk->seg_s, &tmp);
    nb_window(p, 2, t2->p0 + t2->cnt - 1, tk->n2, &tmp, &seg_e);
    tk->nseg = seg_e - tk->seg_s;
}

/* One unit. The axis-1 tile is a strip of up to NB_STRIP_BLOCKS blocks of
 * T1 rows, walked in order for one KV head after the other, so that each
 * block packs only the key rows the block before did not see (heads of one
 * KV head, GQA, share its packed runs). While a block's tiles compute, the
 * rows the next block packs are prefetched (nb_pf): the next block's of the
 * strip, the first block's for the next KV head, or after the last block
 * the first block of `next` (the unit this thread takes next unless another
 * takes it first; NULL: none). */
static void run_task(const nb_plan *pl, const nb_unit *u, const nb_unit *next, float *ws)
{
    const attn_neighborhood_problem *p = pl->p;
    const nb_ws w = carve(pl, ws);
    const axis_tile *t1 = u->t[1], *t2 = u->t[2];
    nb_task tk;
    task_init(pl, u, &tk);
    nb_out_stream os = { 0 };

    const int64_t end1 = t1->p0 + t1->cnt, end2 = t2->p0 + t2->cnt;
    const int64_t tiles2 = (t2->cnt + pl->t2 - 1) / pl->t2;
    for (int64_t hg = u->h0; hg < u->h1;) {
        tk.hk = hg / pl->group;
        const int64_t hge = nb_min64(u->h1, (tk.hk + 1) * pl->group);
        int64_t prev_s = 0, prev_e = 0;          /* the key rows packed: none yet */
        int64_t head = 0;                        /* the ring slot of the block's first run */
        for (int64_t q1 = t1->p0; q1 < end1; q1 += pl->t[1]) {
            tk.p1 = q1;
            tk.m1 = nb_min64(pl->t[1], end1 - q1);
            for (int64_t i = 0; i < tk.m1; i++)
                nb_window(p, 1, tk.p1 + i, tk.n1, &w.w1[2 * i], &w.w1[2 * i + 1]);
            tk.u1s = w.w1[0];
            const int64_t u1e = w.w1[2 * (tk.m1 - 1) + 1];
            tk.nruns = (u1e - tk.u1s) * tk.nk0;
            pack_runs(pl, &tk, &w, prev_s, prev_e, &head);
            prev_s = tk.u1s;
            prev_e = u1e;

            tk.ncalls = plan_qk(&tk, &w, pl->ks->qk_stair != NULL);
            const int64_t steps = (hge - hg) * tiles2 * (tk.ncalls + tk.m1);   /* pf_step calls */
            int64_t ns = 0, ne = 0;
            nb_pf pf;
            pf.os = &os;
            if (q1 + pl->t[1] < end1) {
                block_rows(pl, &tk, t1, q1 + pl->t[1], &ns, &ne);
                pf_runs_start(pl, &tk, &pf, tk.hk, nb_max64(ns, u1e), ne, steps);
            } else if (hge < u->h1) {
                block_rows(pl, &tk, t1, t1->p0, &ns, &ne);
                pf_runs_start(pl, &tk, &pf, hge / pl->group, ns, ne, steps);
            } else if (next) {
                nb_task tn;
                task_init(pl, next, &tn);
                block_rows(pl, &tn, next->t[1], next->t[1]->p0, &ns, &ne);
                pf_runs_start(pl, &tn, &pf, next->h0 / pl->group, ns, ne, steps);
            } else {
                pf_runs_start(pl, &tk, &pf, tk.hk, 0, 0, 0);
            }
            for (tk.h = hg; tk.h < hge; tk.h++)
                for (int64_t p2 = t2->p0; p2 < end2; p2 += pl->t2)
                    run_tile(pl, &tk, &w, &pf, p2, nb_min64(pl->t2, end2 - p2));
        }
        hg = hge;
    }
    if (pl->out_mode == NB_OUT_STREAM) {
        nb_out_stream_finish(&os);
        attn_cpu_stream_fence();
    }
}

/* Extents, measured on a 2-core AVX-512 machine (128x128 grid, D 64).
 * Axis 2: query tiles of T2 queries see U2 = T2 + K2 - 1 keys of each run
 * (qk pays for whole 16-float vectors), of which each needs K2. T2 is 4,
 * less where that lets U2 end on a vector boundary (T2 = 2 for K2 = 15: 16
 * keys, 1.2x faster than T2 = 4); fewer rows per qk/pv call cost more than
 * the waste they save (K2 = 13: T2 = 2 or 3 1.4x slower than 4, 6 or 8
 * 1.2x slower; K2 = 7: T2 = 10, a whole vector, 1.15x slower than 4).
 * A task covers a segment of NB_SEG_QUERIES positions, which bounds the
 * packed runs whatever the grid. Axis 1: enough rows for about
 * NB_TILE_QUERIES queries per tile (up to NB_MAX_T1): each packed run serves
 * up to min(T1, K1) query rows. Larger tiles and segments measured the same
 * within noise. */
#define NB_TILE_QUERIES 64
#define NB_SEG_QUERIES 32
#define NB_TASKS_PER_THREAD 4
/* Parts (by heads, whole GQA groups) of the last task of each thread's
 * range (see attn_cpu_neighborhood; 4: 2 threads, H 4 10.9 -> 11.4 ms). */
#define NB_LAST_PARTS 2
/* Axis-1 blocks per task (a strip, see run_task): each key row is packed
 * (T1 x NB_STRIP_BLOCKS + K1 - 1) / (T1 x NB_STRIP_BLOCKS) times instead of
 * (T1 + K1 - 1) / T1. */
#define NB_STRIP_BLOCKS 4

/* How the tasks are cut and handed out (see attn_cpu_neighborhood). */
typedef struct nb_sched {
    int nt;                      /* threads = task ranges */
    int64_t ntasks, hb, nhb;     /* tasks; query heads per task, head blocks */
    int64_t parts;               /* units of the last task of a range */
} nb_sched;

/* Units in range r: its tasks but the last, then the last's parts. */
static int64_t range_units(const nb_sched *sc, int r)
{
    return sc->ntasks * (r + 1) / sc->nt - sc->ntasks * r / sc->nt - 1 + sc->parts;
}

/* Unit k of range r. */
static nb_unit unit_at(const nb_plan *pl, const nb_sched *sc, int r, int64_t k)
{
    const attn_neighborhood_problem *p = pl->p;
    const int64_t x0 = sc->ntasks * r / sc->nt, cnt = sc->ntasks * (r + 1) / sc->nt - x0;
    const int64_t part = k >= cnt - 1 ? k - (cnt - 1) : 0;   /* of the last task */
    const int64_t x = x0 + (k < cnt - 1 ? k : cnt - 1);
    const int64_t bh = x % (p->b * sc->nhb), t = x / (p->b * sc->nhb);
    nb_unit u;
    u.b = bh / sc->nhb;
    u.h0 = bh % sc->nhb * sc->hb;
    u.h1 = nb_min64(u.h0 + sc->hb, p->hq);
    if (k >= cnt - 1 && sc->parts > 1) {
        const int64_t groups = sc->hb / pl->group;
        const int64_t e = nb_min64(u.h1, u.h0 + groups * (part + 1) / sc->parts * pl->group);
        u.h0 += groups * part / sc->parts * pl->group;
        u.h1 = e;
    }
    u.t[0] = &pl->tiles[0][t / pl->ntiles[2] / pl->ntiles[1]];
    u.t[1] = &pl->tiles[1][t / pl->ntiles[2] % pl->ntiles[1]];
    u.t[2] = &pl->tiles[2][t % pl->ntiles[2]];
    return u;
}

static int64_t tile_t2(const attn_neighborhood_problem *p)
{
    const int64_t k2 = p->kernel[2];
    return nb_min64(nb_max64(2, nb_min64(NB_MAX_T2, nb_round_up(k2, 16) - k2 + 1)),
                    nb_class_len(p, 2, 0));
}

static void extents(const attn_neighborhood_problem *p, int64_t t[3], int64_t *t2)
{
    *t2 = tile_t2(p);
    t[0] = 1;
    t[1] = nb_min64(nb_max64(1, nb_min64(NB_MAX_T1, NB_TILE_QUERIES / *t2)),
                    nb_class_len(p, 1, 0));
    t[2] = nb_max64(1, NB_SEG_QUERIES / *t2) * *t2;
}

/* This driver's kernels use K2 of the U2 = T2 + K2 - 1 keys of each run, in
 * whole vectors of 16. Where that is at least NB_KEEP_LANE_USE of them it
 * was faster than the queries-in-lanes path (neighborhood_lanes.c), below
 * slower. Measured on a 2-core AVX-512 VM, 1 thread, 128x128 grid, D 64,
 * CPU time of this driver / the lanes path: K2 = 13 (81% of the lanes)
 * 0.9, K2 = 25 (78%) 0.94; K2 = 11 (69%) 1.05, K2 = 9 (56%) 1.05, K2 = 17
 * (53%) 1.37, K2 = 7 (44%) 1.5-2 (also on 56x56). */
#define NB_KEEP_LANE_USE 0.75

static int keeps_runs(const attn_neighborhood_problem *p)
{
    const int64_t k2 = p->kernel[2];
    return (double)k2 / (double)nb_round_up(tile_t2(p) + k2 - 1, 16) >= NB_KEEP_LANE_USE;
}

attn_status attn_cpu_neighborhood(attn_device *dev, const attn_neighborhood_problem *p)
{
    attn_cpu_state *st = dev->impl;
    nb_plan pl = { 0 };
    pl.p = p;
    /* The f32 kernel set: qk_runs reads a window of a packed run, which the
     * AVX512_BF16 set's tagged bf16 tiles do not allow. */
    pl.ks = attn_cpu_kernels_for_features(st->kernels->isa,
                                          st->features & ~(uint64_t)ATTN_CPU_AVX512_BF16);
    if (!keeps_runs(p) && attn_cpu_nb_lanes_suits(p, pl.ks))
        return attn_cpu_nb_lanes(dev, p, pl.ks);
    extents(p, pl.t, &pl.t2);
    pl.group = p->hq / p->hkv;
    pl.max_u2 = pl.t2 + p->kernel[2] - 1;
    pl.max_seg_keys = nb_min64(pl.t[2] + p->kernel[2] - 1, nb_class_len(p, 2, 0));
    pl.max_runs = (pl.t[1] + p->kernel[1] - 1) * p->kernel[0];
    pl.max_nq = pl.t[1] * pl.t2;
    pl.max_calls = (pl.max_runs + NB_QK_RUNS - 1) / NB_QK_RUNS * pl.t[1];
    pl.ldq = nb_round_up(p->d, 16);
    pl.q_in_place = p->q.dtype == ATTN_F32 && p->q.stride[5] == 1;
    pl.out_mode = nb_out_mode(p, pl.ks);
    pl.ldo = nb_round_up(p->dv, 16);
    /* S by run, then query: pv_pair wants a query's scores 16 floats from
     * the next's (a padding of 16 floats per run, against the runs of a
     * row sharing L1 sets, measured the same) */
    pl.lds = nb_round_up(pl.max_u2, 16);
    pl.srs = pl.max_nq * pl.lds;
    pl.ktf = nb_round_up((int64_t)pl.ks->k_tile_floats((int)pl.max_seg_keys, p->d), 16);
    pl.vtf = nb_round_up((int64_t)pl.ks->v_tile_floats((int)pl.max_seg_keys, p->dv), 16);
    pl.ws_floats = (size_t)(pl.max_nq * (pl.ldq + 2 * pl.ldo) + pl.max_runs * pl.srs +
                            pl.max_runs * (pl.ktf + pl.vtf) +
                            3 * nb_round_up(pl.max_nq, 16) +
                            pl.t2 * nb_round_up(pl.max_u2, 16) +
                            (2 * pl.t[1] * sizeof(int64_t) + 2 * pl.max_runs * sizeof(float *) +
                             pl.max_calls * sizeof(nb_qk_call) + sizeof(float) - 1) /
                                sizeof(float));
    pl.ws_floats = (size_t)nb_round_up((int64_t)pl.ws_floats, 16);

    int64_t ntot = 0;
    const int64_t strip[3] = { pl.t[0], pl.t[1] * NB_STRIP_BLOCKS, pl.t[2] };
    for (int a = 0; a < 3; a++)
        ntot += pl.ntiles[a] = count_tiles(p, a, strip[a], NULL);
    axis_tile *tiles = malloc((size_t)ntot * sizeof *tiles);
    if (!tiles)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_neighborhood: out of memory");
    pl.tiles[0] = tiles;
    pl.tiles[1] = pl.tiles[0] + pl.ntiles[0];
    pl.tiles[2] = pl.tiles[1] + pl.ntiles[1];
    for (int a = 0; a < 3; a++)
        count_tiles(p, a, strip[a], pl.tiles[a]);

    const int64_t per_head = pl.ntiles[0] * pl.ntiles[1] * pl.ntiles[2];
    nb_sched sc;
    sc.nt = st->num_threads;
    /* Heads per task: all of them where that still leaves
     * NB_TASKS_PER_THREAD tasks per thread, fewer otherwise, whole GQA
     * groups where possible. */
    const int64_t want_tasks = (int64_t)sc.nt * NB_TASKS_PER_THREAD;
    sc.hb = nb_min64(p->hq, nb_max64(1, p->b * p->hq * per_head / want_tasks));
    if (sc.hb >= pl.group)
        sc.hb -= sc.hb % pl.group;
    sc.nhb = (p->hq + sc.hb - 1) / sc.hb;
    sc.ntasks = p->b * sc.nhb * per_head;
    if (sc.nt > sc.ntasks)
        sc.nt = (int)sc.ntasks;
    const int nt = sc.nt;
    int kept;   /* whether ws is the device's workspace kept across calls */
    float *ws = attn_cpu_scratch_acquire(&st->scratch, (size_t)nt * pl.ws_floats * sizeof(float),
                                         &kept);
    /* Each thread owns a contiguous range of tasks (task_queue.h): with the
     * same thread on the same tasks call after call, the out rows it wrote
     * and the K / V rows it read last call are still in its caches (2
     * threads, 128x128, kernel 13: D 64 H 4 11.37 -> 10.99 ms, D 32 6.46 ->
     * 6.04, H 16 47.3 -> 46.7 against a shared counter; a plain static
     * schedule, the same where tasks cost the same but 56x56 H 8 4.34 ->
     * 4.60 ms, its segments unequal). The last task of each range goes as
     * NB_LAST_PARTS parts by heads (whole GQA groups): a thread that ends
     * early takes part of a task from another's range instead of that one
     * ending a whole task later. A range of cnt tasks (nt <= ntasks: at
     * least one) is cnt - 1 whole ones, then the parts of the last.
     * A thread so reads every head of its part of the grid, the rows of the
     * same tokens one after the other. Not kept: tasks of one KV head, the
     * threads on neighbouring heads of the same tokens at the same time
     * (each thread owning whole KV heads). Where tensors outgrew the L3 it
     * measured 0.96 of this on one day (2 threads, 128x128, kernel 13, D
     * 64, H 4; kernel 7 H 16 0.93), and on another, the same VM, 1.04 (H 4)
     * and 1.31 (kernel 7, H 16; 64-byte aligned tensors, bench/attn-ab
     * --before self; attn-bench kernel 7 H 16 31.9 against 25.9 ms, 3-D
     * 16x32x32 H 8 33.7 against 32.6): the lines that each core's
     * prefetchers pull in for the neighbouring head are the other core's to
     * read, which costs what the host's placement of the two cores makes
     * it cost. On the lent 16-core Xeon, kernel 7 H 16: 1.04-1.05. */
    sc.parts = sc.hb % pl.group ? 1 : nb_min64(NB_LAST_PARTS, sc.hb / pl.group);
    attn_task_queue queue;
    if (!ws || attn_task_queue_init(&queue, nt, sc.ntasks, sc.parts - 1)) {
        if (ws)
            attn_cpu_scratch_release(&st->scratch, ws, kept);
        free(tiles);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_neighborhood: cannot allocate %zu bytes "
                         "of workspace", (size_t)nt * pl.ws_floats * sizeof(float));
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
        float *mine = ws + (size_t)me * pl.ws_floats;
        int r;
        for (int64_t y; (y = attn_task_queue_next(&queue, me, &r)) >= 0;) {
            const int64_t k = y - attn_task_queue_first(&queue, r);
            const nb_unit u = unit_at(&pl, &sc, r, k);
            const int more = k + 1 < range_units(&sc, r);
            nb_unit next;
            if (more)
                next = unit_at(&pl, &sc, r, k + 1);
            run_task(&pl, &u, more ? &next : NULL, mine);
        }
    }
    attn_task_queue_free(&queue);
    attn_cpu_scratch_release(&st->scratch, ws, kept);
    free(tiles);
    return ATTN_OK;
}
