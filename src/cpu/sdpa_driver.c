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
 * A tile with no transform goes to the kernel set's attend where it has one:
 * qk, softmax and pv for one strip of rows after the other.
 *
 * K and V are packed once per (sequence, KV head) -- a group -- into a panel
 * of tiles in the kernel set's layout, then every query head of that GQA
 * group and every query block reads the same panel: packing costs O(Sk*D)
 * per KV head, not per query block. A tile is packed by the first task that
 * needs it (the others wait for it, packing later tiles meanwhile), so
 * packing overlaps compute and no thread waits for a whole panel. Panels
 * live in a ring of slots bounded by a memory budget, taken in turn by the
 * groups that have tasks: a group starts once every task of the group
 * before it in its slot has finished, so memory stays O(slots * Sk * D).
 *
 * Masks cost what they save: for each (query block, key tile) the key range
 * every row can see is computed from causal/window/sink parameters; tiles
 * outside it are never visited, tiles fully inside it skip the per-element
 * visibility test, and only edge tiles evaluate it element by element. The
 * block mask is classified per (query block, key tile) the same way (a tile
 * that straddles mask blocks is mixed unless they agree; tiles are fitted to
 * the mask's blocks where possible), so hidden blocks cost nothing: they are
 * neither visited nor, when no task visits them, packed.
 *
 * Scheduling: tasks are balanced by cost, not rows. Each task's cost is the
 * number of key tiles it will visit (causal, windows and block mask
 * included). Groups are ordered in waves of enough groups to give every
 * thread many tasks; each group's tasks are handed out most expensive first
 * (longest processing time first), so the last tasks of a wave, and of the
 * call, are the cheapest. There is no barrier between waves: a thread done
 * with one wave starts on the next, and only the end of the call waits for
 * the slowest task. (Barriers per wave left threads idle for up to one task
 * each, several times per call, and packing phases in which all threads
 * competed for memory bandwidth.)
 *
 * Each group hands out its tasks, most expensive first, from a counter of
 * its own. Within a wave a thread first takes the tasks of a group of its
 * own, then of the dearest groups (by their most expensive task) that no
 * thread has started, and only then the dearest task left anywhere in the
 * wave (see run_tasks). So a K/V panel is packed and read by the few
 * threads of its group rather than by every thread (tiles written into one
 * core's cache and read from it by all the others), while the expensive
 * tasks, and a varlen batch's long sequences, still start first. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "config.h"
#include "cpu_backend.h"
#include "half.h"
#include "softmax_tile.h"
#include "stream_store.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

/* A task (index into the prefix-sum numbering) and its cost. */
typedef struct task_slot {
    int64_t cost, task;
} task_slot;

/* Tasks of a group handed out so far, on a cache line of its own: taking a
 * task writes it, and the threads on other groups must not lose lines to it. */
typedef struct group_counter {
    _Alignas(64) _Atomic int64_t n;
} group_counter;

/* Pack state of a panel tile (tile_pref numbering). */
enum { TILE_SKIPPED = 0, TILE_NEEDED, TILE_PACKING, TILE_READY };

/* Everything a task needs that is fixed for the whole call, and the shared
 * scheduling state. */
typedef struct sdpa_plan {
    const attn_sdpa_problem *p;
    const attn_cpu_kernels  *ks;
    int     bq, bk;
    int64_t ldq, ldo, lds;          /* leading dims of the f32 tiles */
    int     stream_out;             /* f32 output rows stored past the caches */
    size_t  ws_floats;              /* per-thread workspace */
    int64_t group;                  /* Hq / Hkv */
    int64_t ktf, vtf;               /* floats per packed K / V tile (16-aligned) */
    int64_t ntiles;                 /* tiles per panel (longest sequence) */
    int64_t ngroups, wave, slots;   /* groups; groups per wave; panel slots */
    float  *panels;                 /* slots K+V panels */
    int64_t *slot_of, *slot_prev;   /* per group: its slot, and the group before it
                                       there (-1: none) */
    int64_t *task_pref, *tile_pref; /* prefix sums of tasks / tiles over groups */
    task_slot *order;               /* every task, sorted by cost within its group */
    task_slot *walk;                /* per wave, its groups (task = group index) by
                                       their most expensive task, dearest first */
    atomic_uchar *tile_state;       /* per panel tile (tile_pref numbering): TILE_* */
    _Atomic int64_t *tasks_left;    /* per group: tasks not yet finished */
    group_counter *handed;          /* per group: tasks handed out */
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

/* The keys a task (query rows [i0, i0 + nq)) may see: sinks [0, ns) and the
 * positional range [klo, khi] (row ranges move right as i grows); tiles in
 * [lo_last, hi_first] are visible to every row by position. */
typedef struct task_keys {
    int64_t h, i0, nq;
    int64_t klo, khi, ns, lo_last, hi_first;
} task_keys;

static void task_keys_init(const attn_sdpa_problem *p, const seq_geom *g, int64_t h,
                           int64_t i0, int64_t nq, task_keys *tk)
{
    int64_t lo_first, hi_last;
    row_range(p, g, i0, &lo_first, &tk->hi_first);
    row_range(p, g, i0 + nq - 1, &tk->lo_last, &hi_last);
    tk->h = h;
    tk->i0 = i0;
    tk->nq = nq;
    tk->klo = max64(lo_first, 0);
    tk->khi = hi_last;
    tk->ns = min64(p->sink_tokens, g->sk);
    if (p->causal)
        tk->ns = min64(tk->ns, i0 + nq - 1 + g->sk - g->sq + 1);
}

/* The first key tile at or after j0 (a multiple of bk) with a key some row
 * of the task sees, or sk when none is left. *full: every key of the tile is
 * visible by position to every row; *bmode: block_mask_tile's verdict (1
 * without a block mask). Tiles the block mask hides are skipped here, so
 * they cost nothing, and the scheduler counts tasks' tiles with this too. */
static int64_t next_tile(const attn_sdpa_problem *p, const seq_geom *g, int bk,
                         const task_keys *tk, int64_t j0, int *full, int *bmode)
{
    for (; j0 < g->sk; j0 += bk) {
        const int64_t j1 = min64(j0 + bk, g->sk);
        const int in_sinks = j0 < tk->ns, in_range = j0 <= tk->khi && j1 - 1 >= tk->klo;
        if (!in_sinks && !in_range) {
            if (j0 > tk->khi)
                return g->sk;
            if (j1 <= tk->klo)          /* jump to the first tile of the range */
                j0 = max64(j0, tk->klo / bk * bk - bk);
            continue;
        }
        if (j1 <= tk->ns)
            *full = !p->causal || j1 - 1 <= tk->i0 + g->sk - g->sq;
        else
            *full = j0 >= tk->lo_last && j1 - 1 <= tk->hi_first;
        *bmode = 1;
        if (p->has_block_mask &&
            (*bmode = block_mask_tile(p, g, tk->h, tk->i0, tk->i0 + tk->nq, j0, j1)) == 0)
            continue;
        return j0;
    }
    return g->sk;
}

/* The last key row i may see by position: the end of its causal/window
 * range, or of the sinks (visible past a right window edge unless causal).
 * Non-decreasing in i. */
static inline int64_t key_upper(const attn_sdpa_problem *p, const seq_geom *g, int64_t i)
{
    int64_t lo, hi;
    row_range(p, g, i, &lo, &hi);
    int64_t ns = p->sink_tokens;
    if (p->causal)
        ns = min64(ns, i + g->sk - g->sq + 1);
    return max64(hi, ns - 1);
}

/* Rows per sub-block of an edge tile: a multiple of 16 (kernel sets may use
 * rows up to the next multiple of 16 as scratch) and of 6 (the AVX register
 * block). */
#define EDGE_ROWS 48

/* Sets row[c] = -inf for the columns c of [0, nk) outside both half-open
 * column ranges [a1, b1) and [a2, b2) (either may be empty). Masking by
 * ranges instead of per-element predicates keeps the loops branch-free. */
static void hide_outside(float *row, int nk, int64_t a1, int64_t b1, int64_t a2, int64_t b2)
{
    a1 = max64(a1, 0); b1 = min64(b1, nk);
    a2 = max64(a2, 0); b2 = min64(b2, nk);
    if (a1 >= b1) { a1 = a2; b1 = b2; }
    if (a2 >= b2) { a2 = a1; b2 = b1; }
    if (a2 < a1) {                      /* order the ranges by start */
        int64_t t = a1; a1 = a2; a2 = t;
        t = b1; b1 = b2; b2 = t;
    }
    if (a1 >= b1) {                     /* both empty */
        a1 = b1 = a2 = b2 = nk;
    } else if (a2 <= b1) {              /* overlapping or adjacent: merge */
        b1 = max64(b1, b2);
        a2 = b2 = b1;
    }
    for (int64_t c = 0; c < a1; c++) row[c] = -INFINITY;
    for (int64_t c = b1; c < a2; c++) row[c] = -INFINITY;
    for (int64_t c = b2; c < nk; c++) row[c] = -INFINITY;
}

/* s = cap * tanh(s / cap) on n scores through the kernel set's vector exp:
 * tanh|x| = (1 - e) / (1 + e) with e = exp(-2|x|) <= 1, so nothing
 * overflows; the absolute error stays at a few ulp of cap. */
static void softcap_row(const attn_cpu_kernels *ks, float *row, int nk, float cap, float *e)
{
    const float inv2 = 2.0f / cap;
    for (int c = 0; c < nk; c++)
        e[c] = -fabsf(row[c]) * inv2;
    ks->vexp(e, nk);
    for (int c = 0; c < nk; c++) {
        const float t = cap * (1.0f - e[c]) / (1.0f + e[c]);
        row[c] = row[c] < 0.0f ? -t : t;
    }
}

/* Applies soft-cap, ALiBi, the mask tensor and (when `check_position`)
 * causal/window/sink visibility to an nq x nk score tile whose first element
 * is (i0, j0). `scratch` holds nk floats. */
static void transform_scores(const attn_sdpa_problem *p, const attn_cpu_kernels *ks,
                             const seq_geom *g, int64_t h, int64_t i0, int nq, int64_t j0,
                             int nk, float *s, int64_t lds, int check_position,
                             int check_block, float *scratch)
{
    const float cap = p->softcap;
    const float slope = p->alibi_slopes ? p->alibi_slopes[h] : 0.0f;
    const attn_view *m = &p->mask;
    for (int r = 0; r < nq; r++) {
        float *row = s + r * lds;
        const int64_t i = i0 + r, diag = i + g->sk - g->sq;
        if (cap > 0.0f)
            softcap_row(ks, row, nk, cap, scratch);
        if (slope != 0.0f) {
            /* |diag - j| in float is exact below 2^24 keys, as in the reference. */
            const float d0 = (float)(diag - j0);
            for (int c = 0; c < nk; c++)
                row[c] -= slope * fabsf(d0 - (float)c);
        }
        if (p->has_mask) {
            const char *mrow = at(m, g->b * m->stride[0] + h * m->stride[1] + i * m->stride[2]);
            const int64_t ms = m->stride[3];
            if (p->mask_is_bool) {
                const uint8_t *mb = (const uint8_t *)mrow + j0 * ms;
                for (int c = 0; c < nk; c++)
                    row[c] = mb[c * ms] ? row[c] : -INFINITY;
            } else if (m->dtype == ATTN_F32 && ms == 1) {
                const float *mf = (const float *)mrow + j0;
                for (int c = 0; c < nk; c++)
                    row[c] += mf[c];
            } else {
                for (int c = 0; c < nk; c++)
                    row[c] += attn_load_f32(mrow, m->dtype, (j0 + c) * ms);
            }
        }
        if (check_position) {
            /* Visible keys of row i: the sinks [0, ns) (causality still
             * applies) and the positional range [lo, hi], as column ranges. */
            int64_t lo, hi;
            row_range(p, g, i, &lo, &hi);
            int64_t ns = p->sink_tokens;
            if (p->causal)
                ns = min64(ns, diag + 1);
            hide_outside(row, nk, -j0, ns - j0, lo - j0, hi + 1 - j0);
        }
        if (check_block) {
            /* Runs of columns that share one block_mask entry. */
            const attn_view *bm = &p->block_mask;
            const uint8_t *brow = (const uint8_t *)bm->base + g->b * bm->stride[0] +
                                  h * bm->stride[1] + (i / p->block_q) * bm->stride[2];
            for (int64_t c0 = 0; c0 < nk;) {
                const int64_t bj = (j0 + c0) / p->block_k;
                const int64_t c1 = min64(nk, (bj + 1) * p->block_k - j0);
                if (!brow[bj * bm->stride[3]])
                    for (int64_t c = c0; c < c1; c++)
                        row[c] = -INFINITY;
                c0 = c1;
            }
        }
    }
}

/* Packs key tile `tile` of group gi into the panel in its slot. */
static void pack_tile(const sdpa_plan *pl, int64_t gi, int64_t tile)
{
    const attn_sdpa_problem *p = pl->p;
    const attn_view *K = &p->k, *V = &p->v;
    seq_geom g;
    seq_of(pl, gi / p->hkv, &g);
    const int64_t hk = gi % p->hkv, j0 = tile * pl->bk;
    const int nk = (int)min64(pl->bk, g.sk - j0);
    const int64_t row = g.k0 + j0;
    float *kp = pl->panels + pl->slot_of[gi] * pl->ntiles * (pl->ktf + pl->vtf);
    float *vp = kp + pl->ntiles * pl->ktf;
    pl->ks->pack_k(kp + tile * pl->ktf,
                   at(K, g.bt * K->stride[0] + row * K->stride[1] + hk * K->stride[2]),
                   K->dtype, K->stride[1], K->stride[3], nk, pl->bk, p->d);
    pl->ks->pack_v(vp + tile * pl->vtf,
                   at(V, g.bt * V->stride[0] + row * V->stride[1] + hk * V->stride[2]),
                   V->dtype, V->stride[1], V->stride[3], nk, pl->bk, p->dv);
}

/* Waiting for another thread (a tile being packed, a panel slot in use):
 * spin about as long as packing a tile takes (~1000 pauses, tens of
 * microseconds), then sleep in short naps. When threads outnumber free
 * cores the thread waited for may itself be waiting for a core, which a
 * spinning (or sched_yield-ing, which keeps it runnable) waiter holds. */
static void relax(unsigned *spins)
{
    if (++*spins < 1024) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
    } else {
        const struct timespec nap = { 0, 20000 };
        nanosleep(&nap, NULL);
    }
}

/* Returns once tile `tile` of group gi is packed. The first task to reach a
 * tile packs it; a task that finds it being packed packs the group's next
 * tiles that nobody has claimed yet while it waits, so the threads that
 * start on a fresh panel together pack it together. */
static void tile_ready(const sdpa_plan *pl, int64_t gi, int64_t tile)
{
    atomic_uchar *state = pl->tile_state + pl->tile_pref[gi];
    const int64_t n = pl->tile_pref[gi + 1] - pl->tile_pref[gi];
    int64_t ahead = tile;
    unsigned spins = 0;
    while (atomic_load_explicit(&state[tile], memory_order_acquire) != TILE_READY) {
        for (; ahead < n; ahead++) {
            unsigned char want = TILE_NEEDED;
            if (atomic_compare_exchange_strong_explicit(&state[ahead], &want, TILE_PACKING,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed)) {
                pack_tile(pl, gi, ahead);
                atomic_store_explicit(&state[ahead], TILE_READY, memory_order_release);
                break;
            }
        }
        if (ahead >= n)
            relax(&spins);
    }
}

/* One task: query head h, query rows [i0, i0 + nq) of sequence g, against the
 * packed K/V panel of its KV head (group gi), packing tiles on first use. */
static void run_task(const sdpa_plan *pl, const seq_geom *gp, int64_t gi, int64_t h,
                     int64_t i0, float *ws)
{
    const attn_sdpa_problem *p = pl->p;
    const attn_cpu_kernels *ks = pl->ks;
    const seq_geom g = *gp;
    const int bq = pl->bq, bk = pl->bk;
    const int nq = (int)min64(bq, g.sq - i0);

    float *qt = ws;
    float *ot = qt + bq * pl->ldq;
    float *st = ot + bq * pl->ldo;
    float *m = st + bq * pl->lds;
    float *l = m + round_up(bq, 16);
    float *alpha = l + round_up(bq, 16);
    float *xrow = alpha + round_up(bq, 16);

    const attn_view *Q = &p->q;
    (ks->load_q ? ks->load_q : ks->load_rows)(qt, pl->ldq,
                  at(Q, g.bt * Q->stride[0] + (g.q0 + i0) * Q->stride[1] + h * Q->stride[2]),
                  Q->dtype, Q->stride[1], Q->stride[3], nq, p->d, p->scale);
    const int softmax = p->score == ATTN_SCORE_SOFTMAX;
    const float sink = p->sink_logits ? p->sink_logits[h] : -INFINITY;
    for (int i = 0; i < nq; i++) {
        m[i] = sink;
        l[i] = p->sink_logits ? 1.0f : 0.0f;
        memset(ot + i * pl->ldo, 0, (size_t)pl->ldo * sizeof(float));
    }

    const float *kpanel = pl->panels + pl->slot_of[gi] * pl->ntiles * (pl->ktf + pl->vtf);
    const float *vpanel = kpanel + pl->ntiles * pl->ktf;
    task_keys tk;
    task_keys_init(p, &g, h, i0, nq, &tk);
    int full, bmode;
    for (int64_t j0 = next_tile(p, &g, bk, &tk, 0, &full, &bmode); j0 < g.sk;
         j0 = next_tile(p, &g, bk, &tk, j0 + bk, &full, &bmode)) {
        const int64_t j1 = min64(j0 + bk, g.sk);
        const int nk = (int)(j1 - j0);
        const int64_t tile = j0 / bk;
        tile_ready(pl, gi, tile);
        const float *kt = kpanel + tile * pl->ktf, *vt = vpanel + tile * pl->vtf;
        /* A tile that is not fully visible by position (it crosses the causal
         * diagonal or a window edge) runs in sub-blocks of EDGE_ROWS rows, each
         * stopping at the last key its last row may see (rounded up to 16
         * columns) and skipped when it sees none: causal attention then
         * computes 0.506 of the dense work at S = 4096 instead of 0.523. */
        const int sub = full ? nq : EDGE_ROWS;
        for (int r0 = 0; r0 < nq; r0 += sub) {
            const int ns = nq - r0 < sub ? nq - r0 : sub;
            int nks = nk;
            if (!full) {
                const int64_t last = key_upper(p, &g, i0 + r0 + ns - 1) - j0 + 1;
                if (last <= 0)
                    continue;
                /* Fewer columns of a packed tile need qk_runs (qk assumes the
                 * packed count); sets without it compute the whole tile. */
                if (last < nk && ks->qk_runs)
                    nks = (int)min64(nk, round_up(last, 16));
            }
            float *sr = st + r0 * pl->lds;
            /* Nothing to apply between qk and the softmax: the kernel set's
             * attend runs the three steps strip by strip (see t_attend). */
            if (ks->attend && full && bmode != 2 && !p->has_mask && p->softcap <= 0.0f &&
                !p->alibi_slopes && softmax) {
                ks->attend(qt + r0 * pl->ldq, pl->ldq, ns, kt, vt, nk, p->d, p->dv, sr, pl->lds,
                           m + r0, l + r0, alpha + r0, ot + r0 * pl->ldo, pl->ldo);
                continue;
            }
            if (nks < nk) {   /* here ns <= EDGE_ROWS */
                const float *qrows[EDGE_ROWS];
                for (int i = 0; i < ns; i++)
                    qrows[i] = qt + (r0 + i) * pl->ldq;
                ks->qk_runs(qrows, ns, &kt, 1, nk, 0, nks, p->d, sr, pl->lds, 0);
            } else
                ks->qk(qt + r0 * pl->ldq, pl->ldq, ns, kt, nk, p->d, sr, pl->lds);
            if (!full || bmode == 2 || p->has_mask || p->softcap > 0.0f || p->alibi_slopes)
                transform_scores(p, ks, &g, h, i0 + r0, ns, j0, nks, sr, pl->lds, !full,
                                 bmode == 2, xrow);
            if (softmax)
                attn_cpu_softmax_online(ks, sr, pl->lds, ns, nks, m + r0, l + r0, alpha + r0);
            else
                attn_cpu_sigmoid_rows(ks, sr, pl->lds, ns, nks, p->sigmoid_bias, alpha + r0,
                                      xrow);
            ks->pv(sr, pl->lds, ns, vt, nks, p->dv, alpha + r0, ot + r0 * pl->ldo, pl->ldo);
        }
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
        if (pl->stream_out && !gsrc) {
            attn_cpu_store_scaled_stream((float *)dst, orow, p->dv, inv);
        } else {
            for (int64_t c = 0; c < p->dv; c++) {
                float x = orow[c] * inv;
                if (gsrc)
                    x *= 1.0f / (1.0f + expf(-attn_load_f32(gsrc, G->dtype, c * G->stride[3])));
                attn_store_f32(dst, O->dtype, c * O->stride[3], x);
            }
        }
        if (p->has_lse) {
            const attn_view *L = &p->lse;
            float lse = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
            ((float *)L->base)[g.bt * L->stride[0] + h * L->stride[1] + row * L->stride[2]] = lse;
        }
    }
    attn_cpu_stream_fence();
}

/* The group whose prefix range [pref[g], pref[g+1]) holds x, within [lo, hi)
 * (the last of several when some are empty). */
static int64_t find_group(const int64_t *pref, int64_t lo, int64_t hi, int64_t x)
{
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (pref[mid] <= x) lo = mid; else hi = mid;
    }
    return lo;
}

/* Task x: its group, sequence, head and rows. */
static int64_t task_of(const sdpa_plan *pl, int64_t x, seq_geom *g, int64_t *h, int64_t *i0)
{
    const attn_sdpa_problem *p = pl->p;
    const int64_t gi = find_group(pl->task_pref, 0, pl->ngroups, x), t = x - pl->task_pref[gi];
    seq_of(pl, gi / p->hkv, g);
    *h = (gi % p->hkv) * pl->group + t % pl->group;
    *i0 = t / pl->group * pl->bq;
    return gi;
}

/* A task's cost: the key tiles it visits (each a qk + softmax + pv of nq
 * rows), plus one for loading Q and storing O. Counted with the same
 * next_tile as run_task, so causal, windows and block masks all count; the
 * visited tiles are marked TILE_NEEDED in `state` (the group's panel tiles). */
static int64_t task_cost(const sdpa_plan *pl, const seq_geom *g, int64_t h, int64_t i0,
                         atomic_uchar *state)
{
    const int64_t nq = min64(pl->bq, g->sq - i0);
    task_keys tk;
    task_keys_init(pl->p, g, h, i0, nq, &tk);
    int64_t tiles = 1;
    int full, bmode;
    for (int64_t j0 = next_tile(pl->p, g, pl->bk, &tk, 0, &full, &bmode); j0 < g->sk;
         j0 = next_tile(pl->p, g, pl->bk, &tk, j0 + pl->bk, &full, &bmode)) {
        tiles++;
        atomic_store_explicit(&state[j0 / pl->bk], TILE_NEEDED, memory_order_relaxed);
    }
    return tiles * nq;
}

/* Most expensive first; equal costs in task order (deterministic). */
static int by_cost(const void *a, const void *b)
{
    const task_slot *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    return (x->task > y->task) - (x->task < y->task);
}

/* Costs every task (marking the key tiles it visits), then sorts each
 * group's tasks most expensive first. A tile no task visits (block mask,
 * windows) is never packed. Every thread of the team calls this. */
static void plan_tasks(sdpa_plan *pl)
{
    const int64_t ntasks = pl->task_pref[pl->ngroups];
#ifdef HAVE_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t x = 0; x < ntasks; x++) {
        seq_geom g;
        int64_t h, i0;
        const int64_t gi = task_of(pl, x, &g, &h, &i0);
        pl->order[x] = (task_slot){ task_cost(pl, &g, h, i0, pl->tile_state + pl->tile_pref[gi]),
                                    x };
    }
#ifdef HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t gi = 0; gi < pl->ngroups; gi++) {
        const int64_t t0 = pl->task_pref[gi], t1 = pl->task_pref[gi + 1];
        qsort(pl->order + t0, (size_t)(t1 - t0), sizeof *pl->order, by_cost);
        pl->walk[gi] = (task_slot){ t1 > t0 ? pl->order[t0].cost : 0, gi };
    }
    const int64_t nwaves = (pl->ngroups + pl->wave - 1) / pl->wave;
#ifdef HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t w = 0; w < nwaves; w++) {
        const int64_t g0 = w * pl->wave, g1 = min64(g0 + pl->wave, pl->ngroups);
        qsort(pl->walk + g0, (size_t)(g1 - g0), sizeof *pl->walk, by_cost);
    }
}

/* The index into order of group gi's next task, or -1 once all are handed
 * out (counters only grow, so an empty group stays empty). */
static int64_t take_task(sdpa_plan *pl, int64_t gi)
{
    const int64_t n = pl->task_pref[gi + 1] - pl->task_pref[gi];
    if (atomic_load_explicit(&pl->handed[gi].n, memory_order_relaxed) >= n)
        return -1;
    const int64_t k = atomic_fetch_add_explicit(&pl->handed[gi].n, 1, memory_order_relaxed);
    return k < n ? pl->task_pref[gi] + k : -1;
}

/* Runs task y (an index into order) of group gi. It first waits until the
 * group before its own in its panel slot has finished: that group is at
 * least `slots` groups earlier, so in an earlier wave (slots >= wave), and a
 * thread starts a wave only once every task of the waves before it has been
 * handed out. */
static void run_one(sdpa_plan *pl, int64_t gi, int64_t y, float *ws)
{
    seq_geom g;
    int64_t h, i0;
    task_of(pl, pl->order[y].task, &g, &h, &i0);
    const int64_t prev = pl->slot_prev[gi];
    if (prev >= 0) {
        unsigned spins = 0;
        while (atomic_load_explicit(&pl->tasks_left[prev], memory_order_acquire))
            relax(&spins);
    }
    run_task(pl, &g, gi, h, i0, ws);
    atomic_fetch_sub_explicit(&pl->tasks_left[gi], 1, memory_order_release);
}

static void run_group(sdpa_plan *pl, int64_t gi, float *ws)
{
    for (int64_t y; (y = take_task(pl, gi)) >= 0;)
        run_one(pl, gi, y, ws);
}

/* The group of [g0, g0 + ng) whose next task is dearest, or -1 once every
 * task of them is handed out. */
static int64_t dearest_group(const sdpa_plan *pl, int64_t g0, int64_t ng)
{
    int64_t best = -1, best_cost = -1;
    for (int64_t gi = g0; gi < g0 + ng; gi++) {
        const int64_t k = atomic_load_explicit(&pl->handed[gi].n, memory_order_relaxed);
        if (k < pl->task_pref[gi + 1] - pl->task_pref[gi] &&
            pl->order[pl->task_pref[gi] + k].cost > best_cost) {
            best = gi;
            best_cost = pl->order[pl->task_pref[gi] + k].cost;
        }
    }
    return best;
}

/* Thread `thread` of `nt`, wave by wave: first a group of its own (of the
 * nt dearest groups, or, with fewer groups than threads, a group shared by
 * evenly many threads); then, one after another, the dearest groups nobody
 * has started; then the dearest task left in the wave, task by task. So a
 * thread keeps to one panel as long as there are panels enough, and the
 * wave still ends on its cheapest tasks. */
static void run_tasks(sdpa_plan *pl, float *ws, int thread, int nt)
{
    for (int64_t g0 = 0; g0 < pl->ngroups; g0 += pl->wave) {
        const int64_t ng = min64(pl->wave, pl->ngroups - g0);
        const task_slot *walk = pl->walk + g0;
        run_group(pl, walk[ng >= nt ? thread : (int64_t)thread * ng / nt].task, ws);
        for (int64_t pos = 0; pos < ng; pos++)
            if (atomic_load_explicit(&pl->handed[walk[pos].task].n, memory_order_relaxed) == 0)
                run_group(pl, walk[pos].task, ws);
        for (int64_t gi, y; (gi = dearest_group(pl, g0, ng)) >= 0;)
            if ((y = take_task(pl, gi)) >= 0)
                run_one(pl, gi, y, ws);
    }
}

/* With a block mask, tiles that straddle mask blocks are visited whenever
 * any of their blocks is kept and then masked element by element: a 96-row
 * task over 128-row blocks sees the union of two block rows. So the tiles
 * are fitted to the blocks where that costs little: query tiles of one
 * block (blocks up to twice the preferred tile) or an exact fraction of
 * one; key tiles of one block when blocks are smaller than the preferred
 * tile and a multiple of 16 keys (kernel sets take any nk up to bk). Blocks
 * that are multiples of the tile are aligned already. */
static void align_tiles_to_blocks(const attn_sdpa_problem *p, int *bq, int *bk)
{
    const int64_t qb = p->block_q, kb = p->block_k;
    if (qb % *bq != 0) {
        if (qb >= 16 && qb <= 2 * (int64_t)*bq) {
            *bq = (int)qb;
        } else if (qb > 2 * (int64_t)*bq) {
            const int64_t n = qb / *bq + (qb % *bq != 0);   /* no overflow near INT64_MAX */
            if (qb % n == 0 && qb / n >= 16)
                *bq = (int)(qb / n);
        }
    }
    if (kb < *bk && kb >= 16 && kb % 16 == 0)
        *bk = (int)kb;
}

/* One thread's share of the work (the whole job without OpenMP), inside
 * the kernel set's per-thread set-up (AMX tile configuration). */
static void run_thread(sdpa_plan *pl, float *ws, int thread, int nt)
{
    plan_tasks(pl);
    if (pl->ks->thread_begin)
        pl->ks->thread_begin();
    run_tasks(pl, ws, thread, nt);
    if (pl->ks->thread_end)
        pl->ks->thread_end();
}

/* Tasks of the call (query heads x blocks of bq query rows). */
static int64_t query_tasks(const attn_sdpa_problem *p, int64_t bq)
{
    if (!p->cu_q)
        return p->num_seqs * p->hq * ((p->sq + bq - 1) / bq);
    int64_t n = 0;
    for (int64_t b = 0; b < p->num_seqs; b++)
        n += p->hq * ((p->cu_q[b + 1] - p->cu_q[b] + bq - 1) / bq);
    return n;
}

/* Panel slots may use this much memory when one group's tasks cannot keep
 * the threads busy (a single group may always exceed it). */
#define PANEL_BUDGET_BYTES ((size_t)64 << 20)

/* Outputs from this size on are stored with streaming stores. */
#define STREAM_OUT_BYTES ((size_t)8 << 20)

attn_status attn_cpu_sdpa(attn_device *dev, const attn_sdpa_problem *p)
{
    attn_cpu_state *st = dev->impl;
    sdpa_plan pl = { 0 };
    pl.p = p;
    pl.ks = st->kernels;
    pl.ks->tile_sizes(p->d, p->dv, &pl.bq, &pl.bk);
    if (p->has_block_mask)
        align_tiles_to_blocks(p, &pl.bq, &pl.bk);
    /* Streaming stores for outputs well past the caches of a core, which
     * the caller cannot find cached anyway (smaller ones may stay cached
     * for the caller). */
    const double out_rows = p->cu_q ? (double)p->cu_q[p->num_seqs] : (double)p->num_seqs * (double)p->sq;
    pl.stream_out = p->out.dtype == ATTN_F32 && p->out.stride[3] == 1 &&
                    out_rows * (double)p->hq * (double)p->dv * sizeof(float) >= (double)STREAM_OUT_BYTES;
    pl.ldq = round_up(p->d, 16);
    pl.ldo = round_up(p->dv, 16);
    pl.lds = round_up(pl.bk, 16);
    pl.group = p->hq / p->hkv;
    pl.ktf = round_up((int64_t)pl.ks->k_tile_floats(pl.bk, p->d), 16);
    pl.vtf = round_up((int64_t)pl.ks->v_tile_floats(pl.bk, p->dv), 16);
    pl.ntiles = (p->sk + pl.bk - 1) / pl.bk;

    if (p->num_seqs == 0 || p->sq == 0)
        return ATTN_OK;   /* before multiplying: an empty q may have a huge batch */
    /* Twice the kernel set's query rows per task where the call still has 16
     * tasks per thread then: every K/V tile brought into L2 serves twice the
     * rows. A panel (4.7 MB at Sk = 4096, D = 128) outgrows L2, so every task
     * streams its panel from L3; halving that traffic per flop is meant for
     * many cores sharing one L3 and mesh, where the per-thread rate fell
     * (issue #3) while one core reaches 77% of its FMA peak. (Block masks
     * keep the tiles fitted to their blocks.) */
    if (!p->has_block_mask) {
        const int64_t big = query_tasks(p, 2 * (int64_t)pl.bq);
        if (big < query_tasks(p, pl.bq) && big >= 16 * (int64_t)st->num_threads)
            pl.bq *= 2;
    }
    pl.ws_floats = (size_t)(pl.bq * (pl.ldq + pl.ldo + pl.lds) + 3 * round_up(pl.bq, 16) + pl.lds);
    const int64_t ngroups = p->num_seqs * p->hkv;
    pl.ngroups = ngroups;
    pl.task_pref = malloc((5 * (size_t)ngroups + 2) * sizeof(int64_t));
    if (!pl.task_pref)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_sdpa: out of memory");
    pl.tile_pref = pl.task_pref + ngroups + 1;
    pl.slot_of = pl.tile_pref + ngroups + 1;
    pl.slot_prev = pl.slot_of + ngroups;
    pl.task_pref[0] = pl.tile_pref[0] = 0;
    for (int64_t gi = 0; gi < ngroups; gi++) {
        seq_geom g;
        seq_of(&pl, gi / p->hkv, &g);
        pl.task_pref[gi + 1] = pl.task_pref[gi] + pl.group * ((g.sq + pl.bq - 1) / pl.bq);
        /* a group without queries needs no panel */
        pl.tile_pref[gi + 1] = pl.tile_pref[gi] + (g.sq ? (g.sk + pl.bk - 1) / pl.bk : 0);
    }

    /* Wave size: enough tasks for 16 per thread (the window in which tasks
     * are ordered by cost). Slots: two waves' panels, so that the threads
     * that finish a wave early go on with the next one while its last tasks
     * run; within the panel budget, keeping slots >= wave (see run_tasks). */
    int nt = st->num_threads;
    const int64_t tasks_per_group = (pl.task_pref[ngroups] + ngroups - 1) / ngroups;
    const size_t panel_bytes = (size_t)(pl.ntiles * (pl.ktf + pl.vtf)) * sizeof(float);
    int64_t wave = tasks_per_group ? (16 * (int64_t)nt + tasks_per_group - 1) / tasks_per_group : 1;
    wave = max64(1, min64(wave, ngroups));
    pl.slots = min64(ngroups, 2 * wave);
    if (panel_bytes && (size_t)pl.slots * panel_bytes > PANEL_BUDGET_BYTES) {
        pl.slots = max64(1, (int64_t)(PANEL_BUDGET_BYTES / panel_bytes));
        wave = max64(1, min64(wave, pl.slots / 2));
    }
    pl.wave = wave;
    /* Groups without tasks (varlen sequences without queries) take no slot,
     * so that every group waits for the one that really used its slot last
     * (waiting on an empty group would wait for nothing). */
    int64_t *with_tasks = pl.slot_prev + ngroups, used = 0;
    for (int64_t gi = 0; gi < ngroups; gi++) {
        pl.slot_of[gi] = 0;
        pl.slot_prev[gi] = -1;
        if (pl.task_pref[gi + 1] == pl.task_pref[gi])
            continue;
        pl.slot_of[gi] = used % pl.slots;
        if (used >= pl.slots)
            pl.slot_prev[gi] = with_tasks[used - pl.slots];
        with_tasks[used++] = gi;
    }
    if (nt > pl.task_pref[ngroups])
        nt = (int)pl.task_pref[ngroups];

    /* All memory up front: a failed allocation must not leave a half-written output. */
    const size_t total = (size_t)nt * pl.ws_floats + (size_t)pl.slots * panel_bytes / sizeof(float);
    const size_t ntiles_all = (size_t)pl.tile_pref[ngroups];
    pl.order = malloc((size_t)pl.task_pref[ngroups] * sizeof *pl.order);
    pl.walk = malloc((size_t)ngroups * sizeof *pl.walk);
    pl.tile_state = malloc((ntiles_all + 1) * sizeof *pl.tile_state);
    pl.tasks_left = malloc((size_t)ngroups * sizeof *pl.tasks_left);
    pl.handed = aligned_alloc(64, (size_t)ngroups * sizeof *pl.handed);
    int kept;
    float *ws = pl.order && pl.walk && pl.tile_state && pl.tasks_left && pl.handed ?
        attn_cpu_scratch_acquire(&st->scratch, total * sizeof(float), &kept) : NULL;
    if (!ws) {
        free(pl.order);
        free(pl.walk);
        free(pl.tile_state);
        free(pl.tasks_left);
        free(pl.handed);
        free(pl.task_pref);
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_sdpa: cannot allocate %zu bytes of "
                         "workspace", total * sizeof(float));
    }
    for (size_t x = 0; x <= ntiles_all; x++)
        atomic_init(&pl.tile_state[x], TILE_SKIPPED);
    for (int64_t gi = 0; gi < ngroups; gi++) {
        atomic_init(&pl.tasks_left[gi], pl.task_pref[gi + 1] - pl.task_pref[gi]);
        atomic_init(&pl.handed[gi].n, 0);
    }
    pl.panels = ws + (size_t)nt * pl.ws_floats;
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    run_thread(&pl, ws + (size_t)omp_get_thread_num() * pl.ws_floats, omp_get_thread_num(),
               omp_get_num_threads());
#else
    run_thread(&pl, ws, 0, 1);
#endif
    attn_cpu_scratch_release(&st->scratch, ws, kept);
    free(pl.order);
    free(pl.walk);
    free(pl.tile_state);
    free(pl.tasks_left);
    free(pl.handed);
    free(pl.task_pref);
    return ATTN_OK;
}
