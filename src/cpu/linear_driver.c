/* The CPU attn_linear driver: one task per (sequence, head), run in
 * parallel; each task loads its state, walks its tokens with the recurrent
 * or the chunkwise form, and stores the state back. Also the token loads
 * both forms share (dtype conversion, l2 norm, feature map, scale). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "cpu_backend.h"
#include "half.h"
#include "linear.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

static inline char *at(const attn_view *v, int64_t elems)
{
    return v->base + elems * (int64_t)attn_dtype_size(v->dtype);
}

/* Address of element [bt, t0 + i, h, 0] of a 3-d or 4-d token tensor. */
static inline const char *row_of(const attn_linear_task *t, const attn_view *x, int64_t i)
{
    return at(x, t->bt * x->stride[0] + (t->t0 + i) * x->stride[1] + t->h * x->stride[2]);
}

static void load_row(float *dst, const char *src, attn_dtype dt, int64_t stride, int64_t n)
{
    if (dt == ATTN_F32 && stride == 1) {
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
    if (dt == ATTN_BF16 && stride == 1) {      /* the common bf16 layout, without the dtype switch */
        const uint16_t *h = (const uint16_t *)src;
        for (int64_t c = 0; c < n; c++)
            dst[c] = attn_bf16_to_f32(h[c]);
        return;
    }
    for (int64_t c = 0; c < n; c++)
        dst[c] = attn_load_f32(src, dt, c * stride);
}

void attn_linear_load_qk(const attn_linear_task *t, const attn_view *x, int64_t i, float *dst,
                         float scale)
{
    const attn_linear_problem *p = t->p;
    const int64_t d = p->dk;
    load_row(dst, row_of(t, x, i), x->dtype, x->stride[3], d);
    if (p->l2norm_qk) {
        double ss = 0.0;
        for (int64_t c = 0; c < d; c++)
            ss += (double)dst[c] * dst[c];
        t->ks->scal(dst, (float)(1.0 / sqrt(ss + 1e-6)), d);
    }
    if (p->feature == ATTN_LINEAR_FEATURE_ELU1)
        for (int64_t c = 0; c < d; c++)
            dst[c] = dst[c] > 0.0f ? dst[c] + 1.0f : expf(dst[c]);
    else if (p->feature == ATTN_LINEAR_FEATURE_RELU)
        for (int64_t c = 0; c < d; c++)
            dst[c] = dst[c] > 0.0f ? dst[c] : 0.0f;
    if (scale != 1.0f)
        t->ks->scal(dst, scale, d);
}

const float *attn_linear_f32_rows(const attn_linear_task *t, const attn_view *x, int64_t i,
                                  int64_t *ld)
{
    if (x->dtype != ATTN_F32 || x->stride[3] != 1)
        return NULL;
    *ld = x->stride[1];
    return (const float *)row_of(t, x, i);
}

const float *attn_linear_rows_in_place(const attn_linear_task *t, const attn_view *x, int64_t i,
                                       int64_t *ld)
{
    const attn_linear_problem *p = t->p;
    if (p->l2norm_qk || p->feature != ATTN_LINEAR_FEATURE_IDENTITY)
        return NULL;
    return attn_linear_f32_rows(t, x, i, ld);
}

void attn_linear_load_v(const attn_linear_task *t, int64_t i, float *dst)
{
    const attn_view *v = &t->p->v;
    load_row(dst, row_of(t, v, i), v->dtype, v->stride[3], t->p->dv);
}

static void pf_add(attn_linear_pf *pf, const attn_linear_task *t, const attn_view *x, int64_t h,
                   int64_t i0, int64_t cols, int hint)
{
    const int64_t es = (int64_t)attn_dtype_size(x->dtype);
    const int v = pf->nviews++;
    pf->base[v] = at(x, t->bt * x->stride[0] + (t->t0 + i0) * x->stride[1] + h * x->stride[2]);
    pf->stride[v] = x->stride[1] * es;
    pf->bytes[v] = cols * es * (x->ndim == 4 ? x->stride[3] : 1);
    pf->hint[v] = hint;
}

/* Addresses whose 4 KiB pages share one 64-byte line of 8-byte page-table
 * entries: 8 pages. */
#define PTE_SPAN ((int64_t)8 << 12)

void attn_linear_pf_init(attn_linear_pf *pf, const attn_linear_task *t, int64_t h, int64_t i0,
                         int64_t n)
{
    const attn_linear_problem *p = t->p;
    memset(pf, 0, sizeof *pf);
    if (i0 + n > t->len)
        n = t->len - i0;
    if (n <= 0)
        return;
    pf->rows = n;
    /* The next chunk of this same head (one head per thread) is rows that
     * are each a lone short run, none beside the current work's: sent to L2
     * only, they measured 2-5% faster per thread. The next head of a group
     * (rows beside the current ones) goes to L1: 1-3% faster than to L2. */
    const int hint = h == t->h;
    pf_add(pf, t, &p->q, h, i0, p->dk, hint);
    pf_add(pf, t, &p->k, h, i0, p->dk, hint);
    pf_add(pf, t, &p->v, h, i0, p->dv, hint);
    if (p->has_g)
        pf_add(pf, t, &p->g, h, i0, p->g_per_channel ? p->dk : 1, hint);
    if (p->has_beta)
        pf_add(pf, t, &p->beta, h, i0, 1, hint);
    /* The output last: a streamed one only takes part in the walk list. */
    pf_add(pf, t, &p->out, h, i0, p->dv, 2);
    /* The walk list: the first line of every row, the rows that open a
     * PTE_SPAN of their view first. A lone head's next chunk: with 4 KiB
     * pages each of its rows is its own page, and the address translations
     * (page walks, two-level under a hypervisor) are what the list is for:
     * spread over the GEMMs one walk at a time, each stalled them (13% slower
     * per thread). A walk's cost is the line of page-table entries it reads,
     * one line per PTE_SPAN of addresses: the walks that open a span fetch
     * their lines in parallel, and the walks of the other rows then find
     * theirs in cache, where rows of one span in a row queued behind the
     * first one's fetch. A streamed output's rows are not in the line stream
     * (their stores skip the caches), but their walks are the same: in the
     * list, not inside the products (left to the stores: 3-4% slower). One
     * head per thread at H = 16 (8 KiB token stride), one thread, the list
     * in one burst: 7-10% faster than every row in row order with the
     * machine otherwise idle, 6-8% with the other core busy (where a burst of
     * only the span-opening rows, the others walked inside the GEMMs, was
     * 5-10% faster idle but 10-15% slower busy). A group's next head shares
     * its pages with the current one; its rows' first lines still go to
     * memory together rather than one by one behind the tiles' prefetches.
     * The list goes out before the products: with per-channel gates a few
     * walks with each row of gate_load, a pass that waits on L2 (the gates
     * and queries it reads in place), so that the walks run beside its
     * waits (1-3% less CPU time per call than one burst after it, the two
     * alternated in one process; groups of 4 walks between GEMM tiles after
     * a burst of the span-opening rows were 5-10% slower); otherwise in one
     * burst. */
    int64_t spans = 1;
    for (int v = 0; v < pf->nviews; v++) {
        pf->step[v] = pf->stride[v] >= PTE_SPAN ? 1 : PTE_SPAN / (pf->stride[v] | 1);
        spans = pf->step[v] > spans ? pf->step[v] : spans;
    }
    pf->wphases = spans < n ? spans : n;
    pf->wviews = pf->nviews;
    if (attn_linear_streams_out(p))
        pf->nviews--;
    attn_linear_pf_seek(pf);
}

int attn_linear_load_g(const attn_linear_task *t, int64_t i, float *g)
{
    const attn_linear_problem *p = t->p;
    if (p->decay) {
        const float lg = logf(p->decay[t->h]);
        g[0] = lg > ATTN_LINEAR_G_FLOOR ? lg : ATTN_LINEAR_G_FLOOR;
        return 1;
    }
    if (!p->has_g)
        return 0;
    const attn_view *G = &p->g;
    const char *src = row_of(t, G, i);
    const int64_t n = p->g_per_channel ? p->dk : 1;
    const int64_t st = p->g_per_channel ? G->stride[3] : 1;
    if (G->dtype == ATTN_F32 && st == 1) {
        t->ks->max_floor(g, (const float *)src, ATTN_LINEAR_G_FLOOR, n);
        return 1;
    }
    for (int64_t c = 0; c < n; c++) {
        const float x = attn_load_f32(src, G->dtype, c * st);
        g[c] = x < ATTN_LINEAR_G_FLOOR ? ATTN_LINEAR_G_FLOOR : x;
    }
    return 1;
}

float attn_linear_load_beta(const attn_linear_task *t, int64_t i)
{
    const attn_view *b = &t->p->beta;
    return attn_load_f32(row_of(t, b, i), b->dtype, 0);
}

void attn_linear_store_o(const attn_linear_task *t, int64_t i, const float *o)
{
    const attn_view *O = &t->p->out;
    char *dst = (char *)row_of(t, O, i);
    const int64_t st = O->stride[3], n = t->p->dv;
    switch (O->dtype) {
    case ATTN_F16:
        for (int64_t c = 0; c < n; c++) ((uint16_t *)dst)[c * st] = attn_f32_to_f16(o[c]);
        break;
    case ATTN_BF16:
        for (int64_t c = 0; c < n; c++) ((uint16_t *)dst)[c * st] = attn_f32_to_bf16(o[c]);
        break;
    default:
        if (st == 1)
            memcpy(dst, o, (size_t)n * sizeof *o);
        else
            for (int64_t c = 0; c < n; c++) ((float *)dst)[c * st] = o[c];
        break;
    }
}

/* A large f32 output with contiguous rows is written once, never read by
 * the call: streaming stores skip the read-for-ownership of every line (one
 * transfer in six per GLA token) and leave the inputs in cache. Outputs
 * smaller than this may still be in cache for the caller's next op. */
#define STREAM_OUT_MIN_BYTES ((int64_t)8 << 20)

int attn_linear_streams_out(const attn_linear_problem *p)
{
    const attn_view *O = &p->out;
    return O->dtype == ATTN_F32 && O->stride[3] == 1 &&
           p->num_seqs * p->s * p->h * p->dv * (int64_t)sizeof(float) >= STREAM_OUT_MIN_BYTES;
}

float *attn_linear_out_rows_streamed(const attn_linear_task *t, int64_t i0, int64_t *ld)
{
    const attn_view *O = &t->p->out;
    float *o = (float *)row_of(t, O, i0);
    if (!attn_linear_streams_out(t->p) || t->p->dv % 16 || O->stride[1] % 16 ||
        (uintptr_t)o % 64)
        return NULL;
    *ld = O->stride[1];
    return o;
}

void attn_linear_store_o_rows(const attn_linear_task *t, int64_t i0, int n, const float *o,
                              int64_t lo)
{
    const attn_view *O = &t->p->out;
    if (attn_linear_streams_out(t->p)) {
        t->ks->stream_rows((float *)row_of(t, O, i0), O->stride[1], o, lo, n, t->p->dv);
        return;
    }
    for (int r = 0; r < n; r++)
        attn_linear_store_o(t, i0 + r, o + r * lo);
}

static const attn_linear_kernels *kernels_for(attn_isa isa)
{
    const attn_linear_kernels *k = NULL;
    switch (isa) {
#ifdef HAVE_AVX512_KERNELS
    case ATTN_ISA_AVX512: k = attn_linear_kernels_avx512(); break;
#endif
#ifdef HAVE_AVX2_KERNELS
    case ATTN_ISA_AVX2:   k = attn_linear_kernels_avx2(); break;
#endif
#ifdef HAVE_NEON_KERNELS
    case ATTN_ISA_NEON:   k = attn_linear_kernels_neon(); break;
#endif
    default: break;
    }
    return k ? k : &attn_linear_kernels_scalar;
}

typedef struct linear_plan {
    const attn_linear_problem *p;
    const attn_linear_kernels *ks;
    int64_t lds, ws_floats, state_floats;
    int64_t group, ngroups;   /* heads per task, tasks per sequence */
} linear_plan;

void attn_linear_load_state(const attn_linear_problem *p, int64_t b, attn_linear_task *t)
{
    const int64_t dk = p->dk, dv = p->dv;
    if (p->has_state_in) {
        const attn_view *V = &p->state_in;
        const float *src = (const float *)V->base + b * V->stride[0] + t->h * V->stride[1];
        if (src == t->S && V->stride[2] == t->lds && V->stride[3] == 1)
            ;                                   /* in place: state_in is state_out */
        else if (V->stride[3] == 1)
            for (int64_t c = 0; c < dk; c++)
                memcpy(t->S + c * t->lds, src + c * V->stride[2], (size_t)dv * sizeof(float));
        else
            for (int64_t c = 0; c < dk; c++)
                for (int64_t j = 0; j < dv; j++)
                    t->S[c * t->lds + j] = src[c * V->stride[2] + j * V->stride[3]];
    } else {
        for (int64_t c = 0; c < dk; c++)
            memset(t->S + c * t->lds, 0, (size_t)dv * sizeof(float));
    }
    if (p->normalize) {
        const attn_view *Z = &p->z_in;
        for (int64_t c = 0; c < dk; c++)
            t->z[c] = p->has_z_in ? ((const float *)Z->base)[b * Z->stride[0] + t->h * Z->stride[1] +
                                                              c * Z->stride[2]] : 0.0f;
    }
}

void attn_linear_store_state(const attn_linear_problem *p, int64_t b, const attn_linear_task *t)
{
    const int64_t dk = p->dk, dv = p->dv;
    if (p->has_state_out && !t->direct) {
        const attn_view *V = &p->state_out;
        float *dst = (float *)V->base + b * V->stride[0] + t->h * V->stride[1];
        for (int64_t c = 0; c < dk; c++)
            for (int64_t j = 0; j < dv; j++)
                dst[c * V->stride[2] + j * V->stride[3]] = t->S[c * t->lds + j];
    }
    if (p->has_z_out) {
        const attn_view *Z = &p->z_out;
        for (int64_t c = 0; c < dk; c++)
            ((float *)Z->base)[b * Z->stride[0] + t->h * Z->stride[1] + c * Z->stride[2]] = t->z[c];
    }
}

void attn_linear_task_init(attn_linear_task *t, const attn_linear_problem *p,
                           const attn_linear_kernels *ks, int64_t b, int64_t lds)
{
    memset(t, 0, sizeof *t);
    t->p = p;
    t->ks = ks;
    if (p->cu) {
        t->t0 = p->cu[b];
        t->len = p->cu[b + 1] - p->cu[b];
    } else {
        t->bt = b;
        t->len = p->s;
    }
    t->lds = lds;
}

/* One task: a group of heads of one sequence. The chunkwise form walks the
 * chunks in the outer loop and the heads in the inner one, so the token rows
 * it reads (all heads of a token are adjacent in [B,S,H,D]) stream through
 * the cache together; each head keeps its own state in the workspace. */
static void run_task(const linear_plan *pl, int64_t task, float *ws)
{
    const attn_linear_problem *p = pl->p;
    const int64_t b = task / pl->ngroups, h0 = (task % pl->ngroups) * pl->group;
    const int64_t h1 = h0 + pl->group < p->h ? h0 + pl->group : p->h;
    attn_linear_task t;
    attn_linear_task_init(&t, p, pl->ks, b, pl->lds);
    t.ws = ws + pl->group * pl->state_floats;
    const int recurrent = p->algo == ATTN_LINEAR_ALGO_RECURRENT ||
        (p->algo == ATTN_LINEAR_ALGO_AUTO && t.len <= ATTN_LINEAR_RECURRENT_MAX_LEN);
    /* The state lives in state_out itself when its rows are contiguous:
     * a decode step then reads and writes it once, with no copies. */
    const attn_view *SO = &p->state_out;
    t.direct = p->has_state_out && SO->stride[3] == 1 && (p->dk == 1 || SO->stride[2] >= p->dv);
    if (t.direct)
        t.lds = SO->stride[2];
#define HEAD(h_) (t.h = (h_), t.z = ws + ((h_) - h0) * pl->state_floats + p->dk * pl->lds, \
                  t.S = t.direct ? (float *)SO->base + b * SO->stride[0] + (h_) * SO->stride[1] \
                                 : t.z - p->dk * pl->lds)
    for (int64_t h = h0; h < h1; h++) {
        HEAD(h);
        attn_linear_load_state(p, b, &t);
    }
    if (t.len > 0 && recurrent) {
        for (int64_t h = h0; h < h1; h++) {
            HEAD(h);
            attn_linear_recurrent(&t);
        }
    } else if (t.len > 0) {
        for (int64_t c0 = 0; c0 < t.len; c0 += p->chunk)
            for (int64_t h = h0; h < h1; h++) {
                HEAD(h);
                t.pf_h = h + 1 < h1 ? h + 1 : h0;
                t.pf_dc = h + 1 < h1 ? 0 : p->chunk;
                attn_linear_chunkwise(&t, c0, c0 + p->chunk);
            }
    }
    for (int64_t h = h0; h < h1; h++) {
        HEAD(h);
        attn_linear_store_state(p, b, &t);
    }
#undef HEAD
}

attn_status attn_cpu_linear(attn_device *dev, const attn_linear_problem *p)
{
    if (p->num_seqs < 1 || p->h < 1)
        return ATTN_OK;                           /* no (sequence, head) pair: nothing to do */
    attn_cpu_state *st = dev->impl;
    linear_plan pl;
    pl.p = p;
    pl.ks = kernels_for(st->kernels->isa);
    pl.lds = attn_linear_ld(p->dv);
    pl.state_floats = attn_linear_round16(p->dk * pl.lds + attn_linear_round16(p->dk));
    size_t rw = attn_linear_recurrent_ws_floats(p), cw = attn_linear_chunk_ws_floats(p);

    /* Heads per task: enough tasks for every thread, but no more states per
     * task than fit in about 1 MiB (a core's L2). */
    int nt = st->num_threads < 1 ? 1 : st->num_threads;
    const int64_t segments = attn_linear_segments_for(p, nt);
    if (segments > 1)
        return attn_linear_segments(p, pl.ks, pl.lds, segments, nt, &st->scratch);
    int64_t per_seq = (nt + p->num_seqs - 1) / p->num_seqs;
    if (per_seq > p->h) per_seq = p->h;
    int64_t group = (p->h + per_seq - 1) / per_seq;
    int64_t cap = (int64_t)(1 << 20) / (pl.state_floats * (int64_t)sizeof(float));
    if (cap < 1) cap = 1;
    if (group > cap) group = cap;
    pl.group = group;
    pl.ngroups = (p->h + group - 1) / group;
    pl.ws_floats = attn_linear_round16(group * pl.state_floats + (int64_t)(rw > cw ? rw : cw));

    const int64_t ntasks = p->num_seqs * pl.ngroups;
    if (ntasks == 0)
        return ATTN_OK;
    if (nt > ntasks)
        nt = (int)ntasks;
    /* All workspace up front: a failed allocation leaves every output untouched. */
    const size_t bytes = (size_t)nt * (size_t)pl.ws_floats * sizeof(float);
    int kept;
    float *ws = attn_cpu_scratch_acquire(&st->scratch, bytes, &kept);
    if (!ws)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_linear: cannot allocate %zu bytes of "
                         "workspace", bytes);
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
        float *mine = ws + (size_t)omp_get_thread_num() * (size_t)pl.ws_floats;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntasks; t++)
            run_task(&pl, t, mine);
    }
#else
    for (int64_t t = 0; t < ntasks; t++)
        run_task(&pl, t, ws);
#endif
    attn_cpu_scratch_release(&st->scratch, ws, kept);
    return ATTN_OK;
}
