/* XAttention block scoring on the CPU.
 *
 * With stride s, the antidiagonal sum of an s x s cell (r, c) is one dot
 * product of length s*D between a reshaped query row (rows r*s+s-1 down to
 * r*s, concatenated) and a reshaped key row (keys c*s .. c*s+s-1,
 * concatenated): the scores are a GEMM of ceil(Sq/s) x ceil(Sk/s) x s*D, 1/s
 * of the QK^T work of dense attention. It runs on the kernel set's qk over
 * K tiles packed with its pack_k, so every ISA's micro-kernel is reused.
 *
 * Work per (sequence, KV head) group: reshape its keys (f32, 1/s of a K
 * tile's worth of memory per key), pack them into tiles of SEG_TILE
 * segments, then one task per (query head of the group, query block): score
 * the block's segment rows against the allowed segments only, softmax each
 * row, sum the probabilities into key blocks and apply the threshold rule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "block_select.h"
#include "half.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

#define SEG_TILE 64   /* key segments per packed tile (4 AVX-512 vectors) */

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

typedef struct xattn_plan {
    const attn_block_select_problem *p;
    const attn_cpu_kernels *ks;
    int64_t s, sd, ldq, lds;      /* stride, s*D, leading dims (multiples of 16) */
    int64_t nsq, nsk, ntiles;     /* segments of q, of k; packed tiles */
    int64_t ktf;                  /* floats per packed tile (16-aligned) */
    int64_t rows_per_block;       /* block_q / s */
    float  *kre, *kpack;          /* reshaped and packed keys of the current group */
    size_t  ws_floats;            /* per-thread workspace */
} xattn_plan;

/* Reshaped row of segment `seg` of one head of x [B,S,H,D] into dst (s*D
 * floats, times `scale`): rows seg*s+t for t < s, or with `reverse` rows
 * seg*s+s-1-t; rows past `len` are zeros. */
static void reshape_segment(const attn_view *x, int64_t b, int64_t h, int64_t seg, int64_t s,
                            int64_t len, int64_t d, float scale, int reverse, float *dst)
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
        for (int64_t c = 0; c < d; c++)
            o[c] = scale * attn_load_f32(src, x->dtype, c * x->stride[3]);
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

/* One task: block row I of query head h in sequence b. */
static void run_task(const xattn_plan *pl, int64_t b, int64_t h, int64_t I, float *ws)
{
    const attn_block_select_problem *p = pl->p;
    const attn_cpu_kernels *ks = pl->ks;
    const int64_t r0 = I * pl->rows_per_block;
    const int64_t nr = (r0 + pl->rows_per_block < pl->nsq ? pl->rows_per_block : pl->nsq - r0);
    float *qrows = ws, *sc = qrows + pl->rows_per_block * pl->ldq;
    float *mass = sc + pl->rows_per_block * pl->lds, *scratch = mass + p->nbk;

    int64_t diag;
    const int64_t allowed = attn_bs_allowed(p, I, &diag);
    for (int64_t j = 0; j < p->nbk; j++)
        mass[j] = 0.0f;
    const int64_t cmax = allowed ? segment_limit(pl, r0 + nr - 1, allowed) : 0;
    if (cmax > 0) {
        /* x = scale * a / s folded into the query rows */
        const float qscale = p->scale / (float)pl->s;
        for (int64_t r = 0; r < nr; r++) {
            float *row = qrows + r * pl->ldq;
            reshape_segment(&p->q, b, h, r0 + r, pl->s, p->sq, p->d, qscale, 1, row);
            memset(row + pl->sd, 0, (size_t)(pl->ldq - pl->sd) * sizeof *row);
        }
        /* whole tiles: a packed tile's layout depends on the key count it was packed with */
        for (int64_t t = 0; t * SEG_TILE < cmax; t++) {
            const int64_t c0 = t * SEG_TILE;
            const int nk = (int)(pl->nsk - c0 < SEG_TILE ? pl->nsk - c0 : SEG_TILE);
            ks->qk(qrows, pl->ldq, (int)nr, pl->kpack + t * pl->ktf, nk, pl->sd, sc + c0,
                   pl->lds);
        }
    }
    const int64_t segs_per_block = p->block_k / pl->s;
    for (int64_t r = 0; r < nr; r++) {
        const int64_t lim = allowed ? segment_limit(pl, r0 + r, allowed) : 0;
        if (lim == 0)
            continue;
        float *row = sc + r * pl->lds;
        float mx = row[0];
        for (int64_t c = 1; c < lim; c++)
            mx = row[c] > mx ? row[c] : mx;
        for (int64_t c = 0; c < lim; c++)
            row[c] -= mx;
        ks->vexp(row, lim);
        float sum = 0.0f;
        for (int64_t c = 0; c < lim; c++)
            sum += row[c];
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j * segs_per_block < lim; j++) {
            const int64_t c1 = (j + 1) * segs_per_block < lim ? (j + 1) * segs_per_block : lim;
            float part = 0.0f;
            for (int64_t c = j * segs_per_block; c < c1; c++)
                part += row[c];
            mass[j] += part * inv;
        }
    }
    attn_bs_write_row(p, b, h, I, mass, scratch);
}

/* Reshapes and packs the keys of group gi; every thread of the team calls it. */
static void prepare_group(const xattn_plan *pl, int64_t gi)
{
    const attn_block_select_problem *p = pl->p;
    const int64_t b = gi / p->hkv, hk = gi % p->hkv;
#ifdef HAVE_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t c = 0; c < pl->nsk; c++)
        reshape_segment(&p->k, b, hk, c, pl->s, p->sk, p->d, 1.0f, 0, pl->kre + c * pl->sd);
#ifdef HAVE_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t t = 0; t < pl->ntiles; t++) {
        const int64_t c0 = t * SEG_TILE;
        const int nk = (int)(pl->nsk - c0 < SEG_TILE ? pl->nsk - c0 : SEG_TILE);
        pl->ks->pack_k(pl->kpack + t * pl->ktf, pl->kre + c0 * pl->sd, ATTN_F32, pl->sd, 1,
                       nk, SEG_TILE, pl->sd);
    }
}

/* Tasks of group gi, late query blocks first: under a causal mask they score
 * the most segments, so the dynamic schedule ends on light tasks. */
static void run_group(const xattn_plan *pl, int64_t gi, float *ws)
{
    const attn_block_select_problem *p = pl->p;
    const int64_t group = p->hq / p->hkv, ntasks = group * p->nbq;
    const int64_t b = gi / p->hkv, h0 = (gi % p->hkv) * group;
#ifdef HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t x = 0; x < ntasks; x++)
        run_task(pl, b, h0 + x % group, p->nbq - 1 - x / group, ws);
}

attn_status attn_cpu_block_select_xattn(const attn_cpu_state *st,
                                        const attn_block_select_problem *p)
{
    xattn_plan pl = { 0 };
    pl.p = p;
    pl.ks = st->kernels;
    pl.s = p->stride;
    pl.sd = pl.s * p->d;
    pl.ldq = round_up(pl.sd, 16);
    pl.nsq = (p->sq + pl.s - 1) / pl.s;
    pl.nsk = (p->sk + pl.s - 1) / pl.s;
    pl.lds = round_up(pl.nsk, 16);
    pl.ntiles = (pl.nsk + SEG_TILE - 1) / SEG_TILE;
    pl.ktf = round_up((int64_t)pl.ks->k_tile_floats(SEG_TILE, pl.sd), 16);
    pl.rows_per_block = p->block_q / pl.s;
    /* q rows, scores, block masses, ranking scratch (2 floats a block) */
    pl.ws_floats = (size_t)round_up(pl.rows_per_block * (pl.ldq + pl.lds) + 3 * p->nbk, 16);

    const int64_t ngroups = p->b * p->hkv;
    int nt = st->num_threads < 1 ? 1 : st->num_threads;
    const size_t shared = (size_t)round_up(pl.nsk * pl.sd + pl.ntiles * pl.ktf, 16);
    const size_t total = shared + (size_t)nt * pl.ws_floats;
    float *mem = aligned_alloc(64, round_up((int64_t)(total * sizeof(float)), 64));
    if (!mem)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_block_select: cannot allocate %zu bytes "
                         "of workspace", total * sizeof(float));
    pl.kpack = mem;
    pl.kre = mem + pl.ntiles * pl.ktf;
    float *thread_ws = mem + shared;
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
        float *ws = thread_ws + (size_t)omp_get_thread_num() * pl.ws_floats;
        for (int64_t gi = 0; gi < ngroups; gi++) {
            prepare_group(&pl, gi);
            run_group(&pl, gi, ws);
        }
    }
#else
    for (int64_t gi = 0; gi < ngroups; gi++) {
        prepare_group(&pl, gi);
        run_group(&pl, gi, thread_ws);
    }
#endif
    free(mem);
    return ATTN_OK;
}
