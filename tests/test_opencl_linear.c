/*
 * attn_linear on the OpenCL backend against the double-precision recurrence
 * (tests/ref_linear.c): every kind, feature maps, normalize with z in/out,
 * state in / out / in place, varlen with an empty sequence, f32/f16/bf16
 * inputs, outputs and gates, strided views and buffer offsets, head dims
 * that are not powers of two, state columns split over several work-items
 * or not (ATTN_OPENCL_LINEAR_TILE), sequences cut into segments or not
 * (ATTN_OPENCL_LINEAR_SEGMENTS), weak, strong and resetting gates. Every
 * tensor is in attn_buffers of each OpenCL device found. Also: tensors on two
 * devices are ATTN_ERR_INVALID_ARGUMENT. Exit 77 (skip) without OpenCL.
 *
 * Tolerances (max error relative to the largest reference value): f32
 * everywhere 2e-4, any f16 tensor 4e-3, any bf16 tensor 3e-2.
 * ATTN_TEST_OPENCL_DEVICE=N restricts the run to device index N.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"
#include "ref.h"
#include "ref_linear.h"

enum { ST_NONE = 0, ST_IN_OUT, ST_IN_PLACE, ST_OUT_ONLY };
enum { G_WEAK = 0, G_STRONG, G_MIXED, G_RESETS };

typedef struct lincase {
    const char *name;
    attn_linear_kind kind;
    attn_dtype in, out, gdt;    /* q/k/v, out, g and beta */
    int b, t, h, dk, dv;
    int layout;
    int gates, decay_param;
    attn_linear_feature feature;
    int normalize, l2norm;
    int state;                  /* ST_* (z in/out follows it with normalize) */
    int varlen;                 /* three sequences packed (one empty) */
    attn_linear_algo algo;
    int quick;
} lincase;

#define F32 ATTN_F32
#define F16 ATTN_F16
#define BF16 ATTN_BF16
#define ID ATTN_LINEAR_FEATURE_IDENTITY
#define ELU ATTN_LINEAR_FEATURE_ELU1
#define RELU ATTN_LINEAR_FEATURE_RELU
#define REC ATTN_LINEAR_ALGO_RECURRENT
#define CHK ATTN_LINEAR_ALGO_CHUNKWISE
#define AUTO ATTN_LINEAR_ALGO_AUTO

/* The quick cases share few (Dk, dtype, work-group shape) programs: on
 * PoCL the program builds, not the runs, take most of the time. */
static const lincase cases[] = {
 /* name                kind                     in    out   g     b   t  h   dk   dv  layout            gates     dp f     nrm l2 state        vl algo q */
 { "plain",             ATTN_LINEAR_PLAIN,       F32,  F32,  F32,  2, 65, 2,  40,  24, TU_CONTIG,        G_WEAK,   0, ID,   0, 0, ST_IN_OUT,   0, REC,  1 },
 { "plain-d32",         ATTN_LINEAR_PLAIN,       F32,  F32,  F32,  2, 65, 2,  32,  24, TU_CONTIG,        G_WEAK,   0, ID,   0, 0, ST_IN_OUT,   0, REC,  0 },
 { "plain-elu-norm",    ATTN_LINEAR_PLAIN,       F32,  F32,  F32,  1, 77, 3,  40,  24, TU_PADDED,        G_WEAK,   0, ELU,  1, 0, ST_IN_OUT,   0, CHK,  1 },
 { "plain-relu-inplace",ATTN_LINEAR_PLAIN,       F32,  F16,  F32,  3, 33, 1,  17,   5, TU_SWAP12,        G_WEAK,   0, RELU, 1, 1, ST_IN_PLACE, 0, AUTO, 0 },
 { "decay-g",           ATTN_LINEAR_DECAY,       F32,  F32,  F32,  2, 100, 2, 64,  64, TU_PADDED,        G_MIXED,  0, ID,   0, 0, ST_IN_OUT,   0, CHK,  0 },
 { "decay-param",       ATTN_LINEAR_DECAY,       F32,  F32,  F32,  1, 129, 2, 40,  24, TU_CONTIG,        G_WEAK,   1, ID,   0, 0, ST_OUT_ONLY, 0, REC,  1 },
 { "gla-bf16",          ATTN_LINEAR_GLA,         BF16, F32,  BF16, 2, 70, 2,  64,  48, TU_SWAP12,        G_RESETS, 0, ID,   0, 0, ST_IN_OUT,   0, CHK,  0 },
 { "gla-resets",        ATTN_LINEAR_GLA,         F32,  F32,  F32,  2, 100, 2, 40,  24, TU_CONTIG,        G_RESETS, 0, ID,   0, 0, ST_IN_PLACE, 0, REC,  1 },
 { "gla-elu-f16",       ATTN_LINEAR_GLA,         F16,  F16,  F32,  1, 50, 2,  24,  36, TU_CONTIG,        G_STRONG, 0, ELU,  0, 1, ST_NONE,     0, REC,  0 },
 { "delta-d128",        ATTN_LINEAR_DELTA,       F32,  F32,  F32,  1, 40, 2, 128, 128, TU_CONTIG,        G_WEAK,   0, ID,   0, 1, ST_IN_OUT,   0, REC,  0 },
 { "delta-no-l2norm",   ATTN_LINEAR_DELTA,       F32,  F32,  F16,  2, 90, 1,  40,  33, TU_EXPLICIT,      G_WEAK,   0, ID,   0, 0, ST_IN_PLACE, 0, CHK,  0 },
 { "gdelta-f16",        ATTN_LINEAR_GATED_DELTA, F16,  BF16, F16,  1, 64, 2,  96,  80, TU_SWAP12_PADDED, G_MIXED,  0, ID,   0, 1, ST_IN_OUT,   0, CHK,  1 },
 { "kda-inplace",       ATTN_LINEAR_KDA,         F32,  F32,  F32,  2, 100, 2, 40,  24, TU_PADDED,        G_RESETS, 0, ID,   0, 1, ST_IN_PLACE, 0, REC,  1 },
 { "kda-d72",           ATTN_LINEAR_KDA,         F32,  F32,  F32,  1, 60, 2,  72,  40, TU_CONTIG,        G_MIXED,  0, ID,   0, 1, ST_IN_OUT,   0, CHK,  0 },
 { "kda-varlen",        ATTN_LINEAR_KDA,         F32,  F32,  F32,  0,  0, 2,  40,  24, TU_CONTIG,        G_MIXED,  0, ID,   0, 1, ST_IN_OUT,   1, CHK,  1 },
 { "plain-varlen-norm", ATTN_LINEAR_PLAIN,       F32,  F32,  F32,  0,  0, 3,  40,  24, TU_SWAP12,        G_WEAK,   0, RELU, 1, 0, ST_IN_OUT,   1, AUTO, 1 },
 { "gla-dims1-inner2",  ATTN_LINEAR_GLA,         F32,  F32,  F32,  2,  7, 1,   1,   1, TU_INNER2,        G_MIXED,  0, ID,   0, 0, ST_IN_OUT,   0, REC,  0 },
 { "gdelta-long",       ATTN_LINEAR_GATED_DELTA, F32,  F32,  F32,  1, 1000, 1, 64, 64, TU_CONTIG,        G_WEAK,   0, ID,   0, 1, ST_IN_OUT,   0, CHK,  0 },
 { "kda-dk256",         ATTN_LINEAR_KDA,         F32,  F32,  F32,  1, 30, 1, 256,  16, TU_CONTIG,        G_MIXED,  0, ID,   0, 1, ST_IN_OUT,   0, REC,  0 },
};

static const int32_t cu[] = { 0, 37, 37, 80 };     /* lengths 37, 0, 43 */
#define NSEQ_VARLEN 3

static int is_delta(attn_linear_kind k)
{
    return k == ATTN_LINEAR_DELTA || k == ATTN_LINEAR_GATED_DELTA || k == ATTN_LINEAR_KDA;
}

static double tol_of(attn_dtype dt)
{
    return dt == ATTN_F32 ? 2e-4 : dt == ATTN_F16 ? 4e-3 : 3e-2;
}

static double log_gate(int mode)
{
    const double weak = log(0.9 + 0.1 * tu_uniform()), strong = log(1e-4 + 0.05 * tu_uniform());
    switch (mode) {
    case G_STRONG: return strong;
    case G_MIXED: return tu_uniform() < 0.5 ? strong : weak;
    case G_RESETS: return tu_uniform() < 0.02 ? -INFINITY : weak;
    default: return weak;
    }
}

/* Every element of x (any ndim <= 4) set from f(lo, hi) in logical order. */
static void fill_each(tu_tensor *x, double lo, double hi, int gate_mode)
{
    const attn_tensor *t = &x->t;
    int64_t n = 1, idx[4] = { 0, 0, 0, 0 };
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    for (int64_t e = 0; e < n; e++) {
        int64_t r = e;
        for (int i = t->ndim - 1; i >= 0; i--) {
            idx[i] = r % t->shape[i];
            r /= t->shape[i];
        }
        ref_set(t, idx, gate_mode >= 0 ? log_gate(gate_mode) : lo + (hi - lo) * tu_uniform());
    }
}

/* Sequence n's rows [t0, t0+len) of a [B,S,H,W] (or [B,S,H] with w = 0)
 * tensor as contiguous doubles [len,H,max(w,1)]. */
static double *gather(const attn_tensor *t, int64_t b, int64_t t0, int64_t len, int64_t h,
                      int64_t w)
{
    const int64_t wc = w ? w : 1;
    double *o = malloc(sizeof(double) * (size_t)(len * h * wc + 1));
    for (int64_t s = 0; s < len; s++)
        for (int64_t j = 0; j < h; j++)
            for (int64_t i = 0; i < wc; i++) {
                const int64_t idx[4] = { b, t0 + s, j, i };
                o[(s * h + j) * wc + i] = ref_get(t, idx);
            }
    return o;
}

/* The reference over every sequence: ro [Bt,S,H,Dv], rs [N,H,Dk,Dv], rz [N,H,Dk]. */
static void reference(const lincase *c, const dtensor *q, const dtensor *k, const dtensor *v,
                      const dtensor *g, const dtensor *beta, const dtensor *sin,
                      const dtensor *zin, const float *decay, int64_t nseq, int64_t s,
                      double *ro, double *rs, double *rz)
{
    const int64_t H = c->h, Dk = c->dk, Dv = c->dv;
    const int per_channel = c->kind == ATTN_LINEAR_GLA || c->kind == ATTN_LINEAR_KDA;
    double dd[16];
    for (int64_t i = 0; i < H; i++)
        dd[i] = decay[i];
    for (int64_t n = 0; n < nseq; n++) {
        const int64_t b = c->varlen ? 0 : n, t0 = c->varlen ? cu[n] : 0;
        const int64_t len = c->varlen ? cu[n + 1] - cu[n] : s;
        double *S = rs + n * H * Dk * Dv, *z = rz + n * H * Dk;
        for (int64_t j = 0; j < H; j++)
            for (int64_t r = 0; r < Dk; r++) {
                const int64_t zi[3] = { n, j, r };
                z[j * Dk + r] = zin->buf ? ref_get(&zin->h.t, zi) : 0.0;
                for (int64_t col = 0; col < Dv; col++) {
                    const int64_t si[4] = { n, j, r, col };
                    S[(j * Dk + r) * Dv + col] = sin->buf ? ref_get(&sin->h.t, si) : 0.0;
                }
            }
        ref_linear_seq a;
        memset(&a, 0, sizeof a);
        a.kind = (int)c->kind; a.feature = (int)c->feature; a.normalize = c->normalize;
        a.l2norm = c->l2norm; a.scale = 1.0 / sqrt((double)Dk); a.eps = 1e-6;
        a.T = len; a.H = H; a.Dk = Dk; a.Dv = Dv;
        double *aq = gather(&q->h.t, b, t0, len, H, Dk), *ak = gather(&k->h.t, b, t0, len, H, Dk);
        double *av = gather(&v->h.t, b, t0, len, H, Dv);
        double *ag = g->buf ? gather(&g->h.t, b, t0, len, H, per_channel ? Dk : 0) : NULL;
        double *ab = beta->buf ? gather(&beta->h.t, b, t0, len, H, 0) : NULL;
        a.q = aq; a.k = ak; a.v = av; a.g = ag; a.beta = ab;
        a.g_per_channel = per_channel;
        a.decay = c->decay_param ? dd : NULL;
        a.S = S; a.z = z;
        a.o = ro + ((b * s) + t0) * H * Dv;
        ref_linear(&a);
        free(aq); free(ak); free(av); free(ag); free(ab);
    }
}

static void run_linear(const lincase *c)
{
    const int64_t nseq = c->varlen ? NSEQ_VARLEN : c->b, bt = c->varlen ? 1 : c->b;
    const int64_t s = c->varlen ? cu[NSEQ_VARLEN] : c->t, H = c->h, Dk = c->dk, Dv = c->dv;
    const int per_channel = c->kind == ATTN_LINEAR_GLA || c->kind == ATTN_LINEAR_KDA;
    const int has_g = per_channel || c->kind == ATTN_LINEAR_GATED_DELTA ||
                      (c->kind == ATTN_LINEAR_DECAY && !c->decay_param);
    dtensor q, k, v, out, g, beta, sin, sout, zin, zout;
    memset(&g, 0, sizeof g); memset(&beta, 0, sizeof beta);
    memset(&sin, 0, sizeof sin); memset(&sout, 0, sizeof sout);
    memset(&zin, 0, sizeof zin); memset(&zout, 0, sizeof zout);
    const int64_t qs[4] = { bt, s, H, Dk }, vs[4] = { bt, s, H, Dv };
    const int64_t ss[4] = { nseq, H, Dk, Dv }, zs[3] = { nseq, H, Dk };
    int err = mk(&q, c->in, 4, qs, c->layout) | mk(&k, c->in, 4, qs, c->layout) |
              mk(&v, c->in, 4, vs, c->layout) | mk(&out, c->out, 4, vs, c->layout);
    if (has_g)
        err |= mk(&g, c->gdt, per_channel ? 4 : 3, qs, c->layout == TU_INNER2 ? TU_INNER2 : TU_CONTIG);
    if (is_delta(c->kind))
        err |= mk(&beta, c->gdt, 3, qs, TU_PADDED);
    const int want_in = c->state == ST_IN_OUT || c->state == ST_IN_PLACE;
    const int want_out = c->state != ST_NONE && c->state != ST_IN_PLACE;
    if (want_in) {
        err |= mk(&sin, ATTN_F32, 4, ss, c->layout == TU_CONTIG ? TU_CONTIG : TU_PADDED);
        if (c->normalize)
            err |= mk(&zin, ATTN_F32, 3, zs, TU_SWAP12);
    }
    if (want_out) {
        err |= mk(&sout, ATTN_F32, 4, ss, TU_CONTIG);
        if (c->normalize)
            err |= mk(&zout, ATTN_F32, 3, zs, TU_PADDED);
    }
    if (err) {
        CHECK(0, "%s: host allocation failed", c->name);
        return;
    }
    tu_fill_uniform(&q.h, -1.0, 1.0);
    tu_fill_uniform(&v.h, -1.0, 1.0);
    /* the delta rule is stable for beta |k|^2 < 2: small k without l2norm */
    const double kr = is_delta(c->kind) && !c->l2norm ? 1.0 / sqrt((double)Dk) : 1.0;
    fill_each(&k.h, -kr, kr, -1);
    if (has_g)
        fill_each(&g.h, 0, 0, c->gates);
    if (beta.h.mem)
        tu_fill_uniform(&beta.h, 0.0, 1.0);
    if (want_in) {
        tu_fill_uniform(&sin.h, -0.5, 0.5);
        if (c->normalize)
            tu_fill_uniform(&zin.h, 0.0, 2.0);
    }
    float decay[16];
    for (int i = 0; i < 16; i++)
        decay[i] = (float)(0.8 + 0.199 * tu_uniform());

    const size_t no = (size_t)(bt * s * H * Dv), ns = (size_t)(nseq * H * Dk * Dv);
    double *ro = calloc(no + 1, sizeof *ro), *rs = calloc(ns + 1, sizeof *rs);
    double *rz = calloc((size_t)(nseq * H * Dk) + 1, sizeof *rz);
    if (upload(&q) || upload(&k) || upload(&v) || (has_g && upload(&g)) ||
        (beta.h.mem && upload(&beta)) || (want_in && upload(&sin)) ||
        (zin.h.mem && upload(&zin))) {
        CHECK(0, "%s: upload failed: %s", c->name, attn_last_error());
        goto done;
    }
    reference(c, &q, &k, &v, &g, &beta, &sin, &zin, decay, nseq, s, ro, rs, rz);
    tu_poison(&out.h);
    if (want_out) {
        tu_poison(&sout.h);
        if (c->normalize)
            tu_poison(&zout.h);
    }
    if (upload(&out) || (want_out && upload(&sout)) || (zout.h.mem && upload(&zout))) {
        CHECK(0, "%s: upload failed: %s", c->name, attn_last_error());
        goto done;
    }
    attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
    p.kind = c->kind;
    p.algo = c->algo;
    p.feature = c->feature;
    p.normalize = c->normalize;
    p.l2norm_qk = c->l2norm;
    if (c->decay_param)
        p.decay = decay;
    if (c->varlen) {
        p.cu_seqlens = cu;
        p.num_seqs = NSEQ_VARLEN;
    }
    dtensor *so = c->state == ST_IN_PLACE ? &sin : &sout, *zo = c->state == ST_IN_PLACE ? &zin : &zout;
    if (c->normalize) {
        p.z_in = zin.buf ? &zin.d : NULL;
        p.z_out = zo->buf ? &zo->d : NULL;
    }
    const double t0 = tu_now();
    attn_status st = attn_linear(ctx, &p, &q.d, &k.d, &v.d, has_g ? &g.d : NULL,
                                 beta.buf ? &beta.d : NULL, want_in ? &sin.d : NULL, &out.d,
                                 so->buf ? &so->d : NULL);
    const double dt = tu_now() - t0;
    CHECK(st == ATTN_OK, "%s: attn_linear: %s: %s", c->name, attn_status_string(st),
          attn_last_error());
    if (st != ATTN_OK || download(&out) || (so->buf && download(so)) ||
        (zo->buf && download(zo))) {
        CHECK(0, "%s: download failed", c->name);
        goto done;
    }
    char msg[256] = "";
    long bad = tu_check_written(&out.h, msg, sizeof msg);
    CHECK(bad == 0, "%s: out: %ld bad bytes/elements: %s", c->name, bad, msg);
    double tol = tol_of(c->in);
    if (tol_of(c->out) > tol) tol = tol_of(c->out);
    if (tol_of(c->gdt) > tol && (has_g || beta.buf)) tol = tol_of(c->gdt);
    const double eo = tu_rel_err(&out.h, ro, NULL, NULL);
    CHECK(eo <= tol, "%s: out error %.3g > %.3g", c->name, eo, tol);
    double es = 0, ez = 0;
    if (so->buf) {
        if (c->state != ST_IN_PLACE) {
            bad = tu_check_written(&so->h, msg, sizeof msg);
            CHECK(bad == 0, "%s: state_out: %ld bad: %s", c->name, bad, msg);
        }
        es = tu_rel_err(&so->h, rs, NULL, NULL);
        CHECK(es <= tol, "%s: state error %.3g > %.3g", c->name, es, tol);
    }
    if (zo->buf) {
        ez = tu_rel_err(&zo->h, rz, NULL, NULL);
        CHECK(ez <= tol, "%s: z error %.3g > %.3g", c->name, ez, tol);
    }
    if (tu_verbose)
        printf("  dev %d linear %-20s out err %.2e state err %.2e z err %.2e  %.3f s\n", dev,
               c->name, eo, es, ez, dt);
done:
    free(ro); free(rs); free(rz);
    dfree(&q); dfree(&k); dfree(&v); dfree(&out); dfree(&g); dfree(&beta);
    dfree(&sin); dfree(&sout); dfree(&zin); dfree(&zout);
}

/* Tensors of one call on two devices (q on the OpenCL device, k or
 * state_out in host memory): ATTN_ERR_INVALID_ARGUMENT naming the tensor. */
static void test_mixed_devices(void)
{
    dtensor x, out;
    const int64_t sh[4] = { 1, 5, 1, 8 };
    if (mk(&x, ATTN_F32, 4, sh, TU_CONTIG) || mk(&out, ATTN_F32, 4, sh, TU_CONTIG)) {
        CHECK(0, "mixed devices: allocation failed");
        return;
    }
    tu_fill_normal(&x.h, 0, 1);
    tu_tensor host_state;
    const int64_t ss[4] = { 1, 1, 8, 8 };
    if (upload(&x) == 0 && upload(&out) == 0 &&
        tu_tensor_alloc(&host_state, ATTN_F32, 4, ss, TU_CONTIG) == 0) {
        attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
        attn_status s = attn_linear(ctx, &p, &x.d, &x.h.t, &x.d, NULL, NULL, NULL, &out.d, NULL);
        CHECK(s == ATTN_ERR_INVALID_ARGUMENT && strstr(attn_last_error(), "k: "),
              "k in host memory, q on device %d: %s: %s", dev, attn_status_string(s),
              attn_last_error());
        s = attn_linear(ctx, &p, &x.d, &x.d, &x.d, NULL, NULL, NULL, &out.d, &host_state.t);
        CHECK(s == ATTN_ERR_INVALID_ARGUMENT && strstr(attn_last_error(), "state_out"),
              "state_out in host memory: %s: %s", attn_status_string(s), attn_last_error());
        tu_tensor_free(&host_state);
    }
    dfree(&x);
    dfree(&out);
}

static void per_device(const attn_device_info *info)
{
    const char *filter = getenv("ATTN_TEST_FILTER");
    printf("device %d: %s (%s)\n", dev, info->name, info->driver);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if ((!tu_quick || cases[i].quick) && (!filter || strstr(cases[i].name, filter)))
            run_linear(&cases[i]);
    /* One row split (each work-item a whole column) and odd column
     * slices, which the automatic choice takes for larger problems. */
    setenv("ATTN_OPENCL_LINEAR_TILE", "64,5", 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(cases[i].name, "plain-elu-norm") || !strcmp(cases[i].name, "kda-inplace"))
            run_linear(&cases[i]);
    unsetenv("ATTN_OPENCL_LINEAR_TILE");
    /* Sequences cut into segments (non-delta kinds; automatic only for
     * long sequences on big devices): 3, and more than some have tokens. */
    for (int nseg = 3; nseg <= (tu_quick ? 3 : 50); nseg += 47) {
        char v[16];
        snprintf(v, sizeof v, "%d", nseg);
        setenv("ATTN_OPENCL_LINEAR_SEGMENTS", v, 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (!is_delta(cases[i].kind) && (!tu_quick || cases[i].quick) &&
                (!filter || strstr(cases[i].name, filter)))
                run_linear(&cases[i]);
    }
    unsetenv("ATTN_OPENCL_LINEAR_SEGMENTS");
    test_mixed_devices();
}

int main(void)
{
    return devtest_main("test_opencl_linear", DEVTEST_OPENCL, "ATTN_TEST_OPENCL_DEVICE",
                        per_device, NULL);
}
