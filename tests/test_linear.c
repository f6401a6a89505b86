/* attn_linear against the naive double-precision recurrence (ref_linear.c):
 * every kind, both algorithms, awkward lengths, strong and weak gates, long
 * sequences, f32/f16/bf16, state continuity, varlen, strides, in-place state,
 * and a case for each validation rule. ATTN_TEST_QUICK=1 shrinks sizes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"
#include "ref_linear.h"

static int failures, checks, quick;
static double worst[6][3];           /* max error seen per kind and dtype */
static const char *kname[] = { "PLAIN", "DECAY", "GLA", "DELTA", "GATED_DELTA", "KDA" };
static const char *dname[] = { "f32", "f16", "bf16" };

static uint64_t rng = 88172645463325252ull;
static double urand(void)              /* [0, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static double uni(double a, double b) { return a + (b - a) * urand(); }

#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* A host tensor of dtype dt holding vals (rounded in place to what it stores). */
typedef struct htensor { attn_tensor t; void *mem; } htensor;

static htensor make(attn_dtype dt, int ndim, const int64_t *shape, double *vals)
{
    htensor h;
    memset(&h, 0, sizeof h);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    const size_t es = dt == ATTN_F32 ? 4 : 2;
    h.mem = calloc((size_t)(n ? n : 1), es);
    for (int64_t i = 0; i < n && vals; i++) {
        if (dt == ATTN_F32) { ((float *)h.mem)[i] = (float)vals[i]; vals[i] = (float)vals[i]; }
        else if (dt == ATTN_F16) {
            uint16_t b = reft_f32_to_f16((float)vals[i]);
            ((uint16_t *)h.mem)[i] = b; vals[i] = reft_f16_to_f32(b);
        } else {
            uint16_t b = reft_f32_to_bf16((float)vals[i]);
            ((uint16_t *)h.mem)[i] = b; vals[i] = reft_bf16_to_f32(b);
        }
    }
    h.t.data = h.mem;
    h.t.dtype = dt;
    h.t.ndim = ndim;
    for (int i = 0; i < ndim; i++) h.t.shape[i] = shape[i];
    return h;
}

static double getd(const htensor *h, int64_t i)
{
    switch (h->t.dtype) {
    case ATTN_F16: return reft_f16_to_f32(((uint16_t *)h->mem)[i]);
    case ATTN_BF16: return reft_bf16_to_f32(((uint16_t *)h->mem)[i]);
    default: return ((float *)h->mem)[i];
    }
}

/* One problem: all inputs as doubles (exactly representable in their dtype). */
typedef struct lcase {
    int kind;
    attn_dtype dt;
    int64_t B, T, H, Dk, Dv;
    int gates;          /* 0 weak [0.9,1], 1 strong [1e-4,0.05], 2 mixed, 3 near one, 4 with resets */
    int decay_param;    /* DECAY: params->decay instead of g */
    int feature, normalize, l2norm;
    int algo, chunk;
    int state_in;
    int align_out;      /* output on a 64-byte boundary (calloc's large blocks are not) */
} lcase;

typedef struct ldata {
    lcase c;
    int64_t nq, nv, ng, nb, ns, nz;
    double *q, *k, *v, *g, *beta, *S0, *z0, decay[64];
    int per_channel, has_g, has_beta;
} ldata;

static int is_delta(int kind)
{
    return kind == ATTN_LINEAR_DELTA || kind == ATTN_LINEAR_GATED_DELTA || kind == ATTN_LINEAR_KDA;
}

static double gate_alpha(int mode)
{
    switch (mode) {
    case 1: return uni(1e-4, 0.05);
    case 2: return urand() < 0.5 ? uni(1e-4, 0.05) : uni(0.9, 1.0);
    case 3: return uni(0.999, 1.0);
    case 4: return urand() < 0.01 ? 0.0 : uni(0.9, 1.0);
    default: return uni(0.9, 1.0);
    }
}

static void gen(ldata *d, const lcase *c)
{
    memset(d, 0, sizeof *d);
    d->c = *c;
    const int64_t B = c->B, T = c->T, H = c->H, Dk = c->Dk, Dv = c->Dv;
    d->nq = B * T * H * Dk; d->nv = B * T * H * Dv;
    d->q = malloc(sizeof(double) * (size_t)(d->nq + 1));
    d->k = malloc(sizeof(double) * (size_t)(d->nq + 1));
    d->v = malloc(sizeof(double) * (size_t)(d->nv + 1));
    for (int64_t i = 0; i < d->nq; i++) { d->q[i] = uni(-1, 1); d->k[i] = uni(-1, 1); }
    for (int64_t i = 0; i < d->nv; i++) d->v[i] = uni(-1, 1);
    if (is_delta(c->kind) && !c->l2norm)   /* keep beta |k|^2 < 2: a stable delta rule */
        for (int64_t i = 0; i < d->nq; i++) d->k[i] *= 1.0 / sqrt((double)Dk);
    d->per_channel = c->kind == ATTN_LINEAR_GLA || c->kind == ATTN_LINEAR_KDA;
    d->has_g = d->per_channel || c->kind == ATTN_LINEAR_GATED_DELTA ||
               (c->kind == ATTN_LINEAR_DECAY && !c->decay_param);
    if (d->has_g) {
        d->ng = B * T * H * (d->per_channel ? Dk : 1);
        d->g = malloc(sizeof(double) * (size_t)d->ng);
        for (int64_t i = 0; i < d->ng; i++) {
            double a = gate_alpha(c->gates);
            d->g[i] = a > 0 ? log(a) : -INFINITY;
        }
    }
    if (c->kind == ATTN_LINEAR_DECAY && c->decay_param)
        for (int64_t h = 0; h < H; h++)
            d->decay[h] = (float)(c->gates == 1 ? uni(0.01, 0.1) : c->gates == 3 ? uni(0.999, 1.0)
                                                                    : uni(0.8, 0.999));
    d->has_beta = is_delta(c->kind);
    if (d->has_beta) {
        d->nb = B * T * H;
        d->beta = malloc(sizeof(double) * (size_t)d->nb);
        for (int64_t i = 0; i < d->nb; i++) d->beta[i] = uni(0.0, 1.0);
    }
    d->ns = B * H * Dk * Dv;
    d->nz = B * H * Dk;
    d->S0 = calloc((size_t)d->ns, sizeof(double));
    d->z0 = calloc((size_t)d->nz, sizeof(double));
    if (c->state_in) {
        for (int64_t i = 0; i < d->ns; i++) d->S0[i] = (float)uni(-0.5, 0.5);
        for (int64_t i = 0; i < d->nz; i++) d->z0[i] = (float)uni(0.0, 2.0);
    }
}

static void ldata_free(ldata *d)
{
    free(d->q); free(d->k); free(d->v); free(d->g); free(d->beta); free(d->S0); free(d->z0);
}

/* Reference over the whole batch: o [B,T,H,Dv], S [B,H,Dk,Dv], z [B,H,Dk]. */
static void reference(const ldata *d, double *o, double *S, double *z)
{
    const lcase *c = &d->c;
    const int64_t T = c->T, H = c->H, Dk = c->Dk, Dv = c->Dv;
    memcpy(S, d->S0, sizeof(double) * (size_t)d->ns);
    memcpy(z, d->z0, sizeof(double) * (size_t)d->nz);
    for (int64_t b = 0; b < c->B; b++) {
        ref_linear_seq a;
        memset(&a, 0, sizeof a);
        a.kind = c->kind; a.feature = c->feature; a.normalize = c->normalize;
        a.l2norm = c->l2norm; a.scale = 1.0 / sqrt((double)Dk); a.eps = 1e-6;
        a.T = T; a.H = H; a.Dk = Dk; a.Dv = Dv;
        a.q = d->q + b * T * H * Dk; a.k = d->k + b * T * H * Dk; a.v = d->v + b * T * H * Dv;
        if (d->has_g) a.g = d->g + b * T * H * (d->per_channel ? Dk : 1);
        a.g_per_channel = d->per_channel;
        if (d->has_beta) a.beta = d->beta + b * T * H;
        if (c->kind == ATTN_LINEAR_DECAY && c->decay_param) {
            static double dd[64];
            for (int64_t h = 0; h < H; h++) dd[h] = (float)d->decay[h];
            a.decay = dd;
        }
        a.S = S + b * H * Dk * Dv; a.z = z + b * H * Dk; a.o = o + b * T * H * Dv;
        ref_linear(&a);
    }
}

static double maxabs(const double *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* Library run. Returns the status; fills o (double) and S/z. */
static attn_status run_lib(attn_context *ctx, ldata *d, double *o, double *S, double *z)
{
    const lcase *c = &d->c;
    const int64_t B = c->B, T = c->T, H = c->H, Dk = c->Dk, Dv = c->Dv;
    const int64_t sq[4] = { B, T, H, Dk }, sv[4] = { B, T, H, Dv }, sg[4] = { B, T, H, Dk };
    const int64_t ss[4] = { B, H, Dk, Dv }, sz[3] = { B, H, Dk };
    htensor q = make(c->dt, 4, sq, d->q), k = make(c->dt, 4, sq, d->k), v = make(c->dt, 4, sv, d->v);
    htensor out = make(c->dt, 4, sv, NULL);
    if (c->align_out) {
        const size_t bytes = (size_t)(B * T * H * Dv) * (c->dt == ATTN_F32 ? 4 : 2);
        free(out.mem);
        if (posix_memalign(&out.mem, 64, bytes ? bytes : 1)) out.mem = NULL;
        if (out.mem) memset(out.mem, 0, bytes);
        out.t.data = out.mem;
    }
    htensor g = { 0 }, beta = { 0 };
    if (d->has_g) g = make(ATTN_F32, d->per_channel ? 4 : 3, sg, d->g);
    if (d->has_beta) beta = make(ATTN_F32, 3, sg, d->beta);
    htensor si = make(ATTN_F32, 4, ss, d->S0), so = make(ATTN_F32, 4, ss, NULL);
    htensor zi = make(ATTN_F32, 3, sz, d->z0), zo = make(ATTN_F32, 3, sz, NULL);
    float decay[64];
    for (int i = 0; i < 64; i++) decay[i] = (float)d->decay[i];
    attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
    p.kind = c->kind;
    p.algo = c->algo;
    p.chunk_size = c->chunk;
    p.feature = c->feature;
    p.normalize = c->normalize;
    p.l2norm_qk = c->l2norm;
    if (c->kind == ATTN_LINEAR_DECAY && c->decay_param) p.decay = decay;
    if (c->normalize) { p.z_in = c->state_in ? &zi.t : NULL; p.z_out = &zo.t; }
    attn_status s = attn_linear(ctx, &p, &q.t, &k.t, &v.t, d->has_g ? &g.t : NULL,
                                d->has_beta ? &beta.t : NULL, c->state_in ? &si.t : NULL,
                                &out.t, &so.t);
    for (int64_t i = 0; i < d->nv; i++) o[i] = getd(&out, i);
    for (int64_t i = 0; i < d->ns; i++) S[i] = getd(&so, i);
    for (int64_t i = 0; i < d->nz && z; i++) z[i] = getd(&zo, i);
    free(q.mem); free(k.mem); free(v.mem); free(out.mem); free(g.mem); free(beta.mem);
    free(si.mem); free(so.mem); free(zi.mem); free(zo.mem);
    return s;
}

static double tol_for(attn_dtype dt) { return dt == ATTN_F32 ? 2e-4 : dt == ATTN_F16 ? 4e-3 : 3e-2; }

/* Runs a case against the reference; error = max |diff| / max |ref| over
 * the output (and, separately, the state). */
static void run_case(attn_context *ctx, const lcase *c, const char *what)
{
    ldata d;
    gen(&d, c);
    double *o = calloc((size_t)d.nv + 1, sizeof(double)), *ro = calloc((size_t)d.nv + 1, sizeof(double));
    double *S = calloc((size_t)d.ns, sizeof(double)), *rS = calloc((size_t)d.ns, sizeof(double));
    double *z = calloc((size_t)d.nz, sizeof(double)), *rz = calloc((size_t)d.nz, sizeof(double));
    reference(&d, ro, rS, rz);
    attn_status s = run_lib(ctx, &d, o, S, z);
    CHECK(s == ATTN_OK, "%s: status %d (%s)", what, (int)s, attn_last_error());
    double eo = 0, es = 0;
    const double mo = maxabs(ro, d.nv) + 1e-30, ms = maxabs(rS, d.ns) + 1e-30;
    int bad = 0;
    for (int64_t i = 0; i < d.nv; i++) {
        double e = fabs(o[i] - ro[i]) / mo;
        if (!(e <= eo)) eo = e;               /* NaN propagates */
        if (o[i] != o[i]) bad = 1;
    }
    for (int64_t i = 0; i < d.ns; i++) {
        double e = fabs(S[i] - rS[i]) / ms;
        if (!(e <= es)) es = e;
    }
    double tol = tol_for(c->dt);
    const int di = c->dt == ATTN_F32 ? 0 : c->dt == ATTN_F16 ? 1 : 2;
    double ew = eo > es * (c->dt == ATTN_F32 ? 1 : 0) ? eo : es;
    if (ew > worst[c->kind][di] || ew != ew) worst[c->kind][di] = ew;
    CHECK(!bad && eo <= tol && es <= 2e-4 + (c->dt == ATTN_F32 ? 0 : tol),
          "%s: %s %s B=%lld T=%lld H=%lld Dk=%lld Dv=%lld gates=%d algo=%d chunk=%d: "
          "out err %.3g, state err %.3g (tol %.3g)", what, kname[c->kind], dname[di],
          (long long)c->B, (long long)c->T, (long long)c->H, (long long)c->Dk, (long long)c->Dv,
          c->gates, c->algo, c->chunk, eo, es, tol);
    free(o); free(ro); free(S); free(rS); free(z); free(rz);
    ldata_free(&d);
}

static void test_varlen(attn_context *ctx);

static lcase base(int kind)
{
    lcase c;
    memset(&c, 0, sizeof c);
    c.kind = kind; c.dt = ATTN_F32; c.B = 2; c.T = 65; c.H = 2; c.Dk = 32; c.Dv = 24;
    c.l2norm = is_delta(kind);
    c.state_in = 1;
    return c;
}

static void test_against_reference(attn_context *ctx)
{
    const int64_t lens[] = { 1, 63, 64, 65, 1000 };
    for (int kind = 0; kind <= ATTN_LINEAR_KDA; kind++) {
        for (int li = 0; li < 5; li++)
            for (int algo = 1; algo <= 2; algo++) {
                lcase c = base(kind);
                c.T = lens[li];
                if (quick && c.T == 1000) c.T = 300;
                c.algo = algo;
                run_case(ctx, &c, "lengths");
            }
        /* auto algorithm, no state_in */
        lcase c = base(kind);
        c.state_in = 0;
        c.T = 17;
        run_case(ctx, &c, "auto");
        c.T = 5;
        run_case(ctx, &c, "auto short");
        /* dtypes */
        for (int dt = ATTN_F16; dt <= ATTN_BF16; dt++)
            for (int algo = 1; algo <= 2; algo++) {
                c = base(kind);
                c.dt = (attn_dtype)dt; c.T = 130; c.algo = algo;
                run_case(ctx, &c, "dtype");
            }
    }
    /* gate strengths */
    const int gated[] = { ATTN_LINEAR_DECAY, ATTN_LINEAR_GLA, ATTN_LINEAR_GATED_DELTA, ATTN_LINEAR_KDA };
    for (int gi = 0; gi < 4; gi++)
        for (int gates = 0; gates <= 4; gates++)
            for (int algo = 1; algo <= 2; algo++) {
                lcase c = base(gated[gi]);
                c.T = quick ? 100 : 300; c.gates = gates; c.algo = algo;
                run_case(ctx, &c, "gates");
                if (gated[gi] == ATTN_LINEAR_DECAY && gates != 2 && gates != 4) {
                    c.decay_param = 1;
                    run_case(ctx, &c, "decay param");
                }
            }
    /* head dims, chunk sizes */
    const int64_t dims[][2] = { { 64, 64 }, { 128, 128 }, { 40, 80 }, { 1, 1 }, { 17, 5 }, { 96, 32 } };
    for (int kind = 0; kind <= ATTN_LINEAR_KDA; kind++)
        for (int di = 0; di < (quick ? 3 : 6); di++) {
            lcase c = base(kind);
            c.Dk = dims[di][0]; c.Dv = dims[di][1]; c.B = 1; c.T = quick ? 70 : 150;
            c.algo = 2;
            run_case(ctx, &c, "dims");
        }
    const int chunks[] = { 1, 16, 32, 100, 256 };
    for (int kind = 0; kind <= ATTN_LINEAR_KDA; kind++)
        for (int ci = 0; ci < 5; ci += quick ? 2 : 1) {
            lcase c = base(kind);
            c.algo = 2; c.chunk = chunks[ci]; c.T = quick ? 150 : 300; c.gates = kind == ATTN_LINEAR_KDA ? 2 : 0;
            run_case(ctx, &c, "chunk size");
        }
    /* feature maps and normalisation */
    for (int f = 0; f <= 2; f++)
        for (int nrm = 0; nrm <= 1; nrm++)
            for (int algo = 1; algo <= 2; algo++) {
                lcase c = base(ATTN_LINEAR_PLAIN);
                c.feature = f; c.normalize = nrm && f != 0; c.algo = algo; c.T = 200;
                run_case(ctx, &c, "feature");
                c.kind = ATTN_LINEAR_GLA; c.normalize = 0;
                run_case(ctx, &c, "feature gla");
                c.kind = ATTN_LINEAR_DECAY;
                run_case(ctx, &c, "feature decay");
            }
    /* delta without l2 norm (k scaled small instead) */
    for (int kind = ATTN_LINEAR_DELTA; kind <= ATTN_LINEAR_KDA; kind++)
        for (int algo = 1; algo <= 2; algo++) {
            lcase c = base(kind);
            c.l2norm = 0; c.algo = algo; c.T = 200;
            run_case(ctx, &c, "no l2norm");
        }
}

static void test_long(attn_context *ctx)
{
    const int64_t T = quick ? 2048 : 16384;
    struct { int kind, gates, feature, normalize, decay_param; } L[] = {
        { ATTN_LINEAR_GLA, 3, 0, 0, 0 }, { ATTN_LINEAR_GLA, 2, 0, 0, 0 },
        { ATTN_LINEAR_KDA, 0, 0, 0, 0 }, { ATTN_LINEAR_KDA, 1, 0, 0, 0 },
        { ATTN_LINEAR_GATED_DELTA, 3, 0, 0, 0 }, { ATTN_LINEAR_DELTA, 0, 0, 0, 0 },
        { ATTN_LINEAR_DECAY, 3, 0, 0, 1 }, { ATTN_LINEAR_PLAIN, 0, 1, 1, 0 },
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i += quick ? 2 : 1) {
        lcase c = base(L[i].kind);
        c.B = 1; c.H = 1; c.Dk = 16; c.Dv = 16; c.T = T; c.algo = 2;
        c.gates = L[i].gates; c.feature = L[i].feature; c.normalize = L[i].normalize;
        c.decay_param = L[i].decay_param;
        run_case(ctx, &c, "long");
    }
}

/* Outputs of 8 MiB and more (f32, contiguous rows) are written with
 * streaming stores: rows whose starts are not vector-aligned (Dv = 40) and
 * aligned ones (Dv = 64), a plain and a delta kind; with weak gates the
 * per-channel kinds' chunks take one gate reference, whose products stream
 * the output rows themselves. */
static void test_streamed_output(attn_context *ctx)
{
    struct { int kind; int64_t T, H, Dv; int gates; } L[] = {
        { ATTN_LINEAR_GLA, 13200, 4, 40, 2 }, { ATTN_LINEAR_DELTA, 16384, 2, 64, 2 },
        { ATTN_LINEAR_GLA, 8192, 4, 64, 0 }, { ATTN_LINEAR_KDA, 8192, 4, 64, 0 },
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i += quick ? 2 : 1) {
        lcase c = base(L[i].kind);
        c.B = 1; c.T = L[i].T; c.H = L[i].H; c.Dk = 16; c.Dv = L[i].Dv; c.algo = 2;
        c.gates = L[i].gates; c.align_out = 1;
        run_case(ctx, &c, "streamed output");
    }
}

/* The sequence-parallel chunkwise form (fewer (sequence, head) pairs than
 * threads: PLAIN, DECAY, GLA) on a context with many threads: one pair cut
 * into segments of every size (some empty), chunk sizes, state in, and
 * varlen with a sequence shorter than a chunk. */
static void test_segments(attn_context *ctx16)
{
    const int64_t lens[] = { 30, 100, 1000 };
    for (int kind = ATTN_LINEAR_PLAIN; kind <= ATTN_LINEAR_GLA; kind++)
        for (int li = 0; li < 3; li++)
            for (int chunk = 16; chunk <= 64; chunk *= 4) {
                lcase c = base(kind);
                c.B = 1; c.H = 1; c.T = lens[li]; c.algo = 2; c.chunk = chunk; c.gates = 2;
                c.decay_param = kind == ATTN_LINEAR_DECAY && li == 1;
                run_case(ctx16, &c, "segments");
            }
    test_varlen(ctx16);
}

/* chunkwise == recurrent, directly. */
static void test_algos_agree(attn_context *ctx)
{
    for (int kind = 0; kind <= ATTN_LINEAR_KDA; kind++) {
        lcase c = base(kind);
        c.T = 200; c.gates = 2; c.Dk = 64; c.Dv = 64;
        ldata d;
        gen(&d, &c);
        double *o1 = calloc((size_t)d.nv, sizeof(double)), *o2 = calloc((size_t)d.nv, sizeof(double));
        double *s1 = calloc((size_t)d.ns, sizeof(double)), *s2 = calloc((size_t)d.ns, sizeof(double));
        d.c.algo = 1; run_lib(ctx, &d, o1, s1, NULL);
        d.c.algo = 2; run_lib(ctx, &d, o2, s2, NULL);
        double e = 0, m = maxabs(o1, d.nv), es = 0, ms = maxabs(s1, d.ns);
        for (int64_t i = 0; i < d.nv; i++) e = fmax(e, fabs(o1[i] - o2[i]) / m);
        for (int64_t i = 0; i < d.ns; i++) es = fmax(es, fabs(s1[i] - s2[i]) / ms);
        CHECK(e < 1e-4 && es < 1e-4, "%s: chunkwise vs recurrent differ: out %.3g state %.3g",
              kname[kind], e, es);
        free(o1); free(o2); free(s1); free(s2);
        ldata_free(&d);
    }
}

/* [0,T) in one call == [0,t) then [t,T) with the state (and z) passed along. */
static void test_continuity(attn_context *ctx)
{
    const int64_t splits[] = { 1, 64, 77, 199 };
    for (int kind = 0; kind <= ATTN_LINEAR_KDA; kind++)
        for (int si = 0; si < 4; si++) {
            lcase c = base(kind);
            c.T = 200; c.gates = 2;
            c.feature = kind == ATTN_LINEAR_PLAIN ? ATTN_LINEAR_FEATURE_ELU1 : 0;
            c.normalize = kind == ATTN_LINEAR_PLAIN;
            ldata d;
            gen(&d, &c);
            double *o = calloc((size_t)d.nv, sizeof(double)), *S = calloc((size_t)d.ns, sizeof(double));
            double *z = calloc((size_t)d.nz, sizeof(double));
            d.c.algo = 2;
            run_lib(ctx, &d, o, S, z);
            /* split: copy the token ranges of every tensor (layout [B,T,...]) */
            const int64_t t = splits[si], B = c.B, T = c.T;
            double *o2 = calloc((size_t)d.nv, sizeof(double));
            double *S2 = calloc((size_t)d.ns, sizeof(double)), *z2 = calloc((size_t)d.nz, sizeof(double));
            for (int part = 0; part < 2; part++) {
                const int64_t t0 = part ? t : 0, n = part ? T - t : t;
                ldata e = d;
                e.c.T = n;
                e.c.algo = part ? 2 : 1;        /* mix the algorithms */
                const int64_t rq = c.H * c.Dk, rv = c.H * c.Dv, rg = c.H * (d.per_channel ? c.Dk : 1);
                e.q = malloc(sizeof(double) * (size_t)(B * n * rq + 1));
                e.k = malloc(sizeof(double) * (size_t)(B * n * rq + 1));
                e.v = malloc(sizeof(double) * (size_t)(B * n * rv + 1));
                e.g = d.has_g ? malloc(sizeof(double) * (size_t)(B * n * rg + 1)) : NULL;
                e.beta = d.has_beta ? malloc(sizeof(double) * (size_t)(B * n * c.H + 1)) : NULL;
                for (int64_t b = 0; b < B; b++) {
                    memcpy(e.q + b * n * rq, d.q + (b * T + t0) * rq, sizeof(double) * (size_t)(n * rq));
                    memcpy(e.k + b * n * rq, d.k + (b * T + t0) * rq, sizeof(double) * (size_t)(n * rq));
                    memcpy(e.v + b * n * rv, d.v + (b * T + t0) * rv, sizeof(double) * (size_t)(n * rv));
                    if (e.g) memcpy(e.g + b * n * rg, d.g + (b * T + t0) * rg, sizeof(double) * (size_t)(n * rg));
                    if (e.beta) memcpy(e.beta + b * n * c.H, d.beta + (b * T + t0) * c.H, sizeof(double) * (size_t)(n * c.H));
                }
                e.nq = B * n * rq; e.nv = B * n * rv;
                if (part) { e.S0 = S2; e.z0 = z2; }
                double *op = calloc((size_t)e.nv + 1, sizeof(double));
                double *Sp = calloc((size_t)d.ns, sizeof(double)), *zp = calloc((size_t)d.nz, sizeof(double));
                attn_status s = run_lib(ctx, &e, op, Sp, zp);
                CHECK(s == ATTN_OK, "continuity call: %s", attn_last_error());
                for (int64_t b = 0; b < B; b++)
                    memcpy(o2 + (b * T + t0) * rv, op + b * n * rv, sizeof(double) * (size_t)(n * rv));
                memcpy(S2, Sp, sizeof(double) * (size_t)d.ns);
                memcpy(z2, zp, sizeof(double) * (size_t)d.nz);
                free(op); free(Sp); free(zp);
                free(e.q); free(e.k); free(e.v); free(e.g); free(e.beta);
            }
            double eo = 0, es = 0, mo = maxabs(o, d.nv), ms = maxabs(S, d.ns);
            for (int64_t i = 0; i < d.nv; i++) eo = fmax(eo, fabs(o[i] - o2[i]) / mo);
            for (int64_t i = 0; i < d.ns; i++) es = fmax(es, fabs(S[i] - S2[i]) / ms);
            CHECK(eo < 1e-4 && es < 1e-4, "%s: split at %lld differs: out %.3g state %.3g",
                  kname[kind], (long long)t, eo, es);
            free(o); free(S); free(z); free(o2); free(S2); free(z2);
            ldata_free(&d);
        }
}

/* Packed sequences with a state each == separate calls (reference). */
static void test_varlen(attn_context *ctx)
{
    const int32_t lens[3] = { 5, 70, 131 };
    int32_t cu[4] = { 0, 5, 75, 206 };
    const int64_t total = 210, H = 2, Dk = 32, Dv = 24;   /* 4 padding tokens */
    for (int kind = 0; kind <= ATTN_LINEAR_KDA; kind++)
        for (int algo = 0; algo <= 2; algo++) {
            lcase c = base(kind);
            c.B = 1; c.T = total; c.H = H; c.Dk = Dk; c.Dv = Dv; c.gates = 2;
            ldata d;
            gen(&d, &c);
            /* per-sequence states */
            double *S0 = malloc(sizeof(double) * (size_t)(3 * H * Dk * Dv));
            for (int64_t i = 0; i < 3 * H * Dk * Dv; i++) S0[i] = (float)uni(-0.5, 0.5);
            const int64_t sq[4] = { 1, total, H, Dk }, sv[4] = { 1, total, H, Dv };
            const int64_t ss[4] = { 3, H, Dk, Dv };
            htensor q = make(ATTN_F32, 4, sq, d.q), k = make(ATTN_F32, 4, sq, d.k);
            htensor v = make(ATTN_F32, 4, sv, d.v), out = make(ATTN_F32, 4, sv, NULL);
            for (int64_t i = 0; i < total * H * Dv; i++) ((float *)out.mem)[i] = 7.0f;
            htensor g = { 0 }, beta = { 0 };
            if (d.has_g) g = make(ATTN_F32, d.per_channel ? 4 : 3, sq, d.g);
            if (d.has_beta) beta = make(ATTN_F32, 3, sq, d.beta);
            htensor si = make(ATTN_F32, 4, ss, S0), so = make(ATTN_F32, 4, ss, NULL);
            attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
            p.kind = kind; p.algo = algo; p.l2norm_qk = c.l2norm;
            p.cu_seqlens = cu; p.num_seqs = 3;
            attn_status s = attn_linear(ctx, &p, &q.t, &k.t, &v.t, d.has_g ? &g.t : NULL,
                                        d.has_beta ? &beta.t : NULL, &si.t, &out.t, &so.t);
            CHECK(s == ATTN_OK, "varlen: %s", attn_last_error());
            double eo = 0, es = 0;
            for (int sidx = 0; sidx < 3; sidx++) {
                const int64_t T = lens[sidx], t0 = cu[sidx];
                ref_linear_seq a;
                memset(&a, 0, sizeof a);
                a.kind = kind; a.l2norm = c.l2norm; a.scale = 1.0 / sqrt((double)Dk);
                a.T = T; a.H = H; a.Dk = Dk; a.Dv = Dv;
                a.q = d.q + t0 * H * Dk; a.k = d.k + t0 * H * Dk; a.v = d.v + t0 * H * Dv;
                a.g = d.has_g ? d.g + t0 * H * (d.per_channel ? Dk : 1) : NULL;
                a.g_per_channel = d.per_channel;
                a.beta = d.has_beta ? d.beta + t0 * H : NULL;
                double *S = malloc(sizeof(double) * (size_t)(H * Dk * Dv));
                memcpy(S, S0 + sidx * H * Dk * Dv, sizeof(double) * (size_t)(H * Dk * Dv));
                double *o = malloc(sizeof(double) * (size_t)(T * H * Dv + 1));
                a.S = S; a.o = o;
                ref_linear(&a);
                double mo = maxabs(o, T * H * Dv) + 1e-30, ms = maxabs(S, H * Dk * Dv);
                for (int64_t i = 0; i < T * H * Dv; i++)
                    eo = fmax(eo, fabs(((float *)out.mem)[t0 * H * Dv + i] - o[i]) / mo);
                for (int64_t i = 0; i < H * Dk * Dv; i++)
                    es = fmax(es, fabs(((float *)so.mem)[sidx * H * Dk * Dv + i] - S[i]) / ms);
                free(S); free(o);
            }
            int untouched = 1;
            for (int64_t i = 206 * H * Dv; i < total * H * Dv; i++)
                untouched &= ((float *)out.mem)[i] == 7.0f;
            CHECK(eo < 2e-4 && es < 2e-4 && untouched, "varlen %s algo %d: out %.3g state %.3g "
                  "padding untouched %d", kname[kind], algo, eo, es, untouched);
            free(q.mem); free(k.mem); free(v.mem); free(out.mem); free(g.mem); free(beta.mem);
            free(si.mem); free(so.mem); free(S0);
            ldata_free(&d);
        }
}

/* [B,H,S,D] storage passed as strided views; state updated in place. */
static void test_strides_inplace(attn_context *ctx)
{
    for (int kind = 0; kind <= ATTN_LINEAR_KDA; kind++) {
        const int64_t B = 2, T = 70, H = 3, Dk = 16, Dv = 8;
        lcase c = base(kind);
        c.B = B; c.T = T; c.H = H; c.Dk = Dk; c.Dv = Dv; c.gates = 2;
        ldata d;
        gen(&d, &c);
        double *ro = calloc((size_t)d.nv, sizeof(double)), *rS = calloc((size_t)d.ns, sizeof(double));
        double *rz = calloc((size_t)d.nz, sizeof(double));
        reference(&d, ro, rS, rz);
        /* transposed storage: [B,H,T,D] */
        float *qs = malloc(sizeof(float) * (size_t)d.nq), *ksb = malloc(sizeof(float) * (size_t)d.nq);
        float *vs = malloc(sizeof(float) * (size_t)d.nv), *os = calloc((size_t)d.nv, sizeof(float));
        for (int64_t b = 0; b < B; b++) for (int64_t t = 0; t < T; t++) for (int64_t h = 0; h < H; h++) {
            for (int64_t x = 0; x < Dk; x++) {
                qs[((b * H + h) * T + t) * Dk + x] = (float)d.q[((b * T + t) * H + h) * Dk + x];
                ksb[((b * H + h) * T + t) * Dk + x] = (float)d.k[((b * T + t) * H + h) * Dk + x];
            }
            for (int64_t x = 0; x < Dv; x++)
                vs[((b * H + h) * T + t) * Dv + x] = (float)d.v[((b * T + t) * H + h) * Dv + x];
        }
        attn_tensor q = attn_tensor_4d(qs, ATTN_F32, B, T, H, Dk), k = attn_tensor_4d(ksb, ATTN_F32, B, T, H, Dk);
        attn_tensor v = attn_tensor_4d(vs, ATTN_F32, B, T, H, Dv), o = attn_tensor_4d(os, ATTN_F32, B, T, H, Dv);
        int64_t stk[4] = { H * T * Dk, Dk, T * Dk, 1 }, stv[4] = { H * T * Dv, Dv, T * Dv, 1 };
        memcpy(q.stride, stk, sizeof stk); memcpy(k.stride, stk, sizeof stk);
        memcpy(v.stride, stv, sizeof stv); memcpy(o.stride, stv, sizeof stv);
        const int64_t sg[4] = { B, T, H, Dk }, ss[4] = { B, H, Dk, Dv };
        htensor g = { 0 }, beta = { 0 };
        if (d.has_g) g = make(ATTN_F32, d.per_channel ? 4 : 3, sg, d.g);
        if (d.has_beta) beta = make(ATTN_F32, 3, sg, d.beta);
        htensor st = make(ATTN_F32, 4, ss, d.S0);
        attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
        p.kind = kind; p.l2norm_qk = c.l2norm;
        attn_status s = attn_linear(ctx, &p, &q, &k, &v, d.has_g ? &g.t : NULL,
                                    d.has_beta ? &beta.t : NULL, &st.t, &o, &st.t);
        CHECK(s == ATTN_OK, "strided/in-place: %s", attn_last_error());
        double eo = 0, es = 0, mo = maxabs(ro, d.nv), ms = maxabs(rS, d.ns);
        for (int64_t b = 0; b < B; b++) for (int64_t t = 0; t < T; t++) for (int64_t h = 0; h < H; h++)
            for (int64_t x = 0; x < Dv; x++)
                eo = fmax(eo, fabs(os[((b * H + h) * T + t) * Dv + x] - ro[((b * T + t) * H + h) * Dv + x]) / mo);
        for (int64_t i = 0; i < d.ns; i++) es = fmax(es, fabs(((float *)st.mem)[i] - rS[i]) / ms);
        CHECK(eo < 2e-4 && es < 2e-4, "strided/in-place %s: out %.3g state %.3g", kname[kind], eo, es);
        /* state_out as a transposed view: the state goes through the
         * workspace instead of living in state_out's rows. */
        htensor si = make(ATTN_F32, 4, ss, d.S0), so = make(ATTN_F32, 4, ss, NULL);
        const int64_t sst[4] = { H * Dk * Dv, Dk * Dv, 1, Dk };
        memcpy(so.t.stride, sst, sizeof sst);
        s = attn_linear(ctx, &p, &q, &k, &v, d.has_g ? &g.t : NULL, d.has_beta ? &beta.t : NULL,
                        &si.t, &o, &so.t);
        CHECK(s == ATTN_OK, "transposed state_out: %s", attn_last_error());
        es = 0;
        for (int64_t bh = 0; bh < B * H; bh++) for (int64_t i = 0; i < Dk; i++) for (int64_t j = 0; j < Dv; j++)
            es = fmax(es, fabs(((float *)so.mem)[(bh * Dv + j) * Dk + i] - rS[(bh * Dk + i) * Dv + j]) / ms);
        CHECK(es < 2e-4, "transposed state_out %s: state %.3g", kname[kind], es);
        free(si.mem); free(so.mem);
        free(qs); free(ksb); free(vs); free(os); free(g.mem); free(beta.mem); free(st.mem);
        free(ro); free(rS); free(rz);
        ldata_free(&d);
    }
}

/* Every validation rule gives ATTN_ERR_INVALID_ARGUMENT and leaves out untouched. */
static void test_bad_input(attn_context *ctx)
{
    const int64_t B = 1, T = 4, H = 2, Dk = 8, Dv = 8;
    static float qb[64], kb[64], vb[64], ob[64], gb[64], gsb[8], bb[8], sb[256], s2[256], zb[16];
    for (int i = 0; i < 64; i++) { qb[i] = kb[i] = vb[i] = 0.1f; ob[i] = 5.0f; gb[i] = -0.1f; }
    for (int i = 0; i < 8; i++) { gsb[i] = -0.1f; bb[i] = 0.5f; }
    attn_tensor q = attn_tensor_4d(qb, ATTN_F32, B, T, H, Dk), k = attn_tensor_4d(kb, ATTN_F32, B, T, H, Dk);
    attn_tensor v = attn_tensor_4d(vb, ATTN_F32, B, T, H, Dv), o = attn_tensor_4d(ob, ATTN_F32, B, T, H, Dv);
    attn_tensor g4 = attn_tensor_4d(gb, ATTN_F32, B, T, H, Dk);
    attn_tensor g3 = { 0 }; g3.data = gsb; g3.dtype = ATTN_F32; g3.ndim = 3;
    g3.shape[0] = B; g3.shape[1] = T; g3.shape[2] = H;
    attn_tensor be = g3; be.data = bb;
    attn_tensor st = attn_tensor_4d(sb, ATTN_F32, B, H, Dk, Dv);
    attn_tensor z = { 0 }; z.data = zb; z.dtype = ATTN_F32; z.ndim = 3; z.shape[0] = B; z.shape[1] = H; z.shape[2] = Dk;
    float decay[2] = { 0.9f, 0.8f }, baddecay[2] = { 0.9f, 1.5f };
    int32_t cu_bad[3] = { 0, 3, 2 };

#define BAD(desc, P, Q, K, V, G, BETA, SI, O, SO) do { \
        attn_status s_ = attn_linear(ctx, P, Q, K, V, G, BETA, SI, O, SO); \
        CHECK(s_ == ATTN_ERR_INVALID_ARGUMENT && attn_last_error()[0], "bad input '%s' gave %d", desc, (int)s_); \
        CHECK(ob[0] == 5.0f, "bad input '%s' wrote out", desc); } while (0)

    attn_linear_params p = ATTN_LINEAR_PARAMS_INIT, pp;
    /* sanity: valid calls work */
    pp = p; pp.kind = ATTN_LINEAR_GLA;
    { attn_tensor o2 = attn_tensor_4d(s2, ATTN_F32, B, T, H, Dv);
      CHECK(attn_linear(ctx, &pp, &q, &k, &v, &g4, NULL, NULL, &o2, &st) == ATTN_OK, "valid GLA: %s",
            attn_last_error()); }
    /* B = 0 (no sequence, no state row) does nothing and succeeds, with every
     * kind and both forms */
    for (int kind = 0; kind < 6; kind++)
        for (int a = 0; a < 2; a++) {
            attn_tensor x[5] = { q, k, v, o, st };
            for (int i = 0; i < 5; i++)
                x[i].shape[0] = 0;
            attn_tensor gx = kind == ATTN_LINEAR_GLA || kind == ATTN_LINEAR_KDA ? g4 : g3;
            attn_tensor bx = be;
            gx.shape[0] = bx.shape[0] = 0;
            const int gated = kind == ATTN_LINEAR_DECAY || kind == ATTN_LINEAR_GLA ||
                              kind == ATTN_LINEAR_GATED_DELTA || kind == ATTN_LINEAR_KDA;
            pp = p;
            pp.kind = (attn_linear_kind)kind;
            pp.algo = a ? ATTN_LINEAR_ALGO_RECURRENT : ATTN_LINEAR_ALGO_CHUNKWISE;
            attn_status s_ = attn_linear(ctx, &pp, &x[0], &x[1], &x[2], gated ? &gx : NULL,
                                         is_delta(kind) ? &bx : NULL, &x[4], &x[3], &x[4]);
            CHECK(s_ == ATTN_OK, "B = 0 (kind %d, algo %d): %d %s", kind, (int)pp.algo, (int)s_,
                  attn_last_error());
            CHECK(ob[0] == 5.0f, "B = 0 (kind %d) wrote out", kind);
        }
    /* no token and no state out: nothing to do, however many heads are named */
    {
        attn_tensor x[5] = { q, k, v, o, g3 };
        for (int i = 0; i < 5; i++) {
            x[i].shape[1] = 0;
            x[i].shape[2] = INT64_C(1) << 40;
        }
        pp = p;
        pp.kind = ATTN_LINEAR_DECAY;
        attn_status s_ = attn_linear(ctx, &pp, &x[0], &x[1], &x[2], &x[4], NULL, NULL, &x[3], NULL);
        CHECK(s_ == ATTN_OK, "T = 0 with 2^40 heads: %d %s", (int)s_, attn_last_error());
    }
    { attn_status s_ = attn_linear(NULL, &p, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
      CHECK(s_ == ATTN_ERR_INVALID_ARGUMENT, "NULL ctx"); }
    BAD("NULL params", NULL, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    BAD("NULL q", &p, NULL, &k, &v, NULL, NULL, NULL, &o, NULL);
    BAD("NULL k", &p, &q, NULL, &v, NULL, NULL, NULL, &o, NULL);
    BAD("NULL v", &p, &q, &k, NULL, NULL, NULL, NULL, &o, NULL);
    { attn_status s_ = attn_linear(ctx, &p, &q, &k, &v, NULL, NULL, NULL, NULL, NULL);
      CHECK(s_ == ATTN_ERR_INVALID_ARGUMENT, "NULL out"); }
    pp = p; pp.size = 8;                         BAD("params size", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.kind = (attn_linear_kind)6;       BAD("bad kind", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.kind = (attn_linear_kind)-1;      BAD("negative kind", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.algo = (attn_linear_algo)3;       BAD("bad algo", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.feature = (attn_linear_feature)3; BAD("bad feature", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.chunk_size = 257;                 BAD("chunk too big", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.chunk_size = -1;                  BAD("chunk negative", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.scale = NAN;                      BAD("scale nan", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    /* gates and beta per kind */
    pp = p; pp.kind = ATTN_LINEAR_GLA;           BAD("GLA without g", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_GLA;           BAD("GLA with scalar g", &pp, &q, &k, &v, &g3, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_KDA;           BAD("KDA without g", &pp, &q, &k, &v, NULL, &be, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_KDA;           BAD("KDA without beta", &pp, &q, &k, &v, &g4, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_KDA;           BAD("KDA scalar g", &pp, &q, &k, &v, &g3, &be, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_GATED_DELTA;   BAD("GDN without g", &pp, &q, &k, &v, NULL, &be, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_GATED_DELTA;   BAD("GDN per-channel g", &pp, &q, &k, &v, &g4, &be, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_GATED_DELTA;   BAD("GDN without beta", &pp, &q, &k, &v, &g3, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_DELTA;         BAD("DELTA without beta", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_DELTA;         BAD("DELTA with g", &pp, &q, &k, &v, &g3, &be, NULL, &o, NULL);
    pp = p;                                      BAD("PLAIN with g", &pp, &q, &k, &v, &g3, NULL, NULL, &o, NULL);
    pp = p;                                      BAD("PLAIN with beta", &pp, &q, &k, &v, NULL, &be, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_DECAY;         BAD("DECAY without gate", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_DECAY; pp.decay = decay; BAD("DECAY both gates", &pp, &q, &k, &v, &g3, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_DECAY;         BAD("DECAY per-channel g", &pp, &q, &k, &v, &g4, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_DECAY; pp.decay = baddecay; BAD("decay > 1", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.decay = decay;                    BAD("decay on PLAIN", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_DELTA; pp.feature = ATTN_LINEAR_FEATURE_RELU;
    BAD("feature on delta", &pp, &q, &k, &v, NULL, &be, NULL, &o, NULL);
    pp = p; pp.kind = ATTN_LINEAR_GLA; pp.normalize = 1; BAD("normalize GLA", &pp, &q, &k, &v, &g4, NULL, NULL, &o, NULL);
    pp = p; pp.z_out = &z;                       BAD("z without normalize", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    pp = p; pp.normalize = 1; pp.norm_eps = -1;  BAD("negative eps", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    /* shapes */
    { attn_tensor x = g4; x.shape[3] = Dk + 1; pp = p; pp.kind = ATTN_LINEAR_GLA;
      BAD("g wrong Dk", &pp, &q, &k, &v, &x, NULL, NULL, &o, NULL); }
    { attn_tensor x = g3; x.shape[1] = T + 1; pp = p; pp.kind = ATTN_LINEAR_GATED_DELTA;
      BAD("g wrong T", &pp, &q, &k, &v, &x, &be, NULL, &o, NULL); }
    { attn_tensor x = be; x.shape[2] = 1; pp = p; pp.kind = ATTN_LINEAR_DELTA;
      BAD("beta wrong shape", &pp, &q, &k, &v, NULL, &x, NULL, &o, NULL); }
    { attn_tensor x = st; x.shape[2] = Dk - 1; BAD("state_in shape", &p, &q, &k, &v, NULL, NULL, &x, &o, NULL); }
    { attn_tensor x = st; x.shape[3] = Dv + 1; BAD("state_out shape", &p, &q, &k, &v, NULL, NULL, NULL, &o, &x); }
    { attn_tensor x = st; x.dtype = ATTN_F16; BAD("state f16", &p, &q, &k, &v, NULL, NULL, &x, &o, NULL); }
    { attn_tensor x = k; x.shape[3] = Dk / 2; BAD("k dim", &p, &q, &x, &v, NULL, NULL, NULL, &o, NULL); }
    { attn_tensor x = v; x.shape[1] = T - 1; BAD("v len", &p, &q, &k, &x, NULL, NULL, NULL, &o, NULL); }
    { attn_tensor x = o; x.shape[3] = Dv - 1; BAD("out dim", &p, &q, &k, &v, NULL, NULL, NULL, &x, NULL); }
    { attn_tensor x = k; x.dtype = ATTN_F16; BAD("dtype mismatch", &p, &q, &x, &v, NULL, NULL, NULL, &o, NULL); }
    { attn_tensor x = q; x.dtype = ATTN_U8; BAD("q u8", &p, &x, &k, &v, NULL, NULL, NULL, &o, NULL); }
    { attn_tensor x = q; x.ndim = 3; BAD("q ndim", &p, &x, &k, &v, NULL, NULL, NULL, &o, NULL); }
    { attn_tensor x = q; x.data = NULL; BAD("q data NULL", &p, &x, &k, &v, NULL, NULL, NULL, &o, NULL); }
    /* aliasing */
    { attn_tensor x = o; x.data = qb; BAD("out aliases q", &p, &q, &k, &v, NULL, NULL, NULL, &x, NULL); }
    { attn_tensor x = st; x.data = vb; BAD("state_out aliases v", &p, &q, &k, &v, NULL, NULL, NULL, &o, &x); }
    { attn_tensor x = st; x.data = sb + 1; BAD("state_out overlaps state_in", &p, &q, &k, &v, NULL, NULL, &st, &o, &x); }
    { attn_tensor x = st; x.data = ob; BAD("state_out aliases out", &p, &q, &k, &v, NULL, NULL, NULL, &o, &x); }
    { attn_tensor x = o; x.stride[0] = 1; x.stride[1] = 1; x.stride[2] = 1; x.stride[3] = 1;
      BAD("out self-overlap", &p, &q, &k, &v, NULL, NULL, NULL, &x, NULL); }
    /* varlen */
    pp = p; pp.cu_seqlens = cu_bad; pp.num_seqs = 2;
    BAD("cu not monotonic", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    { int32_t cu[2] = { 0, 9 }; pp = p; pp.cu_seqlens = cu; pp.num_seqs = 1;
      BAD("cu past end", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL); }
    { int32_t cu[2] = { 0, 3 }; pp = p; pp.cu_seqlens = cu; pp.num_seqs = 0;
      BAD("num_seqs 0", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL); }
    { int32_t cu[3] = { 0, 2, 4 }; pp = p; pp.cu_seqlens = cu; pp.num_seqs = 2;
      BAD("varlen state has B rows", &pp, &q, &k, &v, NULL, NULL, &st, &o, NULL); }
    pp = p; pp.num_seqs = 2;                     BAD("num_seqs without cu", &pp, &q, &k, &v, NULL, NULL, NULL, &o, NULL);
    /* ok: in-place state */
    CHECK(attn_linear(ctx, &p, &q, &k, &v, NULL, NULL, &st, &o, &st) == ATTN_OK, "in-place state: %s",
          attn_last_error());
#undef BAD
}

int main(void)
{
    const char *qe = getenv("ATTN_TEST_QUICK");
    quick = qe && *qe && strcmp(qe, "0");
    attn_context *ctx = NULL, *sctx = NULL;
    if (attn_context_create(NULL, &ctx) != ATTN_OK) { printf("FAIL: context\n"); return 1; }
    attn_options so = ATTN_OPTIONS_INIT;
    so.max_isa = ATTN_ISA_SCALAR;
    if (attn_context_create(&so, &sctx) != ATTN_OK) { printf("FAIL: context\n"); return 1; }
    attn_device_info info = ATTN_DEVICE_INFO_INIT;
    attn_device_get_info(ctx, 0, &info);
    printf("test_linear: isa %s%s\n", attn_isa_name(info.isa), quick ? " (quick)" : "");

    test_bad_input(ctx);
    test_against_reference(ctx);
    test_long(ctx);
    test_algos_agree(ctx);
    test_continuity(ctx);
    test_varlen(ctx);
    test_strides_inplace(ctx);
    test_streamed_output(ctx);
    const char *nothreads = getenv("ATTN_TEST_NO_THREADS");
    if (!(nothreads && *nothreads && strcmp(nothreads, "0"))) {
        attn_options mo = ATTN_OPTIONS_INIT;
        mo.num_threads = 16;
        attn_context *ctx16 = NULL;
        CHECK(attn_context_create(&mo, &ctx16) == ATTN_OK, "context with 16 threads");
        if (ctx16)
            test_segments(ctx16);
        attn_context_destroy(ctx16);
    }
    if (info.isa != ATTN_ISA_SCALAR) {   /* the portable kernels too */
        test_algos_agree(sctx);
        test_varlen(sctx);
        if (!quick) test_long(sctx);
    }
    printf("max relative error per kind (f32 / f16 / bf16):\n");
    for (int k = 0; k <= ATTN_LINEAR_KDA; k++)
        printf("  %-12s %.2e  %.2e  %.2e\n", kname[k], worst[k][0], worst[k][1], worst[k][2]);
    printf("test_linear: %d checks, %d failures\n", checks, failures);
    attn_context_destroy(ctx);
    attn_context_destroy(sctx);
    return failures ? 1 : 0;
}
