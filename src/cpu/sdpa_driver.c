/* The CPU attn_sdpa driver: FlashAttention-2 tiling with an online softmax.
 *
 * Work is split into tasks of (sequence, query head, block of bq query rows).
 * A task keeps its Q rows (f32, pre-scaled), the running max m, running sum
 * l and the output accumulator O in per-thread workspace, and streams K/V
 * tiles of bk keys through it:
 *     S = Q K^T            (kernel set: qk)
 *     S = transforms(S)    (soft-cap, ALiBi, additive mask, visibility)
 *     m' = max(m, rowmax S);  P = exp(S - m');  alpha = exp(m - m')
 *     l = alpha l + rowsum P;  O = alpha O + P V   (kernel set: pv)
 * so memory never grows with Sq x Sk. Sink logits start each row at
 * m = sink, l = 1, which puts exp(sink) into the denominator for free.
 *
 * Masks cost what they save: for each (query block, key tile) the key range
 * every row can see is computed from causal/window/sink parameters; tiles
 * outside it are never visited, tiles fully inside it skip the per-element
 * visibility test, and only edge tiles evaluate it element by element. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "cpu_backend.h"
#include "half.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

/* Everything a task needs that is fixed for the whole call. */
typedef struct sdpa_plan {
    const attn_sdpa_problem *p;
    const attn_cpu_kernels  *ks;
    int     bq, bk;
    int64_t ldq, ldo, lds;          /* leading dims of the f32 tiles */
    size_t  ws_floats;              /* per-thread workspace */
    int64_t group;                  /* Hq / Hkv */
    int64_t *task_start;            /* varlen: first task of each sequence */
    int64_t ntasks;
} sdpa_plan;

/* One task's sequence geometry. */
typedef struct seq_geom {
    int64_t b;          /* sequence index (mask batch index) */
    int64_t bt;         /* batch index into q/k/v/out (0 for varlen) */
    int64_t q0, k0;     /* first row of this sequence in dim 1 */
    int64_t sq, sk;     /* lengths */
} seq_geom;

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static inline float load_f(const char *base, attn_dtype dt, int64_t i)
{
    switch (dt) {
    case ATTN_F16:  return attn_f16_to_f32(((const uint16_t *)base)[i]);
    case ATTN_BF16: return attn_bf16_to_f32(((const uint16_t *)base)[i]);
    case ATTN_U8:   return (float)((const uint8_t *)base)[i];
    default:        return ((const float *)base)[i];
    }
}

static inline void store_f(char *base, attn_dtype dt, int64_t i, float x)
{
    switch (dt) {
    case ATTN_F16:  ((uint16_t *)base)[i] = attn_f32_to_f16(x); break;
    case ATTN_BF16: ((uint16_t *)base)[i] = attn_f32_to_bf16(x); break;
    default:        ((float *)base)[i] = x; break;
    }
}

static inline char *at(const attn_view *v, int64_t elems)
{
    return v->base + elems * (int64_t)attn_dtype_size(v->dtype);
}

static void seq_of(const sdpa_plan *pl, int64_t b, seq_geom *g)
{
    const attn_sdpa_problem *p = pl->p;
    g->b = b;
    if (p->cu_q) {
        g->bt = 0;
        g->q0 = p->cu_q[b];
        g->k0 = p->cu_k[b];
        g->sq = p->cu_q[b + 1] - p->cu_q[b];
        g->sk = p->cu_k[b + 1] - p->cu_k[b];
    } else {
        g->bt = b;
        g->q0 = g->k0 = 0;
        g->sq = p->sq;
        g->sk = p->sk;
    }
}

/* Keys visible to query row i by position alone (causal/window): [lo, hi].
 * Sink keys [0, sink_tokens) are handled separately. */
static inline void row_range(const attn_sdpa_problem *p, const seq_geom *g, int64_t i,
                             int64_t *lo, int64_t *hi)
{
    const int64_t diag = i + g->sk - g->sq;
    *lo = p->window_left >= 0 ? diag - p->window_left : 0;
    int64_t h = g->sk - 1;
    if (p->window_right >= 0) h = min64(h, diag + p->window_right);
    if (p->causal) h = min64(h, diag);
    *hi = h;
}

static inline int visible_by_position(const attn_sdpa_problem *p, const seq_geom *g,
                                      int64_t i, int64_t j)
{
    const int64_t diag = i + g->sk - g->sq;
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

/* Block-mask verdict for a tile: 0 = every element hidden, 1 = every element
 * visible, 2 = mixed (check per element). */
static int block_mask_tile(const attn_sdpa_problem *p, const seq_geom *g, int64_t h,
                           int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    const attn_view *bm = &p->block_mask;
    int any = 0, all = 1;
    for (int64_t bi = i0 / p->block_q; bi <= (i1 - 1) / p->block_q; bi++)
        for (int64_t bj = j0 / p->block_k; bj <= (j1 - 1) / p->block_k; bj++) {
            int on = ((const uint8_t *)bm->base)[g->b * bm->stride[0] + h * bm->stride[1] +
                                                 bi * bm->stride[2] + bj * bm->stride[3]] != 0;
            any |= on;
            all &= on;
        }
    return all ? 1 : any ? 2 : 0;
}

/* Applies soft-cap, ALiBi, the mask tensor and (when `check`) positional
 * visibility to an nq x nk score tile whose first element is (i0, j0). */
static void transform_scores(const attn_sdpa_problem *p, const seq_geom *g, int64_t h,
                             int64_t i0, int nq, int64_t j0, int nk, float *s, int64_t lds,
                             int check_position, int check_block)
{
    const float cap = p->softcap;
    const float slope = p->alibi_slopes ? p->alibi_slopes[h] : 0.0f;
    const attn_view *m = &p->mask;
    for (int r = 0; r < nq; r++) {
        float *row = s + r * lds;
        const int64_t i = i0 + r, diag = i + g->sk - g->sq;
        if (cap > 0.0f) {
            const float inv = 1.0f / cap;
            for (int c = 0; c < nk; c++)
                row[c] = cap * tanhf(row[c] * inv);
        }
        if (slope != 0.0f)
            for (int c = 0; c < nk; c++)
                row[c] -= slope * (float)llabs(diag - (j0 + c));
        if (p->has_mask) {
            const char *mrow = at(m, g->b * m->stride[0] + h * m->stride[1] + i * m->stride[2]);
            const int64_t ms = m->stride[3];
            if (p->mask_is_bool) {
                for (int c = 0; c < nk; c++)
                    if (!((const uint8_t *)mrow)[(j0 + c) * ms])
                        row[c] = -INFINITY;
            } else {
                for (int c = 0; c < nk; c++)
                    row[c] += load_f(mrow, m->dtype, (j0 + c) * ms);
            }
        }
        if (check_position)
            for (int c = 0; c < nk; c++)
                if (!visible_by_position(p, g, i, j0 + c))
                    row[c] = -INFINITY;
        if (check_block) {
            const attn_view *bm = &p->block_mask;
            const uint8_t *brow = (const uint8_t *)bm->base + g->b * bm->stride[0] +
                                  h * bm->stride[1] + (i / p->block_q) * bm->stride[2];
            for (int c = 0; c < nk; c++)
                if (!brow[((j0 + c) / p->block_k) * bm->stride[3]])
                    row[c] = -INFINITY;
        }
    }
}

/* Online-softmax update of one tile (the portable version of the kernel
 * set's optional softmax_rows hook): turns scores into probabilities in
 * place and produces the rescale factor alpha for the accumulator. */
static void softmax_update(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                           float *m, float *l, float *alpha)
{
    for (int r = 0; r < nq; r++) {
        float *row = s + r * lds;
        float mt = -INFINITY;
        for (int c = 0; c < nk; c++)
            mt = row[c] > mt ? row[c] : mt;
        const float mn = mt > m[r] ? mt : m[r];
        if (mn == -INFINITY) {          /* nothing visible yet: keep zeros */
            alpha[r] = 1.0f;
            memset(row, 0, (size_t)nk * sizeof *row);
            continue;
        }
        alpha[r] = expf(m[r] - mn);     /* m = -inf gives 0 */
        m[r] = mn;
        for (int c = 0; c < nk; c++)
            row[c] -= mn;
        ks->vexp(row, nk);
        float sum = 0.0f;
        for (int c = 0; c < nk; c++)
            sum += row[c];
        l[r] = l[r] * alpha[r] + sum;
    }
}

/* Sigmoid scores: P = sigmoid(S + bias) for visible entries, no normaliser.
 * Evaluated as e = exp(-|x|), then 1/(1+e) or e/(1+e) by the sign of x, so
 * nothing overflows; hidden entries (-inf) give e = 0 and P = 0. `x` is a
 * scratch row of at least nk floats. */
static void sigmoid_update(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                           float bias, float *alpha, float *x)
{
    for (int r = 0; r < nq; r++) {
        float *row = s + r * lds;
        alpha[r] = 1.0f;
        for (int c = 0; c < nk; c++) {
            x[c] = row[c] + bias;
            row[c] = -fabsf(x[c]);
        }
        ks->vexp(row, nk);
        for (int c = 0; c < nk; c++)
            row[c] = (x[c] >= 0.0f ? 1.0f : row[c]) / (1.0f + row[c]);
    }
}

static void run_task(const sdpa_plan *pl, int64_t t, float *ws)
{
    const attn_sdpa_problem *p = pl->p;
    const attn_cpu_kernels *ks = pl->ks;
    const int bq = pl->bq, bk = pl->bk;

    /* Task -> (sequence, head, query block). Heavy (late) query blocks
     * first: under a causal mask they see the most keys. */
    int64_t b = 0, r = t;
    if (pl->task_start) {
        int64_t lo = 0, hi = p->num_seqs - 1;
        while (lo < hi) {
            int64_t mid = (lo + hi + 1) / 2;
            if (pl->task_start[mid] <= t) lo = mid; else hi = mid - 1;
        }
        b = lo;
        r = t - pl->task_start[b];
    } else {
        const int64_t per_seq = p->hq * ((p->sq + bq - 1) / bq);
        b = t / per_seq;
        r = t % per_seq;
    }
    seq_geom g;
    seq_of(pl, b, &g);
    const int64_t nqb = (g.sq + bq - 1) / bq;
    const int64_t h = r % p->hq, hk = h / pl->group;
    const int64_t i0 = (nqb - 1 - r / p->hq) * bq;
    const int nq = (int)min64(bq, g.sq - i0);

    float *qt = ws;
    float *ot = qt + bq * pl->ldq;
    float *st = ot + bq * pl->ldo;
    float *m = st + bq * pl->lds;
    float *l = m + round_up(bq, 16);
    float *alpha = l + round_up(bq, 16);
    float *xrow = alpha + round_up(bq, 16);
    float *kt = xrow + pl->lds;
    float *vt = kt + round_up((int64_t)ks->k_tile_floats(bk, p->d), 16);

    const attn_view *Q = &p->q, *K = &p->k, *V = &p->v;
    ks->load_rows(qt, pl->ldq,
                  at(Q, g.bt * Q->stride[0] + (g.q0 + i0) * Q->stride[1] + h * Q->stride[2]),
                  Q->dtype, Q->stride[1], Q->stride[3], nq, p->d, p->scale);
    const int softmax = p->score == ATTN_SCORE_SOFTMAX;
    const float sink = p->sink_logits ? p->sink_logits[h] : -INFINITY;
    for (int i = 0; i < nq; i++) {
        m[i] = sink;
        l[i] = p->sink_logits ? 1.0f : 0.0f;
        memset(ot + i * pl->ldo, 0, (size_t)pl->ldo * sizeof(float));
    }

    /* Keys any row of this block may see: sinks [0, ns) and the positional
     * range [klo, khi] (row ranges move right as i grows). */
    int64_t lo_first, hi_first, lo_last, hi_last;
    row_range(p, &g, i0, &lo_first, &hi_first);
    row_range(p, &g, i0 + nq - 1, &lo_last, &hi_last);
    const int64_t klo = max64(lo_first, 0), khi = hi_last;
    int64_t ns = min64(p->sink_tokens, g.sk);
    if (p->causal)
        ns = min64(ns, i0 + nq - 1 + g.sk - g.sq + 1);

    const char *kbase = at(K, g.bt * K->stride[0] + g.k0 * K->stride[1] + hk * K->stride[2]);
    const char *vbase = at(V, g.bt * V->stride[0] + g.k0 * V->stride[1] + hk * V->stride[2]);
    const int64_t kes = (int64_t)attn_dtype_size(K->dtype);
    for (int64_t j0 = 0; j0 < g.sk; j0 += bk) {
        const int64_t j1 = min64(j0 + bk, g.sk);
        const int in_sinks = j0 < ns, in_range = j0 <= khi && j1 - 1 >= klo;
        if (!in_sinks && !in_range) {
            if (j0 > khi)
                break;
            if (j1 <= klo)          /* jump to the first tile of the range */
                j0 = max64(j0, klo / bk * bk - bk);
            continue;
        }
        /* Fully visible by position: every row sees every key of the tile. */
        int full;
        if (j1 <= ns)
            full = !p->causal || j1 - 1 <= i0 + g.sk - g.sq;
        else
            full = j0 >= lo_last && j1 - 1 <= hi_first;
        int bmode = 1;
        if (p->has_block_mask && (bmode = block_mask_tile(p, &g, h, i0, i0 + nq, j0, j1)) == 0)
            continue;
        const int nk = (int)(j1 - j0);

        ks->pack_k(kt, kbase + j0 * K->stride[1] * kes, K->dtype, K->stride[1], K->stride[3],
                   nk, bk, p->d);
        ks->qk(qt, pl->ldq, nq, kt, nk, p->d, st, pl->lds);
        if (!full || bmode == 2 || p->has_mask || p->softcap > 0.0f || p->alibi_slopes)
            transform_scores(p, &g, h, i0, nq, j0, nk, st, pl->lds, !full, bmode == 2);
        if (softmax && ks->softmax_rows)
            ks->softmax_rows(st, pl->lds, nq, nk, m, l, alpha);
        else if (softmax)
            softmax_update(ks, st, pl->lds, nq, nk, m, l, alpha);
        else
            sigmoid_update(ks, st, pl->lds, nq, nk, p->sigmoid_bias, alpha, xrow);
        ks->pack_v(vt, vbase + j0 * V->stride[1] * kes, V->dtype, V->stride[1], V->stride[3],
                   nk, bk, p->dv);
        ks->pv(st, pl->lds, nq, vt, nk, p->dv, alpha, ot, pl->ldo);
    }

    /* Normalise, gate, store. */
    const attn_view *O = &p->out, *G = &p->gate;
    for (int i = 0; i < nq; i++) {
        float *orow = ot + i * pl->ldo;
        const int64_t row = g.q0 + i0 + i;
        float inv = 1.0f;
        if (softmax)
            inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        char *dst = at(O, g.bt * O->stride[0] + row * O->stride[1] + h * O->stride[2]);
        const char *gsrc = p->has_gate ?
            at(G, g.bt * G->stride[0] + row * G->stride[1] + h * G->stride[2]) : NULL;
        for (int64_t c = 0; c < p->dv; c++) {
            float x = orow[c] * inv;
            if (gsrc)
                x *= 1.0f / (1.0f + expf(-load_f(gsrc, G->dtype, c * G->stride[3])));
            store_f(dst, O->dtype, c * O->stride[3], x);
        }
        if (p->has_lse) {
            const attn_view *L = &p->lse;
            float lse = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
            ((float *)L->base)[g.bt * L->stride[0] + h * L->stride[1] + row * L->stride[2]] = lse;
        }
    }
}

attn_status attn_cpu_sdpa(attn_device *dev, const attn_sdpa_problem *p)
{
    const attn_cpu_state *st = dev->impl;
    sdpa_plan pl = { 0 };
    pl.p = p;
    pl.ks = st->kernels;
    pl.ks->tile_sizes(p->d, p->dv, &pl.bq, &pl.bk);
    pl.ldq = round_up(p->d, 16);
    pl.ldo = round_up(p->dv, 16);
    pl.lds = round_up(pl.bk, 16);
    pl.group = p->hq / p->hkv;
    pl.ws_floats = (size_t)(pl.bq * (pl.ldq + pl.ldo + pl.lds) + 3 * round_up(pl.bq, 16) + pl.lds +
                            round_up((int64_t)pl.ks->k_tile_floats(pl.bk, p->d), 16) +
                            round_up((int64_t)pl.ks->v_tile_floats(pl.bk, p->dv), 16));

    if (p->cu_q) {
        pl.task_start = malloc(((size_t)p->num_seqs + 1) * sizeof *pl.task_start);
        if (!pl.task_start)
            return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_sdpa: out of memory");
        int64_t n = 0;
        for (int64_t b = 0; b < p->num_seqs; b++) {
            pl.task_start[b] = n;
            n += p->hq * ((p->cu_q[b + 1] - p->cu_q[b] + pl.bq - 1) / pl.bq);
        }
        pl.task_start[p->num_seqs] = n;
        pl.ntasks = n;
    } else {
        pl.ntasks = p->num_seqs * p->hq * ((p->sq + pl.bq - 1) / pl.bq);
    }
    if (pl.ntasks == 0) {
        free(pl.task_start);
        return ATTN_OK;
    }

    int nt = st->num_threads;
    if (nt > pl.ntasks)
        nt = (int)pl.ntasks;
    /* All workspace up front: a failed allocation must not leave a half-written output. */
    float *ws = aligned_alloc(64, (size_t)nt * pl.ws_floats * sizeof(float));
    if (!ws) {
        free(pl.task_start);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_sdpa: cannot allocate %zu bytes of "
                         "workspace", (size_t)nt * pl.ws_floats * sizeof(float));
    }
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
        float *mine = ws + (size_t)omp_get_thread_num() * pl.ws_floats;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < pl.ntasks; t++)
            run_task(&pl, t, mine);
    }
#else
    for (int64_t t = 0; t < pl.ntasks; t++)
        run_task(&pl, t, ws);
#endif
    free(ws);
    free(pl.task_start);
    return ATTN_OK;
}
