/* The sequence-parallel chunkwise form of attn_linear, for calls with fewer
 * (sequence, head) pairs than threads.
 *
 * It serves the kinds whose chunk state update does not read the state
 * (PLAIN, DECAY, GLA; not normalize): after a segment of tokens the state is
 * diag(exp(gsum)) S_in + L, where L is the segment's own state grown from
 * zero and gsum its summed log-gates. Each pair's sequence is cut into P
 * segments of whole chunks, and three steps run over all threads:
 *   1. every segment s < P-1 computes L_s and gsum_s from zero (state only);
 *   2. per pair, a scan: S_0 = state_in, S_{s+1} = diag(exp(gsum_s)) S_s + L_s;
 *   3. every segment runs the full chunkwise form from S_s, writing its
 *      outputs; the last one's end state is state_out.
 * Step 1 repeats the state products of P-1 segments, about a third of
 * their flops: P threads on one pair finish in about 4 / (3 P) of the time. */
#include <math.h>
#include <string.h>
#include "config.h"
#include "linear.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

int64_t attn_linear_segments_for(const attn_linear_problem *p, int threads)
{
#ifndef HAVE_OPENMP
    threads = 1;                                  /* the extra state work would not pay */
#endif
    const int64_t pairs = p->num_seqs * p->h;
    if (attn_linear_is_delta(p->kind) || p->normalize || pairs < 1 || threads < 2 * pairs ||
        p->algo == ATTN_LINEAR_ALGO_RECURRENT)
        return 1;
    int64_t shortest = p->s;
    for (int64_t b = 0; p->cu && b < p->num_seqs; b++)
        if (p->cu[b + 1] - p->cu[b] < shortest)
            shortest = p->cu[b + 1] - p->cu[b];
    /* AUTO gives sequences this short the recurrent form; then keep to it. */
    if (p->algo == ATTN_LINEAR_ALGO_AUTO && shortest <= ATTN_LINEAR_RECURRENT_MAX_LEN)
        return 1;
    return threads / pairs;
}

typedef struct seg_plan {
    const attn_linear_problem *p;
    const attn_linear_kernels *ks;
    int64_t lds, P, slot;     /* slot: a state of dk x lds floats, then its gsum */
    float  *slots;            /* pair-major, P slots each */
} seg_plan;

/* Task for segment s of a pair, state in slot k of that pair; returns its
 * tokens [*a, *e). */
static void seg_task(const seg_plan *sp, int64_t pair, int64_t s, int64_t k, float *ws,
                     attn_linear_task *t, int64_t *a, int64_t *e)
{
    const attn_linear_problem *p = sp->p;
    const int64_t b = pair / p->h;
    attn_linear_task_init(t, p, sp->ks, b, sp->lds);
    t->h = pair % p->h;
    t->S = sp->slots + (pair * sp->P + k) * sp->slot;
    t->ws = ws;
    t->pf_h = t->h;
    t->pf_dc = p->chunk;
    const int64_t nch = (t->len + p->chunk - 1) / p->chunk;
    *a = nch * s / sp->P * p->chunk;
    *e = nch * (s + 1) / sp->P * p->chunk;
}

static void step_local(const seg_plan *sp, int64_t w, float *ws)
{
    const attn_linear_problem *p = sp->p;
    const int64_t pair = w / sp->P, k = w % sp->P;
    attn_linear_task t;
    int64_t a, e;
    if (k == 0) {
        seg_task(sp, pair, 0, 0, ws, &t, &a, &e);
        attn_linear_load_state(p, pair / p->h, &t);
        return;
    }
    /* Slot k holds segment k-1's own state and summed log-gates. */
    seg_task(sp, pair, k - 1, k, ws, &t, &a, &e);
    for (int64_t c = 0; c < p->dk; c++)
        memset(t.S + c * t.lds, 0, (size_t)p->dv * sizeof(float));
    t.gsum = t.S + p->dk * t.lds;
    memset(t.gsum, 0, (size_t)p->dk * sizeof(float));
    t.state_only = 1;
    attn_linear_chunkwise(&t, a, e);
}

static void step_scan(const seg_plan *sp, int64_t pair)
{
    const attn_linear_problem *p = sp->p;
    const int64_t dk = p->dk, dv = p->dv, lds = sp->lds;
    for (int64_t k = 1; k < sp->P; k++) {
        const float *prev = sp->slots + (pair * sp->P + k - 1) * sp->slot;
        float *cur = sp->slots + (pair * sp->P + k) * sp->slot;
        const float *gsum = cur + dk * lds;
        for (int64_t c = 0; c < dk; c++) {
            const float g = p->g_per_channel ? gsum[c] : gsum[0];
            sp->ks->axpy(cur + c * lds, expf(g), prev + c * lds, dv);
        }
    }
}

static void step_out(const seg_plan *sp, int64_t w, float *ws)
{
    const int64_t pair = w / sp->P, s = w % sp->P;
    attn_linear_task t;
    int64_t a, e;
    seg_task(sp, pair, s, s, ws, &t, &a, &e);
    attn_linear_chunkwise(&t, a, e);
    if (s == sp->P - 1)
        attn_linear_store_state(sp->p, pair / sp->p->h, &t);
}

attn_status attn_linear_segments(const attn_linear_problem *p, const attn_linear_kernels *ks,
                                 int64_t lds, int64_t P, int threads, attn_cpu_scratch *scratch)
{
    seg_plan sp;
    sp.p = p;
    sp.ks = ks;
    sp.lds = lds;
    sp.P = P;
    sp.slot = attn_linear_round16(p->dk * lds + attn_linear_round16(p->dk));
    const int64_t pairs = p->num_seqs * p->h, work = pairs * P;
    const int64_t ws_floats = attn_linear_round16((int64_t)attn_linear_chunk_ws_floats(p));
    const size_t bytes = ((size_t)work * (size_t)sp.slot + (size_t)threads * (size_t)ws_floats) *
                         sizeof(float);
    int kept;
    float *mem = attn_cpu_scratch_acquire(scratch, bytes, &kept);
    if (!mem)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_linear: cannot allocate %zu bytes of "
                         "workspace", bytes);
    sp.slots = mem;
    float *wss = mem + work * sp.slot;
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(threads)
    {
        float *ws = wss + (size_t)omp_get_thread_num() * (size_t)ws_floats;
#pragma omp for schedule(dynamic, 1)
        for (int64_t w = 0; w < work; w++)
            step_local(&sp, w, ws);
#pragma omp for schedule(static)
        for (int64_t pair = 0; pair < pairs; pair++)
            step_scan(&sp, pair);
#pragma omp for schedule(dynamic, 1)
        for (int64_t w = 0; w < work; w++)
            step_out(&sp, w, ws);
    }
#else
    for (int64_t w = 0; w < work; w++)
        step_local(&sp, w, wss);
    for (int64_t pair = 0; pair < pairs; pair++)
        step_scan(&sp, pair);
    for (int64_t w = 0; w < work; w++)
        step_out(&sp, w, wss);
#endif
    attn_cpu_scratch_release(scratch, mem, kept);
    return ATTN_OK;
}
