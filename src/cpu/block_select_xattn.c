/* XAttention block scoring on the CPU.
 *
 * With stride s, the antidiagonal sum of an s x s cell (r, c) is one dot
 * product of length s*D between a reshaped query row (rows r*s+s-1 down to
 * r*s, concatenated) and a reshaped key row (keys c*s .. c*s+s-1,
 * concatenated): the scores are a GEMM of ceil(Sq/s) x ceil(Sk/s) x s*D, 1/s
 * of the QK^T work of dense attention. It runs on the kernel set's qk over
 * K tiles packed with its pack_k, so every ISA's micro-kernel is reused.
 *
 * Keys are reshaped and packed once per (sequence, KV head) group, into a
 * panel of tiles of SEG_TILE segments; groups go in waves as large as the
 * panel budget allows. A task is (query head, TASK_ROWS segment rows = whole
 * query blocks): it streams the K tiles its rows may see (causal: up to its
 * last row) through qk -- enough rows per tile that the GEMM is not bound by
 * reading K -- then softmaxes its segment rows over their allowed cells on
 * the kernel set's softmax_rows (whole vectors: cells past a row's limit are
 * -inf), sums each block row's probabilities per key segment (a vector
 * add per row, 1/l folded in), then per key block, and applies the
 * threshold rule. Per-row horizontal sums and scalar loops here took as
 * long as a third of the GEMM. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "block_select.h"
#include "softmax_tile.h"
#include "half.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

#define SEG_TILE 64      /* key segments per packed tile (4 AVX-512 vectors) */
#define TASK_ROWS 128    /* segment rows per task, at least: each K tile streamed
                            through a task serves this many rows (one ROW_CHUNK:
                            ~5% faster than 96 at S = 16384, stride 16, AMX) */
#define ROW_CHUNK 128    /* segment rows scored at once (bounds the workspace;
                            at most 2 x SEG_TILE: bf16 staging, see run_task) */
#define PANEL_BUDGET_BYTES ((size_t)256 << 20)

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

typedef struct xattn_plan {
    const attn_block_select_problem *p;
    const attn_cpu_kernels *ks;
    int64_t s, sd, ldq, lds;      /* stride, s*D, leading dims (multiples of 16) */
    int64_t nsq, nsk, ntiles;     /* segments of q, of k; packed tiles per group */
    int64_t ktf;                  /* floats per packed tile (16-aligned) */
    int64_t rows_per_block;       /* block_q / s */
    int64_t blocks_per_task, tasks_per_head;
    float  *panels;               /* packed keys of the groups of the current wave */
    int     bf16;                 /* bf16 inputs: packed and scored as bf16 (see below) */
    size_t  ws_floats;            /* per-thread workspace */
} xattn_plan;

/* Reshaped row of segment `seg` of one head of x [B,S,H,D] into dst (s*D
 * floats, 64-byte aligned, times `scale`): rows seg*s+t for t < s, or with
 * `reverse` rows seg*s+s-1-t; rows past `len` are zeros. With D a multiple
 * of 16 every row starts 64-byte aligned and the kernel set's vector
 * load_rows converts it; otherwise a scalar loop does. */
static void reshape_segment(const attn_cpu_kernels *ks, const attn_view *x, int64_t b,
                            int64_t h, int64_t seg, int64_t s, int64_t len, int64_t d,
                            float scale, int reverse, float *dst)
{
    const int64_t es = (int64_t)attn_dtype_size(x->dtype);
    for (int64_t t = 0; t < s; t++) {
        const int64_t row = seg * s + (reverse ? s - 1 - t : t);
        float *o = dst + t * d;
        if (row >= len) {
            memset(o, 0, (size_t)d * sizeof *o);
            continue;
        }
        const char *src = x->base + (b * x->stride[0] + row * x->stride[1] +
                                     h * x->stride[2]) * es;
        if (d % 16 == 0) {
            ks->load_rows(o, d, src, x->dtype, 0, x->stride[3], 1, d, scale);
        } else {
            for (int64_t c = 0; c < d; c++)
                o[c] = scale * attn_load_f32(src, x->dtype, c * x->stride[3]);
        }
    }
}

/* bf16 inputs go through the kernel set as bf16, the calls the sdpa driver
 * makes (load_q / pack_k with ATTN_BF16), so a set with bf16 matrix units
 * (AMX) scores them there too. The reshaped rows are copied as bf16, and
 * the query scale is applied to the f32 scores instead, so the products
 * stay exact. Same rows as reshape_segment, read in increasing address
 * order also when reversed (the hardware prefetchers follow it). */
static void reshape_segment_bf16(const attn_view *x, int64_t b, int64_t h, int64_t seg,
                                 int64_t s, int64_t len, int64_t d, int reverse, uint16_t *dst)
{
    for (int64_t u = 0; u < s; u++) {
        const int64_t row = seg * s + u;
        uint16_t *o = dst + (reverse ? s - 1 - u : u) * d;
        if (row >= len) {
            memset(o, 0, (size_t)d * sizeof *o);
            continue;
        }
        const uint16_t *src = (const uint16_t *)x->base +
                              (b * x->stride[0] + row * x->stride[1] + h * x->stride[2]);
        if (x->stride[3] == 1) {
            memcpy(o, src, (size_t)d * sizeof *o);
        } else {
            for (int64_t c = 0; c < d; c++)
                o[c] = src[c * x->stride[3]];
        }
    }
}

/* Segments of keys a query segment r may score: those of allowed blocks and,
 * with causal, those whose first key its last row sees. */
static int64_t segment_limit(const xattn_plan *pl, int64_t r, int64_t allowed_blocks)
{
    const attn_block_select_problem *p = pl->p;
    int64_t lim = allowed_blocks * (p->block_k / pl->s);
    if (lim > pl->nsk)
        lim = pl->nsk;
    if (p->causal) {
        const int64_t last = (r + 1) * pl->s < p->sq ? (r + 1) * pl->s - 1 : p->sq - 1;
        const int64_t d = last + p->sk - p->sq;
        const int64_t c = d < 0 ? 0 : d / pl->s + 1;
        if (c < lim)
            lim = c;
    }
    return lim;
}

/* row[c] *= scale for c < n, in blocks of 16 the compiler vectorizes. */
static void scale_cells(float *row, int64_t n, float scale)
{
    int64_t c = 0;
    for (; c + 16 <= n; c += 16)
        for (int k = 0; k < 16; k++)
            row[c + k] *= scale;
    for (; c < n; c++)
        row[c] *= scale;
}

/* acc[c] += w * row[c] for c < n, n a multiple of 16. */
static void add_scaled_row(float *restrict acc, const float *restrict row, int64_t n, float w)
{
    for (int64_t c = 0; c < n; c += 16)
        for (int k = 0; k < 16; k++)
            acc[c + k] += w * row[c + k];
}

/* Scores of segment rows [r0, r0 + nr) against the allowed key segments,
 * turned into probabilities and summed per column into colsum, one row of
 * lds floats per block row of the task (I - I0). */
static void score_rows(const xattn_plan *pl, int64_t b, int64_t h, int64_t r0, int64_t nr,
                       int64_t I0, const float *kpack, float *qrows, float *sc, float *colsum,
                       float *rowstat, uint16_t *stage)
{
    const attn_block_select_problem *p = pl->p;
    /* Allowed segments grow with the row: the last row bounds them all. */
    int64_t diag;
    const int64_t last_allowed = attn_bs_allowed(p, (r0 + nr - 1) / pl->rows_per_block, &diag);
    const int64_t cmax = last_allowed ? segment_limit(pl, r0 + nr - 1, last_allowed) : 0;
    if (cmax == 0)
        return;
    /* x = scale * a / s folded into the query rows */
    const float qscale = p->scale / (float)pl->s;
    if (pl->bf16) {
        /* rows reshaped into the staging rows, then all loaded in the
         * kernel set's own Q format */
        for (int64_t r = 0; r < nr; r++)
            reshape_segment_bf16(&p->q, b, h, r0 + r, pl->s, p->sq, p->d, 1,
                                 stage + r * pl->sd);
        (pl->ks->load_q ? pl->ks->load_q : pl->ks->load_rows)(qrows, pl->ldq, stage, ATTN_BF16,
                                                              pl->sd, 1, (int)nr, pl->sd, 1.0f);
    } else {
        for (int64_t r = 0; r < nr; r++) {
            float *row = qrows + r * pl->ldq;
            reshape_segment(pl->ks, &p->q, b, h, r0 + r, pl->s, p->sq, p->d, qscale, 1, row);
            memset(row + pl->sd, 0, (size_t)(pl->ldq - pl->sd) * sizeof *row);
        }
    }
    /* whole tiles: a packed tile's layout depends on the key count it was packed with */
    for (int64_t t = 0; t * SEG_TILE < cmax; t++) {
        const int64_t c0 = t * SEG_TILE;
        const int nk = (int)(pl->nsk - c0 < SEG_TILE ? pl->nsk - c0 : SEG_TILE);
        pl->ks->qk(qrows, pl->ldq, (int)nr, kpack + t * pl->ktf, nk, pl->sd, sc + c0, pl->lds);
    }
    /* Every row over whole vectors of columns: cells past the row's limit
     * (and the padding up to ncol) are -inf, probability 0. Rows that see no
     * segment (causal, Sq > Sk) come first, since limits grow with the row:
     * they are skipped. */
    const int64_t ncol = round_up(cmax, 16);
    int64_t first = nr;
    for (int64_t r = nr - 1; r >= 0; r--) {
        const int64_t allowed = attn_bs_allowed(p, (r0 + r) / pl->rows_per_block, &diag);
        const int64_t lim = allowed ? segment_limit(pl, r0 + r, allowed) : 0;
        if (lim == 0)
            break;
        first = r;
        float *row = sc + r * pl->lds;
        if (pl->bf16)
            scale_cells(row, lim, qscale);
        for (int64_t c = lim; c < ncol; c++)
            row[c] = -INFINITY;
    }
    if (first == nr)
        return;
    float *m = rowstat, *l = m + ROW_CHUNK, *alpha = l + ROW_CHUNK;
    attn_cpu_softmax_fresh(pl->ks, sc + first * pl->lds, pl->lds, (int)(nr - first), (int)ncol,
                           m, l, alpha);
    for (int64_t r = first; r < nr; r++) {
        const int64_t I = (r0 + r) / pl->rows_per_block;
        add_scaled_row(colsum + (I - I0) * pl->lds, sc + r * pl->lds, ncol,
                       1.0f / l[r - first]);
    }
}

/* One task: block rows [I0, I0 + blocks_per_task) of query head h in
 * sequence b, against the packed keys `kpack` of its group; its segment rows
 * go through qk ROW_CHUNK at a time, so the score buffer stays bounded
 * whatever block_q / stride is. Each block row's probabilities are summed
 * per key segment over its rows, then per key block. */
static void run_task(const xattn_plan *pl, int64_t b, int64_t h, int64_t I0,
                     const float *kpack, float *ws)
{
    const attn_block_select_problem *p = pl->p;
    const int64_t I1 = I0 + pl->blocks_per_task < p->nbq ? I0 + pl->blocks_per_task : p->nbq;
    const int64_t r0 = I0 * pl->rows_per_block;
    const int64_t r1 = I1 * pl->rows_per_block < pl->nsq ? I1 * pl->rows_per_block : pl->nsq;
    float *qrows = ws + SEG_TILE * pl->sd, *sc = qrows + ROW_CHUNK * pl->ldq;
    /* the reshaped-K scratch is free while scoring: bf16 query staging
     * (ROW_CHUNK rows of s*D halves fit in its SEG_TILE rows of floats) */
    uint16_t *stage = (uint16_t *)ws;
    float *colsum = sc + ROW_CHUNK * pl->lds;
    float *rowstat = colsum + pl->blocks_per_task * pl->lds;
    float *masses = rowstat + 3 * ROW_CHUNK;
    void *scratch = masses + round_up(p->nbk, 16);
    memset(colsum, 0, (size_t)((I1 - I0) * pl->lds) * sizeof *colsum);
    for (int64_t r = r0; r < r1; r += ROW_CHUNK)
        score_rows(pl, b, h, r, r1 - r < ROW_CHUNK ? r1 - r : ROW_CHUNK, I0, kpack, qrows, sc,
                   colsum, rowstat, stage);
    const int64_t segs_per_block = p->block_k / pl->s;
    for (int64_t I = I0; I < I1; I++) {
        const float *cs = colsum + (I - I0) * pl->lds;
        for (int64_t j = 0; j < p->nbk; j++) {
            const int64_t c1 = (j + 1) * segs_per_block < pl->nsk ? (j + 1) * segs_per_block
                                                                   : pl->nsk;
            float part = 0.0f;
            for (int64_t c = j * segs_per_block; c < c1; c++)
                part += cs[c];
            masses[j] = part;
        }
        attn_bs_write_row(p, b, h, I, masses, scratch);
    }
}

/* Reshapes and packs the keys of the wave's groups [gs, ge); every thread of
 * the team calls it. The reshaped tile is per-thread scratch (ws). */
static void pack_wave(const xattn_plan *pl, int64_t gs, int64_t ge, float *ws)
{
    const attn_block_select_problem *p = pl->p;
#ifdef HAVE_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t x = 0; x < (ge - gs) * pl->ntiles; x++) {
        const int64_t gi = gs + x / pl->ntiles, t = x % pl->ntiles;
        const int64_t b = gi / p->hkv, hk = gi % p->hkv, c0 = t * SEG_TILE;
        const int nk = (int)(pl->nsk - c0 < SEG_TILE ? pl->nsk - c0 : SEG_TILE);
        for (int c = 0; c < nk; c++) {
            if (pl->bf16)
                reshape_segment_bf16(&p->k, b, hk, c0 + c, pl->s, p->sk, p->d, 0,
                                     (uint16_t *)ws + c * pl->sd);
            else
                reshape_segment(pl->ks, &p->k, b, hk, c0 + c, pl->s, p->sk, p->d, 1.0f, 0,
                                ws + c * pl->sd);
        }
        pl->ks->pack_k(pl->panels + x * pl->ktf, ws, pl->bf16 ? ATTN_BF16 : ATTN_F32, pl->sd, 1,
                       nk, SEG_TILE, pl->sd);
    }
}

/* Tasks of the wave's groups, late query blocks of every head first: under
 * a causal mask they score the most segments, so the dynamic schedule ends
 * on light tasks. */
static void run_wave(const xattn_plan *pl, int64_t gs, int64_t ge, float *ws)
{
    const attn_block_select_problem *p = pl->p;
    const int64_t group = p->hq / p->hkv, heads = (ge - gs) * group;
#ifdef HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t x = 0; x < heads * pl->tasks_per_head; x++) {
        const int64_t head = x % heads, gi = gs + head / group;
        const int64_t b = gi / p->hkv, h = (gi % p->hkv) * group + head % group;
        const int64_t I0 = (pl->tasks_per_head - 1 - x / heads) * pl->blocks_per_task;
        run_task(pl, b, h, I0, pl->panels + (gi - gs) * pl->ntiles * pl->ktf, ws);
    }
}

/* One thread's share of every wave (the whole job without OpenMP), inside
 * the kernel set's per-thread set-up (AMX tile configuration). */
static void run_thread(const xattn_plan *pl, int64_t ngroups, int64_t wave, float *ws)
{
    if (pl->ks->thread_begin)
        pl->ks->thread_begin();
    for (int64_t gs = 0; gs < ngroups; gs += wave) {
        const int64_t ge = gs + wave < ngroups ? gs + wave : ngroups;
        pack_wave(pl, gs, ge, ws);
        run_wave(pl, gs, ge, ws);
    }
    if (pl->ks->thread_end)
        pl->ks->thread_end();
}

attn_status attn_cpu_block_select_xattn(attn_cpu_state *st, const attn_block_select_problem *p)
{
    xattn_plan pl = { 0 };
    pl.p = p;
    pl.ks = st->kernels;
    pl.s = p->stride;
    pl.sd = pl.s * p->d;
    pl.bf16 = p->q.dtype == ATTN_BF16;
    pl.ldq = round_up(pl.sd, 16);
    pl.nsq = (p->sq + pl.s - 1) / pl.s;
    pl.nsk = (p->sk + pl.s - 1) / pl.s;
    pl.lds = round_up(pl.nsk, 16);
    pl.ntiles = (pl.nsk + SEG_TILE - 1) / SEG_TILE;
    pl.ktf = round_up((int64_t)pl.ks->k_tile_floats(SEG_TILE, pl.sd), 16);
    pl.rows_per_block = p->block_q / pl.s;
    pl.blocks_per_task = (TASK_ROWS + pl.rows_per_block - 1) / pl.rows_per_block;
    if (pl.blocks_per_task > p->nbq)
        pl.blocks_per_task = p->nbq;
    pl.tasks_per_head = (p->nbq + pl.blocks_per_task - 1) / pl.blocks_per_task;
    /* reshaped K tile, q rows, scores, column sums of the task's block rows,
     * row maxima / sums / scratch, block masses, ranking scratch (4 floats a
     * block) */
    pl.ws_floats = (size_t)(SEG_TILE * pl.sd + ROW_CHUNK * (pl.ldq + pl.lds) +
                            pl.blocks_per_task * pl.lds + 3 * ROW_CHUNK +
                            round_up(p->nbk, 16) + round_up(4 * p->nbk, 16));

    /* Waves of as many groups as the panel budget holds: each wave ends on
     * a barrier and the next packs before it scores, so fewer waves keep the
     * threads busier (at S = 16384, 16 heads and 16 threads, waves sized to
     * 4 tasks a thread left them waiting on 3 barriers). */
    const int64_t ngroups = p->b * p->hkv;
    const int nt = st->num_threads < 1 ? 1 : st->num_threads;
    const size_t panel_bytes = (size_t)(pl.ntiles * pl.ktf) * sizeof(float);
    int64_t wave = (int64_t)(PANEL_BUDGET_BYTES / panel_bytes);
    wave = wave < 1 ? 1 : wave > ngroups ? ngroups : wave;

    const size_t total = (size_t)wave * panel_bytes / sizeof(float) + (size_t)nt * pl.ws_floats;
    int kept;
    float *mem = attn_cpu_scratch_acquire(&st->scratch, total * sizeof(float), &kept);
    if (!mem)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_block_select: cannot allocate %zu bytes "
                         "of workspace", total * sizeof(float));
    pl.panels = mem;
    float *thread_ws = mem + (size_t)wave * panel_bytes / sizeof(float);
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    run_thread(&pl, ngroups, wave, thread_ws + (size_t)omp_get_thread_num() * pl.ws_floats);
#else
    run_thread(&pl, ngroups, wave, thread_ws);
#endif
    attn_cpu_scratch_release(&st->scratch, mem, kept);
    return ATTN_OK;
}
