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

/* AUTO picks the recurrent form for sequences this short. */
#define LINEAR_RECURRENT_MAX_LEN 16

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
        const float inv = (float)(1.0 / sqrt(ss + 1e-6));
        for (int64_t c = 0; c < d; c++)
            dst[c] *= inv;
    }
    if (p->feature == ATTN_LINEAR_FEATURE_ELU1)
        for (int64_t c = 0; c < d; c++)
            dst[c] = dst[c] > 0.0f ? dst[c] + 1.0f : expf(dst[c]);
    else if (p->feature == ATTN_LINEAR_FEATURE_RELU)
        for (int64_t c = 0; c < d; c++)
            dst[c] = dst[c] > 0.0f ? dst[c] : 0.0f;
    if (scale != 1.0f)
        for (int64_t c = 0; c < d; c++)
            dst[c] *= scale;
}

void attn_linear_load_v(const attn_linear_task *t, int64_t i, float *dst)
{
    const attn_view *v = &t->p->v;
    load_row(dst, row_of(t, v, i), v->dtype, v->stride[3], t->p->dv);
}

static void prefetch_view(const attn_linear_task *t, const attn_view *x, int64_t i0, int64_t n,
                          int64_t cols)
{
    const int64_t bytes = cols * (int64_t)attn_dtype_size(x->dtype) *
                          (x->ndim == 4 ? x->stride[3] : 1);
    for (int64_t i = i0; i < i0 + n; i++) {
        const char *r = row_of(t, x, i);
        for (int64_t b = 0; b < bytes; b += 64)
            __builtin_prefetch(r + b);
    }
}

void attn_linear_prefetch(const attn_linear_task *t, int64_t i0, int64_t n)
{
    const attn_linear_problem *p = t->p;
    if (i0 + n > t->len)
        n = t->len - i0;
    if (n <= 0)
        return;
    prefetch_view(t, &p->q, i0, n, p->dk);
    prefetch_view(t, &p->k, i0, n, p->dk);
    prefetch_view(t, &p->v, i0, n, p->dv);
    if (p->has_g)
        prefetch_view(t, &p->g, i0, n, p->g_per_channel ? p->dk : 1);
    if (p->has_beta)
        prefetch_view(t, &p->beta, i0, n, 1);
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
        const float *f = (const float *)src;
        for (int64_t c = 0; c < n; c++)     /* NaN compares false and stays NaN */
            g[c] = f[c] < ATTN_LINEAR_G_FLOOR ? ATTN_LINEAR_G_FLOOR : f[c];
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

static void load_state(const attn_linear_problem *p, int64_t b, attn_linear_task *t)
{
    const int64_t dk = p->dk, dv = p->dv;
    if (p->has_state_in) {
        const attn_view *V = &p->state_in;
        const float *src = (const float *)V->base + b * V->stride[0] + t->h * V->stride[1];
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

static void store_state(const attn_linear_problem *p, int64_t b, const attn_linear_task *t)
{
    const int64_t dk = p->dk, dv = p->dv;
    if (p->has_state_out) {
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
    t.p = p;
    t.ks = pl->ks;
    if (p->cu) {
        t.bt = 0;
        t.t0 = p->cu[b];
        t.len = p->cu[b + 1] - p->cu[b];
    } else {
        t.bt = b;
        t.t0 = 0;
        t.len = p->s;
    }
    t.lds = pl->lds;
    t.ws = ws + pl->group * pl->state_floats;
    const int recurrent = p->algo == ATTN_LINEAR_ALGO_RECURRENT ||
        (p->algo == ATTN_LINEAR_ALGO_AUTO && t.len <= LINEAR_RECURRENT_MAX_LEN);
#define HEAD(h_) (t.h = (h_), t.S = ws + ((h_) - h0) * pl->state_floats, \
                  t.z = t.S + p->dk * pl->lds)
    for (int64_t h = h0; h < h1; h++) {
        HEAD(h);
        load_state(p, b, &t);
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
                attn_linear_chunkwise(&t, c0, c0 + p->chunk);
            }
    }
    for (int64_t h = h0; h < h1; h++) {
        HEAD(h);
        store_state(p, b, &t);
    }
#undef HEAD
}

attn_status attn_cpu_linear(attn_device *dev, const attn_linear_problem *p)
{
    attn_cpu_state *st = dev->impl;
    linear_plan pl;
    pl.p = p;
    pl.ks = kernels_for(st->kernels->isa);
    pl.lds = attn_linear_round16(p->dv);
    pl.state_floats = attn_linear_round16(p->dk * pl.lds + attn_linear_round16(p->dk));
    size_t rw = attn_linear_recurrent_ws_floats(p), cw = attn_linear_chunk_ws_floats(p);

    /* Heads per task: enough tasks for every thread, but no more states per
     * task than fit in about 1 MiB (a core's L2). */
    int nt = st->num_threads < 1 ? 1 : st->num_threads;
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
