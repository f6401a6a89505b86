/*
 * attn_linear on the Vulkan backend against the double-precision recurrence
 * (tests/ref_linear.c): every kind, feature maps and normalisation, state
 * and normaliser in/out (also in place), varlen with an empty sequence,
 * f32/f16/bf16 inputs and outputs, gates and beta of any dtype, strided
 * views at buffer offsets, head dims that are not powers of two, odd
 * lengths, strong gates with exact resets (g = -inf). Each case runs on
 * every Vulkan device (lavapipe included) with the subgroup build where the
 * device has shuffles, then a few again with the plain build
 * (ATTN_VULKAN_SUBGROUP=0), with an odd workgroup shape (several column
 * slices, partial token blocks) and through the chunk-parallel form with
 * short chunks. Also: tensors on two devices are
 * ATTN_ERR_INVALID_ARGUMENT and leave the output untouched. Exit 77 (skip)
 * without a Vulkan device. ATTN_VULKAN_DEBUG=1 (the Khronos validation
 * layer, where installed) is on by default: a validation error aborts.
 *
 * Tolerances (max error relative to the largest reference value): f32 2e-4;
 * f16 anywhere 4e-3; bf16 anywhere 1.5e-2. The state and normaliser are f32
 * whatever the inputs (the reference reads the rounded inputs): 2e-4.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"
#include "ref.h"
#include "ref_linear.h"

enum { ST_NONE = 0, ST_SEPARATE, ST_INPLACE };

typedef struct lcase {
    const char *name;
    attn_linear_kind kind;
    attn_dtype in, out, gdt, bdt;
    int b, t, h, dk, dv;
    int layout;
    attn_linear_feature feature;
    int normalize, l2norm, decay_param;
    int state;          /* ST_*: state_in/out (and z_in/z_out with normalize) */
    int strong;         /* gates in [-6, 0] with 3% exact resets, else [-0.1, 0] */
    int varlen;         /* three sequences (lengths 7, 0, t - 7) packed */
    attn_linear_algo algo;
    int quick;
} lcase;

#define F32 ATTN_F32
#define F16 ATTN_F16
#define BF16 ATTN_BF16
#define ID ATTN_LINEAR_FEATURE_IDENTITY
#define ELU1 ATTN_LINEAR_FEATURE_ELU1
#define RELU ATTN_LINEAR_FEATURE_RELU
#define REC ATTN_LINEAR_ALGO_RECURRENT
#define CHUNK ATTN_LINEAR_ALGO_CHUNKWISE
#define AUTO ATTN_LINEAR_ALGO_AUTO

static const lcase cases[] = {
 /* name               kind                     in    out   g     beta  b   t  h  dk  dv layout            feat  n  l2 dp state        st vl algo  q */
 { "plain",            ATTN_LINEAR_PLAIN,       F32,  F32,  F32,  F32,  2, 33, 3, 40, 24, TU_CONTIG,        ID,   0, 0, 0, ST_SEPARATE, 0, 0, CHUNK, 1 },
 { "plain-elu-norm",   ATTN_LINEAR_PLAIN,       F32,  F32,  F32,  F32,  2, 29, 2, 37, 24, TU_PADDED,        ELU1, 1, 0, 0, ST_SEPARATE, 0, 0, REC,   1 },
 { "plain-relu-vl",    ATTN_LINEAR_PLAIN,       F16,  F32,  F32,  F32,  1, 37, 2, 40, 24, TU_CONTIG,        RELU, 1, 1, 0, ST_INPLACE,  0, 1, AUTO,  1 },
 { "decay-g",          ATTN_LINEAR_DECAY,       F32,  F32,  F32,  F32,  2, 31, 2, 40, 24, TU_SWAP12,        ID,   0, 0, 0, ST_SEPARATE, 0, 0, CHUNK, 1 },
 { "decay-param",      ATTN_LINEAR_DECAY,       BF16, F32,  F32,  F32,  2, 20, 3, 38, 24, TU_CONTIG,        ELU1, 0, 0, 1, ST_NONE,     0, 0, REC,   1 },
 { "gla-f16",          ATTN_LINEAR_GLA,         F16,  F16,  BF16, F32,  2, 26, 2, 40, 24, TU_CONTIG,        ELU1, 0, 0, 0, ST_SEPARATE, 0, 0, CHUNK, 1 },
 { "gla-strong",       ATTN_LINEAR_GLA,         F32,  F32,  F32,  F32,  1, 70, 2, 40, 24, TU_SWAP12_PADDED, ID,   0, 0, 0, ST_SEPARATE, 1, 0, CHUNK, 1 },
 { "decay-long",       ATTN_LINEAR_DECAY,       F32,  F32,  F32,  F32,  1,200, 1, 40, 24, TU_CONTIG,        RELU, 0, 1, 0, ST_SEPARATE, 1, 0, AUTO,  1 },
 { "delta",            ATTN_LINEAR_DELTA,       F32,  F32,  F32,  F32,  2, 33, 2, 40, 24, TU_CONTIG,        ID,   0, 1, 0, ST_SEPARATE, 0, 0, CHUNK, 1 },
 { "delta-raw-k",      ATTN_LINEAR_DELTA,       F16,  BF16, F32,  F16,  1, 40, 3, 40, 24, TU_INNER2,        ID,   0, 0, 0, ST_NONE,     0, 0, REC,   1 },
 { "gdelta-vl",        ATTN_LINEAR_GATED_DELTA, F32,  F32,  F16,  BF16, 1, 37, 2, 40, 24, TU_CONTIG,        ID,   0, 1, 0, ST_INPLACE,  0, 1, CHUNK, 1 },
 { "gdelta-strong",    ATTN_LINEAR_GATED_DELTA, F32,  F16,  F32,  F32,  2, 45, 2, 40, 24, TU_EXPLICIT,      ID,   0, 1, 0, ST_SEPARATE, 1, 0, REC,   0 },
 { "kda",              ATTN_LINEAR_KDA,         F32,  F32,  F32,  F32,  2, 33, 2, 40, 24, TU_SWAP12,        ID,   0, 1, 0, ST_SEPARATE, 0, 0, CHUNK, 1 },
 { "kda-bf16",         ATTN_LINEAR_KDA,         BF16, BF16, BF16, BF16, 1, 30, 2, 40, 24, TU_PADDED,        ID,   0, 1, 0, ST_SEPARATE, 1, 0, CHUNK, 0 },
 { "kda-odd-dims",     ATTN_LINEAR_KDA,         F32,  F32,  F32,  F32,  3,  1, 1, 17,  5, TU_CONTIG,        ID,   0, 1, 0, ST_SEPARATE, 0, 0, AUTO,  1 },
 { "plain-1x1",        ATTN_LINEAR_PLAIN,       F32,  F32,  F32,  F32,  1,  9, 2,  1,  1, TU_CONTIG,        RELU, 1, 0, 0, ST_SEPARATE, 0, 0, REC,   0 },
 { "empty-seq",        ATTN_LINEAR_GLA,         F32,  F32,  F32,  F32,  2,  0, 2, 40, 24, TU_CONTIG,        ID,   0, 0, 0, ST_SEPARATE, 0, 0, CHUNK, 1 },
 { "gdelta-d128",      ATTN_LINEAR_GATED_DELTA, F32,  F32,  F32,  F32,  1, 50, 2,128,128, TU_CONTIG,        ID,   0, 1, 0, ST_SEPARATE, 0, 0, CHUNK, 1 },
 { "gla-d96x80",       ATTN_LINEAR_GLA,         F16,  F32,  F32,  F32,  1, 40, 2, 96, 80, TU_CONTIG,        ID,   0, 1, 0, ST_INPLACE,  0, 0, CHUNK, 0 },
 { "delta-d256",       ATTN_LINEAR_DELTA,       F32,  F32,  F32,  F32,  1, 20, 2,256, 64, TU_CONTIG,        ID,   0, 1, 0, ST_SEPARATE, 0, 0, REC,   0 },
};
#define NCASES (sizeof cases / sizeof cases[0])

static const int32_t cu_vl[] = { 0, 7, 7, 0 };   /* last entry: t */

static int is_delta(attn_linear_kind k)
{
    return k == ATTN_LINEAR_DELTA || k == ATTN_LINEAR_GATED_DELTA || k == ATTN_LINEAR_KDA;
}

static int gate_cols(const lcase *c)
{
    if (c->kind == ATTN_LINEAR_GLA || c->kind == ATTN_LINEAR_KDA)
        return 2;
    return c->kind == ATTN_LINEAR_GATED_DELTA || (c->kind == ATTN_LINEAR_DECAY && !c->decay_param);
}

static double tol_of(const lcase *c)
{
    const attn_dtype d[4] = { c->in, c->out, c->gdt, c->bdt };
    double t = 2e-4;
    for (int i = 0; i < 4; i++)
        if (d[i] == BF16)
            t = 1.5e-2;
        else if (d[i] == F16 && t < 4e-3)
            t = 4e-3;
    return t;
}

/* Host tensor element (b, t, h, i) of a 3- or 4-d view as double. */
static double at(const dtensor *x, int64_t b, int64_t t, int64_t h, int64_t i)
{
    const int64_t idx[4] = { b, t, h, i };
    return ref_get(&x->h.t, idx);
}

static void fill_gates(dtensor *g, int strong)
{
    tu_fill_uniform(&g->h, strong ? -6.0 : -0.1, 0.0);
    if (!strong)
        return;
    const int64_t n = ref_numel(&g->h.t);
    int64_t idx[4] = { 0, 0, 0, 0 };
    for (int64_t e = 0; e < n; e++) {
        int64_t rest = e;
        for (int d = g->h.t.ndim - 1; d >= 0; d--) {
            idx[d] = rest % g->h.t.shape[d];
            rest /= g->h.t.shape[d];
        }
        if (tu_uniform() < 0.03)
            ref_set(&g->h.t, idx, -INFINITY);
    }
}

/* The reference for every sequence: out [Bt,T,H,Dv], S [N,H,Dk,Dv], z [N,H,Dk]. */
static void reference(const lcase *c, const int32_t *cu, int64_t nseq, const dtensor *q,
                      const dtensor *k, const dtensor *v, const dtensor *g, const dtensor *beta,
                      const float *decay, double *ro, double *rS, double *rz)
{
    const int64_t H = c->h, Dk = c->dk, Dv = c->dv;
    for (int64_t n = 0; n < nseq; n++) {
        const int64_t bt = cu ? 0 : n, t0 = cu ? cu[n] : 0, T = cu ? cu[n + 1] - cu[n] : c->t;
        const size_t nk = (size_t)(T * H * Dk) + 1, nv = (size_t)(T * H * Dv) + 1;
        double *dq = malloc(nk * sizeof(double)), *dk = malloc(nk * sizeof(double));
        double *dv = malloc(nv * sizeof(double)), *dg = malloc(nk * sizeof(double));
        double *db = malloc(((size_t)(T * H) + 1) * sizeof(double)), *o = calloc(nv, sizeof(double));
        double dd[64];
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++) {
                for (int64_t i = 0; i < Dk; i++) {
                    dq[(t * H + h) * Dk + i] = at(q, bt, t0 + t, h, i);
                    dk[(t * H + h) * Dk + i] = at(k, bt, t0 + t, h, i);
                    if (gate_cols(c) == 2)
                        dg[(t * H + h) * Dk + i] = at(g, bt, t0 + t, h, i);
                }
                for (int64_t j = 0; j < Dv; j++)
                    dv[(t * H + h) * Dv + j] = at(v, bt, t0 + t, h, j);
                if (gate_cols(c) == 1)
                    dg[t * H + h] = at(g, bt, t0 + t, h, 0);
                if (is_delta(c->kind))
                    db[t * H + h] = at(beta, bt, t0 + t, h, 0);
            }
        for (int64_t h = 0; h < H && decay; h++)
            dd[h] = decay[h];
        ref_linear_seq a;
        memset(&a, 0, sizeof a);
        a.kind = c->kind;
        a.feature = c->feature;
        a.normalize = c->normalize;
        a.l2norm = c->l2norm;
        a.scale = 1.0 / sqrt((double)Dk);
        a.eps = 1e-6;
        a.T = T; a.H = H; a.Dk = Dk; a.Dv = Dv;
        a.q = dq; a.k = dk; a.v = dv;
        a.g = gate_cols(c) ? dg : NULL;
        a.g_per_channel = gate_cols(c) == 2;
        a.beta = is_delta(c->kind) ? db : NULL;
        a.decay = decay ? dd : NULL;
        a.S = rS + n * H * Dk * Dv;
        a.z = rz + n * H * Dk;
        a.o = o;
        ref_linear(&a);
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                memcpy(ro + (((bt * (cu ? cu[nseq] : c->t)) + t0 + t) * H + h) * Dv,
                       o + (t * H + h) * Dv, (size_t)Dv * sizeof(double));
        free(dq); free(dk); free(dv); free(dg); free(db); free(o);
    }
}

/* Reads a 3- or 4-d f32 host tensor into contiguous doubles. */
static void to_doubles(const dtensor *x, double *dst)
{
    const attn_tensor *t = &x->h.t;
    const int64_t n = ref_numel(t);
    int64_t idx[4] = { 0, 0, 0, 0 };
    for (int64_t e = 0; e < n; e++) {
        int64_t rest = e;
        for (int d = t->ndim - 1; d >= 0; d--) {
            idx[d] = rest % t->shape[d];
            rest /= t->shape[d];
        }
        dst[e] = ref_get(t, idx);
    }
}

static void run_case(const lcase *c, const char *pass)
{
    const int64_t H = c->h, Dk = c->dk, Dv = c->dv;
    int32_t cu[4];
    memcpy(cu, cu_vl, sizeof cu);
    cu[3] = c->t;
    const int64_t bt = c->varlen ? 1 : c->b, nseq = c->varlen ? 3 : c->b;
    const int64_t sq[4] = { bt, c->t, H, Dk }, sv[4] = { bt, c->t, H, Dv };
    const int64_t ss[4] = { nseq, H, Dk, Dv }, sz[3] = { nseq, H, Dk };
    const int gc = gate_cols(c), delta = is_delta(c->kind);
    dtensor q, k, v, out, g, beta, si, so, zi, zo;
    memset(&g, 0, sizeof g); memset(&beta, 0, sizeof beta);
    memset(&si, 0, sizeof si); memset(&so, 0, sizeof so);
    memset(&zi, 0, sizeof zi); memset(&zo, 0, sizeof zo);
    int bad = mk(&q, c->in, 4, sq, c->layout) | mk(&k, c->in, 4, sq, c->layout) |
              mk(&v, c->in, 4, sv, c->layout) | mk(&out, c->out, 4, sv, c->layout);
    if (gc)
        bad |= mk(&g, c->gdt, gc == 2 ? 4 : 3, sq, c->layout);
    if (delta)
        bad |= mk(&beta, c->bdt, 3, sq, c->layout);
    const int separate = c->state == ST_SEPARATE;
    if (c->state) {
        bad |= mk(&si, F32, 4, ss, c->layout) | (separate && mk(&so, F32, 4, ss, TU_CONTIG));
        if (c->normalize)
            bad |= mk(&zi, F32, 3, sz, c->layout) | (separate && mk(&zo, F32, 3, sz, TU_CONTIG));
    }
    CHECK(!bad, "%s: allocation", c->name);
    if (bad)
        goto done;
    /* k of the delta kinds without l2norm at |k| ~ 1: a stable delta rule. */
    const double kr = delta && !c->l2norm ? sqrt(3.0 / (double)Dk) : 1.0;
    tu_fill_uniform(&q.h, -1, 1);
    tu_fill_uniform(&k.h, -kr, kr);
    tu_fill_uniform(&v.h, -1, 1);
    tu_poison(&out.h);
    if (gc)
        fill_gates(&g, c->strong);
    if (delta)
        tu_fill_uniform(&beta.h, 0, 1);
    if (c->state) {
        tu_fill_uniform(&si.h, -0.5, 0.5);
        if (separate)
            tu_poison(&so.h);
        if (c->normalize) {
            tu_fill_uniform(&zi.h, 0, 2);
            if (separate)
                tu_poison(&zo.h);
        }
    }
    float decay[64];
    for (int64_t h = 0; h < H; h++)
        decay[h] = (float)(0.8 + 0.2 * tu_uniform());

    const size_t nout = (size_t)(bt * c->t * H * Dv) + 1;
    double *ro = calloc(nout, sizeof(double)), *rS = calloc((size_t)(nseq * H * Dk * Dv), sizeof(double));
    double *rz = calloc((size_t)(nseq * H * Dk), sizeof(double));
    if (c->state) {
        to_doubles(&si, rS);
        if (c->normalize)
            to_doubles(&zi, rz);
    }
    reference(c, c->varlen ? cu : NULL, nseq, &q, &k, &v, &g, &beta,
              c->decay_param ? decay : NULL, ro, rS, rz);

    bad = upload(&q) | upload(&k) | upload(&v) | upload(&out) | (gc && upload(&g)) |
          (delta && upload(&beta)) | (c->state && upload(&si)) | (separate && upload(&so)) |
          (c->state && c->normalize && upload(&zi)) | (separate && c->normalize && upload(&zo));
    CHECK(!bad, "%s: upload", c->name);
    if (bad)
        goto free_ref;
    attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
    p.kind = c->kind;
    p.algo = c->algo;
    p.feature = c->feature;
    p.normalize = c->normalize;
    p.l2norm_qk = c->l2norm;
    p.decay = c->decay_param ? decay : NULL;
    if (c->varlen) {
        p.cu_seqlens = cu;
        p.num_seqs = 3;
    }
    /* In place: state_out (z_out) is the very view of state_in (z_in). */
    dtensor *sout = c->state == ST_INPLACE ? &si : &so, *zout = c->state == ST_INPLACE ? &zi : &zo;
    if (c->state && c->normalize) {
        p.z_in = &zi.d;
        p.z_out = &zout->d;
    }
    const attn_status s = attn_linear(ctx, &p, &q.d, &k.d, &v.d, gc ? &g.d : NULL,
                                      delta ? &beta.d : NULL, c->state ? &si.d : NULL, &out.d,
                                      c->state ? &sout->d : NULL);
    CHECK(s == ATTN_OK, "%s (%s): %s: %s", c->name, pass, attn_status_string(s), attn_last_error());
    if (s != ATTN_OK || download(&out) != 0)
        goto free_ref;
    char msg[200];
    const double tol = tol_of(c);
    double e = tu_rel_err(&out.h, ro, NULL, NULL);
    CHECK(c->t == 0 || (e <= tol && tu_check_written(&out.h, msg, sizeof msg) == 0),
          "%s (%s): out error %.3g (tol %.3g)", c->name, pass, e, tol);
    if (c->state) {
        CHECK(download(sout) == 0, "%s: download state", c->name);
        e = tu_rel_err(&sout->h, rS, NULL, NULL);
        CHECK(e <= 2e-4, "%s (%s): state error %.3g", c->name, pass, e);
        if (c->normalize) {
            CHECK(download(zout) == 0, "%s: download z", c->name);
            e = tu_rel_err(&zout->h, rz, NULL, NULL);
            CHECK(e <= 2e-4, "%s (%s): z error %.3g", c->name, pass, e);
        }
    }
    if (tu_verbose)
        printf("  %-16s %s ok\n", c->name, pass);
free_ref:
    free(ro); free(rS); free(rz);
done:
    dfree(&q); dfree(&k); dfree(&v); dfree(&out); dfree(&g); dfree(&beta);
    dfree(&si); dfree(&so); dfree(&zi); dfree(&zo);
}

/* state_in in host memory, the rest on the device: refused, out untouched. */
static void test_mixed_devices(void)
{
    dtensor q, out, host_state;
    const int64_t sh[4] = { 1, 5, 1, 16 }, ss[4] = { 1, 1, 16, 16 };
    memset(&host_state, 0, sizeof host_state);
    if (mk(&q, F32, 4, sh, TU_CONTIG) || mk(&out, F32, 4, sh, TU_CONTIG) ||
        mk(&host_state, F32, 4, ss, TU_CONTIG)) {
        CHECK(0, "mixed devices: allocation");
        goto done;
    }
    tu_fill_uniform(&q.h, -1, 1);
    tu_fill_uniform(&host_state.h, -1, 1);
    tu_poison(&out.h);
    if (upload(&q) || upload(&out)) {
        CHECK(0, "mixed devices: upload");
        goto done;
    }
    attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
    attn_status s = attn_linear(ctx, &p, &q.d, &q.d, &q.d, NULL, NULL, &host_state.h.t, &out.d,
                                NULL);
    CHECK(s == ATTN_ERR_INVALID_ARGUMENT && strstr(attn_last_error(), "state_in"),
          "mixed devices: %s: %s", attn_status_string(s), attn_last_error());
    CHECK(download(&out) == 0 && tu_check_untouched(&out.h) == 0,
          "mixed devices: out was touched");
done:
    dfree(&q);
    dfree(&out);
    tu_tensor_free(&host_state.h);
}

static int listed(const char *name, const char *const *only)
{
    for (; *only; only++)
        if (strcmp(*only, name) == 0)
            return 1;
    return 0;
}

/* Every case (only == NULL) or those named, on the device under test. */
static void run_pass(const char *pass, const char *const *only)
{
    const char *filter = getenv("ATTN_TEST_FILTER");
    const double t0 = tu_now();
    for (size_t i = 0; i < NCASES; i++)
        if ((!tu_quick || cases[i].quick) && (!filter || strstr(cases[i].name, filter)) &&
            (!only || listed(cases[i].name, only)))
            run_case(&cases[i], pass);
    printf("device %d, %s: %.1f s\n", dev, pass, tu_now() - t0);
}

/* The passes on one device. The library reads the ATTN_VULKAN_* variables
 * at every call, so one context serves them all and keeps its pipelines
 * (each compile costs lavapipe seconds). */
static void run_passes(void)
{
    run_pass("default", NULL);
    test_mixed_devices();
    static const char *const plain[] = { "plain-elu-norm", "gdelta-vl", "kda", "decay-param",
                                         NULL };
    setenv("ATTN_VULKAN_SUBGROUP", "0", 1);
    run_pass("plain build", plain);
    unsetenv("ATTN_VULKAN_SUBGROUP");
    /* 3 columns per workgroup (several slices, a partial last one), blocks
     * of 5 tokens (partial last blocks), with and without column sums. */
    static const char *const odd[] = { "plain-relu-vl", "gla-strong", "delta", "kda", NULL };
    setenv("ATTN_VULKAN_LINEAR_TILE", "4,3,5", 1);
    run_pass("tile 4,3,5", odd);
    setenv("ATTN_VULKAN_LINEAR_TILE", "1,3,5", 1);
    run_pass("tile 1,3,5", odd);
    unsetenv("ATTN_VULKAN_LINEAR_TILE");
    /* The chunk-parallel form with chunks of 4 and 7 tokens: partial
     * chunks, chunks past a sequence's end (varlen), resets inside chunks
     * (by default it is for GPUs, and long sequences only). */
    static const char *const chunked[] = { "plain", "plain-relu-vl", "decay-g", "gla-f16",
                                           "gla-strong", "gla-d96x80", "delta", "gdelta-vl",
                                           "gdelta-strong", "kda", "kda-bf16", "gdelta-d128",
                                           "decay-long", NULL };
    setenv("ATTN_VULKAN_LINEAR_CHUNK", "4", 1);
    run_pass("chunks of 4", chunked);
    setenv("ATTN_VULKAN_LINEAR_CHUNK", "7", 1);
    setenv("ATTN_VULKAN_LINEAR_TILE", "1,3,5", 1);
    run_pass("chunks of 7, tile 1,3,5", chunked);
    unsetenv("ATTN_VULKAN_LINEAR_TILE");
    unsetenv("ATTN_VULKAN_LINEAR_CHUNK");
}

static void per_device(const attn_device_info *info)
{
    printf("device %d: %s\n", dev, info->name);
    run_passes();
}

int main(void)
{
    return devtest_main("test_vulkan_linear", DEVTEST_VULKAN, "ATTN_TEST_VULKAN_DEVICE",
                        per_device, NULL);
}
