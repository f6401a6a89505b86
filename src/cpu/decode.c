/* The CPU attn_decode driver: split-KV flash decoding over a paged cache.
 *
 * Work is split into tasks of (sequence b, kv head hk, chunk of keys). A task
 * takes the nr = Sq * Hq/Hkv query rows that share kv head hk, so each K/V row
 * is read from memory once for all of them, and streams the chunk's keys in
 * tiles that never cross a page:
 *     S = Q K^T (kernel set, dequantising in registers), soft-cap, ALiBi,
 *     visibility; online softmax (m, l); O = alpha O + P V (kernel set).
 * Each task leaves an unnormalised partial (O, m, l) in workspace; a second
 * pass merges the chunks of each (b, hk) with their log-sum-exp, normalises,
 * gates and stores. Chunks are sized so that a small batch still gives every
 * thread several tasks (split-KV); a large batch gets one chunk per head.
 *
 * Key index j is the j-th kept token of the sequence (kv_cache.h), L of them;
 * query i sits on diagonal i + L - Sq, as in attn_sdpa. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "cpu_backend.h"
#include "decode_kernels.h"
#include "half.h"
#include "softmax_tile.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

#define TILE 64          /* keys per tile (at most) */
#define MIN_CHUNK 512    /* keys per split-KV chunk (at least) */

/* Split-KV tasks aimed at per thread: ATTN_CPU_DECODE_SPLIT=N (1..64),
 * default 4. More tasks even out threads that stream at different rates
 * (cold pages, shared cores) at the price of more partials to merge. */
static int64_t tasks_per_thread(void)
{
    const char *e = getenv("ATTN_CPU_DECODE_SPLIT");
    const long n = e ? strtol(e, NULL, 10) : 0;
    return n >= 1 && n <= 64 ? n : 4;
}

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

typedef struct dec_seq {
    const attn_kv_seq *s;
    int64_t L;             /* kept tokens */
    int64_t ns;            /* sink keys [0, ns) scanned separately, 0 if inside [lo, L) */
    int64_t lo;            /* positional range [lo, L) */
    int64_t nkeys;         /* ns + L - lo */
    int64_t nch;           /* chunks */
} dec_seq;

typedef struct dec_plan {
    const attn_decode_problem *p;
    const attn_kv_cache *c;
    const attn_cpu_decode_kernels *dk;
    const attn_cpu_kernels *ks;
    int64_t group, nr, ldq, ldo, lds;
    dec_seq *seq;          /* [B] */
    int64_t *tstart;       /* [B+1]: first task of each sequence */
    int64_t ntasks;
    float *part_o;         /* [ntasks][nr][ldo] */
    float *part_ml;        /* [ntasks][nr][2] */
    size_t qp_bytes;       /* prepared query rows (kernel set's prep_q), 0 = none */
    size_t ws_floats;
} dec_plan;

static inline char *at(const attn_view *v, int64_t elems)
{
    return v->base + elems * (int64_t)attn_dtype_size(v->dtype);
}

static inline int visible(const attn_decode_problem *p, int64_t diag, int64_t j)
{
    if (p->causal && j > diag)
        return 0;
    if (j < p->sink_tokens)
        return 1;
    if (p->window_left >= 0 && j < diag - p->window_left)
        return 0;
    if (p->window_right >= 0 && j > diag + p->window_right)
        return 0;
    return 1;
}

/* 1 if every query row sees every key of [a, b). */
static int tile_full(const attn_decode_problem *p, int64_t d0, int64_t dl, int64_t a, int64_t b)
{
    if (p->causal && b - 1 > d0)
        return 0;
    if (b <= p->sink_tokens)
        return 1;
    if (p->window_right >= 0 && b - 1 > d0 + p->window_right)
        return 0;
    if (p->window_left >= 0 && a < dl - p->window_left)
        return 0;
    return 1;
}

/* o[0..n) *= a, the factor passed by value: read as alpha[r] through a
 * pointer that may alias o, it was loaded again for every element. */
static void rescale(float *o, int64_t n, float a)
{
    for (int64_t e = 0; e < n; e++)
        o[e] *= a;
}

/* Streams keys [j0, j1) (compact indices) of one (b, hk) through the rows. */
static void run_range(const dec_plan *pl, const dec_seq *ds, int64_t b, int64_t hk, int64_t j0,
                      int64_t j1, const float *qt, const void *qp, float *st, float *ot, float *m,
                      float *l, float *alpha, float *xrow)
{
    const attn_decode_problem *p = pl->p;
    const attn_kv_cache *c = pl->c;
    const int nr = (int)pl->nr;
    const int64_t sq = p->sq, L = ds->L, group = pl->group;
    const int64_t d0 = L - sq, dl = L - 1;   /* diagonals of the first and last query */
    const int64_t nsk = min64(ds->s->total, c->sink);  /* kept sink tokens of the cache */
    const int softmax = p->score == ATTN_SCORE_SOFTMAX;
    (void)b;
    for (int64_t j = j0; j < j1;) {
        const int64_t pos = attn_kv_pos_of(c, ds->s, j);
        attn_kv_rows kr, vr;
        int64_t n = attn_kv_rows_at(c, ds->s, pos, 0, hk, &kr);
        attn_kv_rows_at(c, ds->s, pos, 1, hk, &vr);
        n = min64(n, min64(TILE, j1 - j));
        if (j < nsk)
            n = min64(n, nsk - j);       /* kept sinks and window are not adjacent */
        const int nk = (int)n;
        if (j + n < j1) {                /* the kernels prefetch into the next run */
            attn_kv_rows nkr, nvr;
            const int64_t npos = attn_kv_pos_of(c, ds->s, j + n);
            attn_kv_rows_at(c, ds->s, npos, 0, hk, &nkr);
            attn_kv_rows_at(c, ds->s, npos, 1, hk, &nvr);
            kr.next = nkr.data;
            kr.next_meta = nkr.meta;
            vr.next = nvr.data;
            vr.next_meta = nvr.meta;
        }

        if (pl->qp_bytes)
            pl->dk->qk_prepared(qp, nr, &kr, c->dtype, nk, p->d, st, pl->lds);
        else
            pl->dk->qk(qt, pl->ldq, nr, &kr, c->dtype, nk, p->d, st, pl->lds);
        const int full = tile_full(p, d0, dl, j, j + n);
        if (!full || p->softcap > 0.0f || p->alibi_slopes) {
            for (int r = 0; r < nr; r++) {
                float *row = st + r * pl->lds;
                const int64_t i = r / group, h = hk * group + r % group, diag = i + L - sq;
                if (p->softcap > 0.0f) {
                    const float cap = p->softcap, inv = 1.0f / cap;
                    for (int e = 0; e < nk; e++)
                        row[e] = cap * tanhf(row[e] * inv);
                }
                if (p->alibi_slopes) {
                    const float slope = p->alibi_slopes[h];
                    for (int e = 0; e < nk; e++)
                        row[e] -= slope * (float)llabs(diag - (j + e));
                }
                if (!full)
                    for (int e = 0; e < nk; e++)
                        if (!visible(p, diag, j + e))
                            row[e] = -INFINITY;
            }
        }
        if (softmax) {
            attn_cpu_softmax_online(pl->ks, st, pl->lds, nr, nk, m, l, alpha);
            for (int r = 0; r < nr; r++)
                if (alpha[r] != 1.0f)
                    rescale(ot + r * pl->ldo, p->dv, alpha[r]);
        } else {
            attn_cpu_sigmoid_rows(pl->ks, st, pl->lds, nr, nk, p->sigmoid_bias, alpha, xrow);
        }
        pl->dk->pv(st, pl->lds, nr, &vr, c->dtype, nk, p->dv, ot, pl->ldo);
        j += n;
    }
}

static void run_task(const dec_plan *pl, int64_t t, float *ws)
{
    const attn_decode_problem *p = pl->p;
    int64_t lo = 0, hi = p->b - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (pl->tstart[mid] <= t) lo = mid; else hi = mid - 1;
    }
    const int64_t b = lo, r0 = t - pl->tstart[b];
    const dec_seq *ds = &pl->seq[b];
    const int64_t hk = r0 / ds->nch, ch = r0 % ds->nch;
    const int nr = (int)pl->nr;

    float *qt = ws;
    float *st = qt + pl->nr * pl->ldq;
    float *alpha = st + pl->nr * pl->lds;
    /* The running (m, l) stay in this thread's workspace until the task ends:
     * in part_ml, two tasks share a cache line, and the tasks that run at
     * the same time on other threads are the neighbours (dynamic schedule),
     * so updating them there every tile moved the line between cores (Q4,
     * L = 32K, 2 threads, hot: 10% of the time). */
    float *m = alpha + round_up(pl->nr, 16), *l = m + pl->nr;
    float *xrow = m + round_up(2 * pl->nr, 16);
    void *qp = xrow + pl->lds + round_up(max64(p->dv, 16), 16);   /* 64-byte aligned */
    float *ot = pl->part_o + (size_t)t * (size_t)(pl->nr * pl->ldo);

    const attn_view *Q = &p->q;
    for (int r = 0; r < nr; r++) {
        const int64_t i = r / pl->group, h = hk * pl->group + r % pl->group;
        const char *src = at(Q, b * Q->stride[0] + i * Q->stride[1] + h * Q->stride[2]);
        float *qr = qt + r * pl->ldq;
        for (int64_t e = 0; e < p->d; e++)
            qr[e] = p->scale * attn_load_f32(src, Q->dtype, e * Q->stride[3]);
        for (int64_t e = p->d; e < pl->ldq; e++)
            qr[e] = 0.0f;
        memset(ot + r * pl->ldo, 0, (size_t)pl->ldo * sizeof(float));
        const int sink = ch == 0 && p->sink_logits;
        m[r] = sink ? p->sink_logits[h] : -INFINITY;
        l[r] = sink ? 1.0f : 0.0f;
    }

    if (pl->qp_bytes)
        pl->dk->prep_q(qt, pl->ldq, nr, p->d, qp);

    /* This chunk's share of the scanned keys: [0, ns) then [lo, L). */
    const int64_t k0 = ds->nkeys * ch / ds->nch, k1 = ds->nkeys * (ch + 1) / ds->nch;
    if (k0 < ds->ns)
        run_range(pl, ds, b, hk, k0, min64(k1, ds->ns), qt, qp, st, ot, m, l, alpha, xrow);
    if (k1 > ds->ns)
        run_range(pl, ds, b, hk, ds->lo + max64(k0 - ds->ns, 0), ds->lo + (k1 - ds->ns), qt, qp,
                  st, ot, m, l, alpha, xrow);
    memcpy(pl->part_ml + (size_t)t * (size_t)(2 * pl->nr), m, (size_t)(2 * pl->nr) * sizeof(float));
}

/* Merges the chunks of (b, hk), normalises, gates and stores. */
static void finish(const dec_plan *pl, int64_t b, int64_t hk, float *acc)
{
    const attn_decode_problem *p = pl->p;
    const dec_seq *ds = &pl->seq[b];
    const int64_t t0 = pl->tstart[b] + hk * ds->nch;
    const int softmax = p->score == ATTN_SCORE_SOFTMAX;
    const attn_view *O = &p->out, *G = &p->gate;
    for (int64_t r = 0; r < pl->nr; r++) {
        const int64_t i = r / pl->group, h = hk * pl->group + r % pl->group;
        float mx = -INFINITY;
        for (int64_t c = 0; c < ds->nch; c++) {
            const float mc = pl->part_ml[(t0 + c) * 2 * pl->nr + r];
            mx = mc > mx ? mc : mx;
        }
        float lsum = 0.0f;
        for (int64_t e = 0; e < p->dv; e++)
            acc[e] = 0.0f;
        for (int64_t c = 0; c < ds->nch; c++) {
            const float *ml = pl->part_ml + (t0 + c) * 2 * pl->nr;
            float w = 1.0f;
            if (softmax) {
                w = ml[r] == -INFINITY ? 0.0f : expf(ml[r] - mx);
                lsum += w * ml[pl->nr + r];
            }
            if (w == 0.0f)
                continue;
            const float *o = pl->part_o + ((t0 + c) * pl->nr + r) * pl->ldo;
            for (int64_t e = 0; e < p->dv; e++)
                acc[e] += w * o[e];
        }
        const float inv = !softmax ? 1.0f : lsum > 0.0f ? 1.0f / lsum : 0.0f;
        char *dst = at(O, b * O->stride[0] + i * O->stride[1] + h * O->stride[2]);
        const char *gsrc = p->has_gate ?
            at(G, b * G->stride[0] + i * G->stride[1] + h * G->stride[2]) : NULL;
        for (int64_t e = 0; e < p->dv; e++) {
            float x = acc[e] * inv;
            if (gsrc)
                x *= 1.0f / (1.0f + expf(-attn_load_f32(gsrc, G->dtype, e * G->stride[3])));
            attn_store_f32(dst, O->dtype, e * O->stride[3], x);
        }
        if (p->has_lse) {
            const attn_view *Lv = &p->lse;
            ((float *)Lv->base)[b * Lv->stride[0] + h * Lv->stride[1] + i * Lv->stride[2]] =
                lsum > 0.0f ? mx + logf(lsum) : -INFINITY;
        }
    }
}

attn_status attn_cpu_decode(attn_device *dev, const attn_decode_problem *p)
{
    attn_cpu_state *cs = dev->impl;
    const attn_kv_cache *c = p->cache;
    dec_plan pl = { 0 };
    pl.p = p;
    pl.c = c;
    pl.ks = cs->kernels;
    pl.dk = attn_cpu_decode_kernels_for(cs->kernels->isa, cs->features);
    pl.group = p->hq / p->hkv;
    pl.nr = p->sq * pl.group;
    pl.ldq = round_up(p->d, 16);
    pl.ldo = round_up(p->dv, 16);
    pl.lds = round_up(TILE, 16);
    pl.seq = malloc((size_t)p->b * sizeof *pl.seq);
    pl.tstart = malloc(((size_t)p->b + 1) * sizeof *pl.tstart);
    if (!pl.seq || !pl.tstart) {
        free(pl.seq);
        free(pl.tstart);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_decode: out of memory");
    }

    /* Keys each sequence scans: sinks [0, ns) and [lo, L), the union of the
     * query rows' ranges (the last row's range always ends at L - 1). */
    int64_t work = 0;
    for (int64_t b = 0; b < p->b; b++) {
        dec_seq *ds = &pl.seq[b];
        ds->s = &c->seqs[p->seqs[b]];
        ds->L = attn_kv_kept(c, ds->s);
        const int64_t d0 = ds->L - p->sq;
        ds->lo = p->window_left >= 0 ? max64(0, d0 - p->window_left) : 0;
        ds->ns = min64(p->sink_tokens, ds->lo);
        ds->nkeys = ds->ns + ds->L - ds->lo;
        work += ds->nkeys;
    }
    const int nt = cs->num_threads > 0 ? cs->num_threads : 1;
    const int64_t target = nt == 1 ? 1 : tasks_per_thread() * (int64_t)nt;
    const int64_t chunk = max64(MIN_CHUNK, (work * p->hkv + target - 1) / target);
    pl.ntasks = 0;
    for (int64_t b = 0; b < p->b; b++) {
        dec_seq *ds = &pl.seq[b];
        ds->nch = max64(1, (ds->nkeys + chunk - 1) / chunk);
        pl.tstart[b] = pl.ntasks;
        pl.ntasks += p->hkv * ds->nch;
    }
    pl.tstart[p->b] = pl.ntasks;

    pl.qp_bytes = pl.dk->prep_bytes ? pl.dk->prep_bytes(c->dtype, (int)pl.nr, p->d) : 0;
    pl.ws_floats = (size_t)(pl.nr * (pl.ldq + pl.lds) + round_up(pl.nr, 16) + round_up(2 * pl.nr, 16) +
                            pl.lds + round_up(max64(p->dv, 16), 16)) + (pl.qp_bytes + 63) / 64 * 16;
    const int nthr = (int)min64(nt, pl.ntasks);
    size_t part = (size_t)pl.ntasks * (size_t)pl.nr * (size_t)(pl.ldo + 2);
    const size_t ws_bytes = (((size_t)nthr * pl.ws_floats + part) * sizeof(float) + 63) & ~(size_t)63;
    int kept;
    float *ws = attn_cpu_scratch_acquire(&cs->scratch, ws_bytes, &kept);
    if (!ws) {
        free(pl.seq);
        free(pl.tstart);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_decode: cannot allocate %zu bytes of "
                         "workspace", ws_bytes);
    }
    pl.part_o = ws + (size_t)nthr * pl.ws_floats;
    pl.part_ml = pl.part_o + (size_t)pl.ntasks * (size_t)(pl.nr * pl.ldo);
    const int64_t nfin = p->b * p->hkv;
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nthr)
    {
        float *mine = ws + (size_t)omp_get_thread_num() * pl.ws_floats;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < pl.ntasks; t++)
            run_task(&pl, t, mine);
#pragma omp for schedule(static)
        for (int64_t f = 0; f < nfin; f++)
            finish(&pl, f / p->hkv, f % p->hkv, mine);
    }
#else
    for (int64_t t = 0; t < pl.ntasks; t++)
        run_task(&pl, t, ws);
    for (int64_t f = 0; f < nfin; f++)
        finish(&pl, f / p->hkv, f % p->hkv, ws);
#endif
    attn_cpu_scratch_release(&cs->scratch, ws, kept);
    free(pl.seq);
    free(pl.tstart);
    return ATTN_OK;
}
