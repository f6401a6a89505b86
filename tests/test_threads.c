/*
 * libattn: concurrent attn_sdpa / attn_merge calls on one shared context.
 *
 * A set of jobs (different shapes, dtypes, GQA ratios, masks, gates, varlen,
 * causal/window/soft-cap/ALiBi/sink/sigmoid, with and without lse) is built
 * once, and every job is run serially to record its result: output bytes,
 * lse bytes, status, and attn_last_error(). About one job in six is invalid
 * (bad window, wrong ndim, mixed dtypes, out aliasing q, NaN scale, num_seqs
 * 0 ...) so that failing and succeeding calls interleave.
 *
 * Then NTHREADS pthreads share the context and the (read-only) inputs, each
 * running every job many times in its own order into its own output memory,
 * and check each call against the serial record:
 *   - valid calls: status OK, attn_last_error() == "", out and lse bitwise
 *     equal to the serial run (same inputs, same context);
 *   - invalid calls: the same status and exactly the same message — another
 *     thread's concurrent failure or success must not leak into this
 *     thread's attn_last_error() — and the output memory untouched.
 *
 * Build by hand:
 *   gcc -O1 -g -fsanitize=address,undefined -fopenmp -pthread -Iinclude \
 *       src/[a-z]*.c src/cpu/[a-z]*.c tests/test_threads.c -lm -o /tmp/tt && /tmp/tt
 * (or -fsanitize=thread instead). ATTN_TEST_QUICK=1 runs fewer iterations.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"

#define NTHREADS 6
#define NJOBS 36
#define POISON 0xC3

static attn_context *g_ctx;
static int g_iters = 24;

typedef struct job {
    int id;
    int is_merge;
    attn_sdpa_params p;
    attn_tensor q, k, v, out, lse, mask, gate;
    int has_lse;
    void *qd, *kd, *vd, *md, *gd;
    size_t out_bytes, lse_bytes;
    int32_t cu_q[5], cu_k[5];
    float slopes[16], sinks[16];
    int out_aliases_q;      /* invalid job whose out points at q */
    /* merge job */
    attn_tensor parts[3], plses[3];
    void *partd[3], *plsed[3];
    int nparts;
    /* serial record */
    attn_status want;
    char want_msg[512];
    unsigned char *ref_out, *ref_lse;
    char desc[160];
} job;

static job g_jobs[NJOBS];

/* ---- deterministic random data ------------------------------------------------ */

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}

static float rndf(uint64_t *s) { return (float)(rnd(s) & 0xffff) / 32768.0f - 1.0f; }

static uint16_t f32_to_bf16_trunc(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16);
}

/* An f16 bit pattern of a modest value: |x| in [2^-6, 2), random sign. */
static uint16_t rnd_f16(uint64_t *s)
{
    uint32_t r = rnd(s);
    uint16_t sign = (uint16_t)((r & 1) << 15);
    uint16_t exp = (uint16_t)(9 + (r >> 1) % 7);        /* 9..15 -> 2^-6 .. 2^0 */
    uint16_t man = (uint16_t)((r >> 4) & 0x3ff);
    return (uint16_t)(sign | exp << 10 | man);
}

static void *rnd_tensor(attn_tensor *t, void *data_unused, attn_dtype dt, int ndim,
                        const int64_t *shape, uint64_t *s)
{
    (void)data_unused;
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        n *= shape[i];
    }
    size_t es = attn_dtype_size(dt);
    unsigned char *d = malloc((size_t)(n > 0 ? n : 1) * es);
    for (int64_t i = 0; i < n; i++) {
        if (dt == ATTN_F32) {
            float x = rndf(s);
            memcpy(d + i * 4, &x, 4);
        } else if (dt == ATTN_F16) {
            uint16_t h = rnd_f16(s);
            memcpy(d + i * 2, &h, 2);
        } else if (dt == ATTN_BF16) {
            uint16_t h = f32_to_bf16_trunc(rndf(s));
            memcpy(d + i * 2, &h, 2);
        } else {
            d[i] = (unsigned char)(rnd(s) % 4 != 0);
        }
    }
    t->data = d;
    return d;
}

static size_t tensor_bytes(const attn_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return (size_t)n * attn_dtype_size(t->dtype);
}

/* ---- job construction -------------------------------------------------------------- */

static void build_sdpa_job(job *j, int i, uint64_t *s)
{
    static const int64_t dims[] = { 8, 16, 32, 40, 64 };
    const attn_dtype dts[] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    attn_dtype dt = dts[i % 3], odt = dts[(i / 3) % 3];
    int varlen = i % 9 == 4;
    int64_t B = varlen ? 1 : 1 + rnd(s) % 2;
    int64_t Hkv = 1 + rnd(s) % 2, Hq = Hkv * (1 + rnd(s) % 3);
    int64_t D = dims[rnd(s) % 5], Dv = (i % 4 == 1) ? 8 : D;
    int64_t Sq = 1 + rnd(s) % 17, Sk = 1 + rnd(s) % 21;
    int64_t mq = Sq, mk = Sk, nseq = B;
    attn_sdpa_params def = ATTN_SDPA_PARAMS_INIT;
    j->p = def;
    if (varlen) {
        nseq = 3;
        j->cu_q[0] = j->cu_k[0] = 0;
        mq = mk = 0;
        for (int t = 1; t <= 3; t++) {
            int32_t lq = (int32_t)(rnd(s) % 7), lk = (int32_t)(rnd(s) % 9);
            j->cu_q[t] = j->cu_q[t - 1] + lq;
            j->cu_k[t] = j->cu_k[t - 1] + lk;
            if (lq > mq) mq = lq;
            if (lk > mk) mk = lk;
        }
        Sq = j->cu_q[3];
        Sk = j->cu_k[3];
        j->p.cu_seqlens_q = j->cu_q;
        j->p.cu_seqlens_k = j->cu_k;
        j->p.num_seqs = 3;
    }
    int64_t qs[4] = { B, Sq, Hq, D }, ks[4] = { B, Sk, Hkv, D }, vs[4] = { B, Sk, Hkv, Dv };
    j->qd = rnd_tensor(&j->q, NULL, dt, 4, qs, s);
    j->kd = rnd_tensor(&j->k, NULL, dt, 4, ks, s);
    j->vd = rnd_tensor(&j->v, NULL, dt, 4, vs, s);
    memset(&j->out, 0, sizeof j->out);
    j->out.dtype = odt;
    j->out.ndim = 4;
    j->out.shape[0] = B; j->out.shape[1] = Sq; j->out.shape[2] = Hq; j->out.shape[3] = Dv;
    j->out_bytes = tensor_bytes(&j->out);

    int sigmoid = i % 8 == 5;
    if (sigmoid) {
        j->p.score = ATTN_SCORE_SIGMOID;
        j->p.sigmoid_bias = -1.0f;
    }
    j->p.causal = i & 1;
    if (i % 4 == 2) { j->p.window_left = 3; j->p.window_right = 1; }
    if (i % 10 == 7) j->p.sink_tokens = 2;
    if (i % 5 == 0) j->p.softcap = 4.0f;
    if (i % 7 == 2) j->p.scale = 0.3f;
    for (int h = 0; h < 16; h++) {
        j->slopes[h] = 0.05f * (float)(h + 1);
        j->sinks[h] = 0.25f * (float)h - 1.0f;
    }
    if (i % 6 == 1) j->p.alibi_slopes = j->slopes;
    if (!sigmoid && i % 7 == 3) j->p.sink_logits = j->sinks;
    if (i % 4 == 3) {
        int64_t ms[4] = { (i % 8 == 3) ? nseq : 1, (i % 8 == 3) ? Hq : 1, mq, mk };
        j->md = rnd_tensor(&j->mask, NULL, (i % 12 == 3) ? ATTN_U8 : ATTN_F32, 4, ms, s);
        j->p.mask = &j->mask;
    }
    if (i % 5 == 2) {
        int64_t gs[4] = { B, Sq, Hq, Dv };
        j->gd = rnd_tensor(&j->gate, NULL, dts[(i / 5) % 3], 4, gs, s);
        j->p.gate = &j->gate;
    }
    j->has_lse = !sigmoid && i % 2 == 0;
    if (j->has_lse) {
        memset(&j->lse, 0, sizeof j->lse);
        j->lse.dtype = ATTN_F32;
        j->lse.ndim = 3;
        j->lse.shape[0] = B; j->lse.shape[1] = Hq; j->lse.shape[2] = Sq;
        j->lse_bytes = tensor_bytes(&j->lse);
    }
    snprintf(j->desc, sizeof j->desc,
             "job %d: dt %d out %d B %lld Sq %lld Sk %lld Hq %lld Hkv %lld D %lld Dv %lld%s%s%s%s",
             i, (int)dt, (int)odt, (long long)B, (long long)Sq, (long long)Sk, (long long)Hq,
             (long long)Hkv, (long long)D, (long long)Dv, varlen ? " varlen" : "",
             sigmoid ? " sigmoid" : "", j->p.mask ? " mask" : "", j->p.gate ? " gate" : "");

    /* every sixth job is invalid in one way */
    if (i % 6 == 5) {
        switch ((i / 6) % 6) {
        case 0: j->p.window_left = -5; strcat(j->desc, " INVALID window_left"); break;
        case 1: j->q.ndim = 3; strcat(j->desc, " INVALID q.ndim"); break;
        case 2: j->k.dtype = dt == ATTN_F32 ? ATTN_F16 : ATTN_F32;
                strcat(j->desc, " INVALID k dtype"); break;
        case 3: j->out_aliases_q = 1; j->out.dtype = dt;
                j->out.shape[3] = D; j->v.shape[3] = D;   /* same extent as q */
                free(j->vd);
                j->vd = rnd_tensor(&j->v, NULL, dt, 4, (int64_t[4]){ B, Sk, Hkv, D }, s);
                j->out_bytes = tensor_bytes(&j->out);
                strcat(j->desc, " INVALID out aliases q"); break;
        case 4: j->p.scale = NAN; strcat(j->desc, " INVALID scale NaN"); break;
        default:
            j->p.softcap = -1.0f; strcat(j->desc, " INVALID softcap"); break;
        }
    }
}

static void build_merge_job(job *j, int i, uint64_t *s)
{
    j->is_merge = 1;
    const attn_dtype dts[] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    int64_t B = 1 + rnd(s) % 2, S = 1 + rnd(s) % 9, H = 1 + rnd(s) % 4, Dv = 8 + 8 * (rnd(s) % 3);
    j->nparts = 2 + (int)(rnd(s) % 2);
    for (int p = 0; p < j->nparts; p++) {
        int64_t os[4] = { B, S, H, Dv }, ls[3] = { B, H, S };
        j->partd[p] = rnd_tensor(&j->parts[p], NULL, dts[(i + p) % 3], 4, os, s);
        j->plsed[p] = rnd_tensor(&j->plses[p], NULL, ATTN_F32, 3, ls, s);
    }
    memset(&j->out, 0, sizeof j->out);
    j->out.dtype = dts[i % 3];
    j->out.ndim = 4;
    j->out.shape[0] = B; j->out.shape[1] = S; j->out.shape[2] = H; j->out.shape[3] = Dv;
    j->out_bytes = tensor_bytes(&j->out);
    j->has_lse = 1;
    memset(&j->lse, 0, sizeof j->lse);
    j->lse.dtype = ATTN_F32;
    j->lse.ndim = 3;
    j->lse.shape[0] = B; j->lse.shape[1] = H; j->lse.shape[2] = S;
    j->lse_bytes = tensor_bytes(&j->lse);
    if (i % 2)
        j->plses[1].dtype = ATTN_F16;    /* invalid: lse parts must be f32 */
    snprintf(j->desc, sizeof j->desc, "job %d: merge of %d parts B %lld S %lld H %lld Dv %lld%s",
             i, j->nparts, (long long)B, (long long)S, (long long)H, (long long)Dv,
             i % 2 ? " INVALID lses[1] dtype" : "");
}

/* Runs job j into out_mem / lse_mem (poisoned by the caller). */
static attn_status run_job(const job *j, void *out_mem, void *lse_mem)
{
    attn_tensor out = j->out, lse = j->lse;
    out.data = j->out_aliases_q ? j->qd : out_mem;
    lse.data = lse_mem;
    if (j->is_merge)
        return attn_merge(g_ctx, j->parts, j->plses, j->nparts, &out, &lse);
    return attn_sdpa(g_ctx, &j->p, &j->q, &j->k, &j->v, &out, j->has_lse ? &lse : NULL);
}

/* ---- the threads ---------------------------------------------------------------------- */

typedef struct worker {
    int tid;
    int failures;
    long calls;
    char first_failure[768];
} worker;

static void worker_fail(worker *w, const job *j, const char *what)
{
    if (!w->failures++)
        snprintf(w->first_failure, sizeof w->first_failure, "thread %d, %s: %s", w->tid,
                 j->desc, what);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    size_t max_out = 0, max_lse = 0;
    for (int i = 0; i < NJOBS; i++) {
        if (g_jobs[i].out_bytes > max_out) max_out = g_jobs[i].out_bytes;
        if (g_jobs[i].lse_bytes > max_lse) max_lse = g_jobs[i].lse_bytes;
    }
    unsigned char *out = malloc(max_out + 64), *lse = malloc(max_lse + 64);
    uint64_t s = 1000 + (uint64_t)w->tid;
    for (int it = 0; it < g_iters; it++) {
        int start = (int)(rnd(&s) % NJOBS), step = (w->tid % 2) ? 1 : NJOBS - 1;
        for (int n = 0; n < NJOBS; n++) {
            const job *j = &g_jobs[(start + n * step) % NJOBS];
            memset(out, POISON, max_out + 64);
            memset(lse, POISON, max_lse + 64);
            attn_status st = run_job(j, out, lse);
            w->calls++;
            const char *msg = attn_last_error();
            char what[600];
            if (st != j->want) {
                snprintf(what, sizeof what, "status %d, serial run gave %d (\"%s\")", (int)st,
                         (int)j->want, msg);
                worker_fail(w, j, what);
                continue;
            }
            if (strcmp(msg, j->want_msg) != 0) {
                snprintf(what, sizeof what, "attn_last_error() is \"%s\", serial run gave \"%s\"",
                         msg, j->want_msg);
                worker_fail(w, j, what);
            }
            if (st == ATTN_OK) {
                if (memcmp(out, j->ref_out, j->out_bytes) != 0)
                    worker_fail(w, j, "out differs from the serial run");
                if (j->has_lse && memcmp(lse, j->ref_lse, j->lse_bytes) != 0)
                    worker_fail(w, j, "lse differs from the serial run");
                for (size_t b = j->out_bytes; b < max_out + 64; b++)
                    if (out[b] != POISON) {
                        worker_fail(w, j, "wrote past the end of out");
                        break;
                    }
            } else {
                for (size_t b = 0; b < max_out + 64; b++)
                    if (out[b] != POISON) {
                        worker_fail(w, j, "a failing call wrote to out");
                        break;
                    }
                for (size_t b = 0; b < max_lse + 64; b++)
                    if (lse[b] != POISON) {
                        worker_fail(w, j, "a failing call wrote to lse");
                        break;
                    }
            }
        }
    }
    free(out);
    free(lse);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* set by the qemu-aarch64 stage, where any program that starts a thread
     * hangs (qemu 7.2 there); this test runs natively and under ASan */
    const char *nothreads = getenv("ATTN_TEST_NO_THREADS");
    if (nothreads && *nothreads && strcmp(nothreads, "0") != 0) {
        printf("test_threads: skipped (ATTN_TEST_NO_THREADS)\n");
        return 77;
    }
    const char *quick = getenv("ATTN_TEST_QUICK");
    if (quick && *quick && strcmp(quick, "0") != 0)
        g_iters = 6;
    if (attn_context_create(NULL, &g_ctx) != ATTN_OK) {
        printf("FAIL: attn_context_create: %s\n", attn_last_error());
        return 1;
    }
    uint64_t s = 42;
    for (int i = 0; i < NJOBS; i++) {
        memset(&g_jobs[i], 0, sizeof g_jobs[i]);
        g_jobs[i].id = i;
        if (i % 11 == 10)
            build_merge_job(&g_jobs[i], i, &s);
        else
            build_sdpa_job(&g_jobs[i], i, &s);
    }

    /* serial record (each job run twice: it must also be repeatable) */
    int fails = 0, nvalid = 0;
    for (int i = 0; i < NJOBS; i++) {
        job *j = &g_jobs[i];
        j->ref_out = malloc(j->out_bytes + 1);
        j->ref_lse = malloc(j->lse_bytes + 1);
        memset(j->ref_out, POISON, j->out_bytes + 1);
        memset(j->ref_lse, POISON, j->lse_bytes + 1);
        j->want = run_job(j, j->ref_out, j->ref_lse);
        snprintf(j->want_msg, sizeof j->want_msg, "%s", attn_last_error());
        int invalid = strstr(j->desc, "INVALID") != NULL;
        if (invalid != (j->want != ATTN_OK) || (invalid && j->want != ATTN_ERR_INVALID_ARGUMENT)) {
            printf("FAIL %s: serial run returned %d (\"%s\")\n", j->desc, (int)j->want,
                   j->want_msg);
            fails++;
        }
        if (j->want == ATTN_OK) {
            nvalid++;
            unsigned char *again = malloc(j->out_bytes + 1), *lagain = malloc(j->lse_bytes + 1);
            run_job(j, again, lagain);
            if (memcmp(again, j->ref_out, j->out_bytes) ||
                (j->has_lse && memcmp(lagain, j->ref_lse, j->lse_bytes))) {
                printf("FAIL %s: two serial runs differ\n", j->desc);
                fails++;
            }
            free(again);
            free(lagain);
        }
    }

    pthread_t th[NTHREADS];
    worker w[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].tid = t;
        if (pthread_create(&th[t], NULL, worker_main, &w[t]) != 0) {
            printf("FAIL: pthread_create\n");
            return 1;
        }
    }
    long calls = 0;
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        calls += w[t].calls;
        if (w[t].failures) {
            printf("FAIL %s (%d failures in this thread)\n", w[t].first_failure, w[t].failures);
            fails += w[t].failures;
        }
    }
    for (int i = 0; i < NJOBS; i++) {
        job *j = &g_jobs[i];
        free(j->qd); free(j->kd); free(j->vd); free(j->md); free(j->gd);
        for (int p = 0; p < j->nparts; p++) { free(j->partd[p]); free(j->plsed[p]); }
        free(j->ref_out); free(j->ref_lse);
    }
    attn_context_destroy(g_ctx);
    printf("test_threads: %d jobs (%d valid), %d threads, %ld concurrent calls, %d failures\n",
           NJOBS, nvalid, NTHREADS, calls, fails);
    return fails ? 1 : 0;
}
