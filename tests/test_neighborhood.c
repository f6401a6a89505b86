/* attn_neighborhood against attn_sdpa's double reference (tests/ref.c) with
 * the equivalent boolean mask, built here from NATTEN's window rule: 1-D,
 * 2-D and 3-D grids, every kernel size 3..axis length on small axes,
 * dilations, causal axes, awkward sizes, GQA, f32/f16/bf16, lse, scales of
 * either sign, strided layouts, for every kernel set the machine runs; then
 * a case for each validation rule. ATTN_TEST_QUICK=1 shrinks the case list. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"
#include "ref_neighborhood.h"

#define NISA 4
static attn_context *ctxs[NISA];
static double worst_err[NISA][3];   /* by output dtype */
static long ran[NISA];

static void run_case(const nb_case *c)
{
    char name[256];
    nb_describe(c, name, sizeof name);
    const int64_t ntok = nb_tokens(c);
    const int tn = c->nd + 3;
    int64_t sq[6], sk[6], sv[6], so[6], sl[6];
    nb_shapes(c, sq, sk, sv, so, sl);
    tu_tensor q, k, v, out, lse;
    tu_tensor_alloc(&q, c->in_dt, tn, sq, c->layout);
    tu_tensor_alloc(&k, c->in_dt, tn, sk, c->layout);
    tu_tensor_alloc(&v, c->in_dt, tn, sv, c->layout);
    tu_tensor_alloc(&out, c->out_dt, tn, so, c->layout);
    tu_tensor_alloc(&lse, ATTN_F32, tn - 1, sl, TU_CONTIG);
    tu_fill_normal(&q, 0.0, 1.0);
    tu_fill_normal(&k, 0.0, 1.0);
    tu_fill_normal(&v, 0.0, 1.0);

    double *ro = malloc((size_t)(c->b * ntok * c->hq * c->dv) * sizeof(double));
    double *rlt = malloc((size_t)(c->b * ntok * c->hq) * sizeof(double));
    CHECK(ref_neighborhood(c, &q, &k, &v, ro, rlt) == 0, "%s: reference failed", name);
    const attn_neighborhood_params p = nb_params(c);
    const double tol = c->out_dt == ATTN_F32 ? 2e-5 : 1e-2;
    for (int isa = 0; isa < NISA; isa++) {
        if (!ctxs[isa])
            continue;
        tu_poison(&out);
        tu_poison(&lse);
        attn_status st = attn_neighborhood(ctxs[isa], &p, &q.t, &k.t, &v.t, &out.t,
                                           c->lse ? &lse.t : NULL);
        const char *in = attn_isa_name((attn_isa)isa);
        CHECK(st == ATTN_OK, "%s: %s: %s: %s", in, name, attn_status_string(st),
              attn_last_error());
        if (st != ATTN_OK)
            continue;
        char msg[256];
        CHECK(tu_check_written(&out, msg, sizeof msg) == 0, "%s: %s: out: %s", in, name, msg);
        const double e = tu_rel_err(&out, ro, NULL, NULL);
        CHECK(e <= tol, "%s: %s: error %.3g > %.3g", in, name, e, tol);
        const int oi = c->out_dt == ATTN_F32 ? 0 : c->out_dt == ATTN_F16 ? 1 : 2;
        if (e > worst_err[isa][oi])
            worst_err[isa][oi] = e;
        ran[isa]++;
        if (c->lse) {
            const double le = tu_lse_err(&lse, rlt, NULL);
            CHECK(le <= 1e-5, "%s: %s: lse error %.3g", in, name, le);
        }
        if (tu_verbose)
            printf("%-7s %s: err %.2e\n", in, name, e);
    }
    free(ro); free(rlt);
    tu_tensor_free(&q); tu_tensor_free(&k); tu_tensor_free(&v);
    tu_tensor_free(&out); tu_tensor_free(&lse);
}

/* A random case around a grid and kernel: heads, dims, dtypes, layout. */
static nb_case base_case(int nd)
{
    static const int64_t dims[] = { 8, 16, 32, 40, 64, 5 };
    static const attn_dtype dts[] = { ATTN_F32, ATTN_F32, ATTN_F16, ATTN_BF16 };
    nb_case c;
    memset(&c, 0, sizeof c);
    c.nd = nd;
    for (int a = 0; a < 3; a++) {
        c.len[a] = 1;
        c.kern[a] = 1;
        c.dil[a] = 1;
    }
    c.b = tu_randint(1, 2);
    c.hkv = tu_randint(1, 2);
    c.hq = c.hkv * tu_randint(1, 2);
    c.d = dims[tu_randint(0, 5)];
    c.dv = tu_randint(0, 3) ? c.d : dims[tu_randint(0, 5)];
    c.in_dt = dts[tu_randint(0, 3)];
    c.out_dt = dts[tu_randint(0, 3)];
    c.lse = tu_randint(0, 1);
    c.layout = tu_randint(0, 3) ? TU_CONTIG : tu_randint(0, TU_NLAYOUTS - 1);
    /* mostly the default; a negative scale turns the scores over (the CPU
     * driver applies the scale in the softmax, f32 q being read in place) */
    static const float scales[] = { 0.0f, 0.0f, 0.0f, 0.7f, -0.3f };
    c.scale = scales[tu_randint(0, 4)];
    return c;
}

static void random_dils(nb_case *c)
{
    for (int a = 0; a < c->nd; a++)
        c->dil[a] = tu_randint(0, 2) ? 1 : tu_randint(1, (int)(c->len[a] / c->kern[a]));
}

static void correctness_cases(void)
{
    /* 1-D: every odd kernel size 3..L, every dilation, both causal modes. */
    static const int64_t lens1[] = { 3, 8, 13, 21 };
    for (int li = 0; li < 4; li++)
        for (int64_t kk = 3; kk <= lens1[li]; kk += 2)
            for (int64_t dl = 1; dl * kk <= lens1[li]; dl++)
                for (int causal = 0; causal < 2; causal++) {
                    if (tu_quick && (dl > 2 || (causal && kk > 5)))
                        continue;
                    nb_case c = base_case(1);
                    c.len[0] = lens1[li];
                    c.kern[0] = kk;
                    c.dil[0] = dl;
                    c.causal[0] = causal;
                    run_case(&c);
                }
    /* 2-D: awkward grids, every kernel size pair on the small one. */
    static const int64_t grids2[][2] = { { 5, 7 }, { 9, 6 }, { 11, 13 }, { 17, 20 } };
    for (int gi = 0; gi < 4; gi++)
        for (int64_t k0 = 3; k0 <= grids2[gi][0]; k0 += 2)
            for (int64_t k1 = 3; k1 <= grids2[gi][1]; k1 += 2) {
                const int full = gi < 2;   /* every pair; bigger grids: a sample */
                if (!full && tu_randint(0, tu_quick ? 5 : 2))
                    continue;
                if (tu_quick && full && tu_randint(0, 1))
                    continue;
                nb_case c = base_case(2);
                c.len[0] = grids2[gi][0];
                c.len[1] = grids2[gi][1];
                c.kern[0] = k0;
                c.kern[1] = k1;
                random_dils(&c);
                c.causal[0] = tu_randint(0, 3) == 0;
                c.causal[1] = tu_randint(0, 3) == 0;
                run_case(&c);
            }
    /* 2-D with the interior tiles the fast path is tuned for (K = 7, 13). */
    for (int kk = 7; kk <= 13; kk += 6) {
        nb_case c = base_case(2);
        c.len[0] = 19;
        c.len[1] = 30;
        c.kern[0] = c.kern[1] = kk;
        c.d = 32;
        run_case(&c);
        c.causal[1] = 1;
        c.dil[0] = 1;
        c.dil[1] = 2;
        run_case(&c);
    }
    /* 2-D, last axis wide enough for whole interior lane vectors of the
     * queries-in-lanes path (src/cpu/neighborhood_lanes.c) and for several
     * task bands and segments: border and partial vectors, row blocks cut
     * by the axis end, a last-axis kernel wider than 16 lanes, causal and
     * dilated last axes. */
    static const int64_t wide_kern[][2] = { { 7, 7 }, { 3, 9 }, { 5, 19 }, { 9, 11 } };
    for (int ki = 0; ki < 4; ki++) {
        nb_case c = base_case(2);
        c.len[0] = 21;
        c.len[1] = 75;
        c.kern[0] = wide_kern[ki][0];
        c.kern[1] = wide_kern[ki][1];
        run_case(&c);
        c.causal[1] = ki % 2;
        c.causal[0] = !c.causal[1];
        c.dil[1] = 2;
        run_case(&c);
    }
    /* f32 outputs of 4 MiB and more, which the CPU drivers store past the
     * caches (kernel 13: keys in lanes, a tile later through nb_out_stream;
     * kernel 7: queries in lanes, nb_store_o) where its rows are whole
     * cache lines: GQA, lse, a negative scale; on line boundaries
     * (streamed) and 16 bytes past one (malloc's: stored plainly). */
    for (int x = 0; x < 4; x++) {
        const int aligned = x % 2;
        tu_align = aligned ? 64 : 0;
        nb_case c = base_case(2);
        c.b = 1;
        c.len[0] = c.len[1] = 64;
        c.kern[0] = c.kern[1] = x < 2 ? 13 : 7;
        c.dil[0] = c.dil[1] = 1;
        c.hkv = 2;
        c.hq = 4;
        c.d = c.dv = 64;
        c.in_dt = c.out_dt = ATTN_F32;
        c.layout = TU_CONTIG;
        c.lse = 1;
        c.scale = -0.3f;
        run_case(&c);
        tu_align = 0;
    }
    /* 3-D with interior lane vectors (key rows over two outer axes). */
    for (int causal = 0; causal < 2; causal++) {
        nb_case c = base_case(3);
        c.len[0] = 5;
        c.len[1] = 9;
        c.len[2] = 40;
        c.kern[0] = 3;
        c.kern[1] = 5;
        c.kern[2] = 7;
        c.causal[0] = causal;
        run_case(&c);
    }
    /* 3-D. */
    static const int64_t grids3[][3] = { { 3, 5, 4 }, { 5, 6, 7 }, { 4, 9, 10 } };
    for (int gi = 0; gi < 3; gi++)
        for (int rep = 0; rep < (tu_quick ? 3 : 8); rep++) {
            nb_case c = base_case(3);
            for (int a = 0; a < 3; a++) {
                c.len[a] = grids3[gi][a];
                const int64_t kmax = (c.len[a] - 1) / 2;   /* odd kernels 3..len */
                c.kern[a] = 2 * tu_randint(1, (int)kmax) + 1;
                c.causal[a] = tu_randint(0, 3) == 0;
            }
            random_dils(&c);
            run_case(&c);
        }
}

/* ------------------------------------------------------------------ */
/* Validation                                                           */
/* ------------------------------------------------------------------ */

static void expect_invalid(attn_context *ctx, const attn_neighborhood_params *p,
                           const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                           tu_tensor *out, const attn_tensor *lse, const char *want,
                           const char *what)
{
    tu_poison(out);
    attn_status st = attn_neighborhood(ctx, p, q, k, v, &out->t, lse);
    CHECK(st == ATTN_ERR_INVALID_ARGUMENT, "%s: got %s", what, attn_status_string(st));
    CHECK(strstr(attn_last_error(), want) != NULL, "%s: message \"%s\" lacks \"%s\"", what,
          attn_last_error(), want);
    CHECK(tu_check_untouched(out) == 0, "%s: out was written", what);
}

static void validation_cases(attn_context *ctx)
{
    const int64_t s[5] = { 1, 9, 7, 2, 8 }, sl[4] = { 1, 9, 7, 2 };
    tu_tensor q, k, v, out, lse;
    tu_tensor_alloc(&q, ATTN_F32, 5, s, TU_CONTIG);
    tu_tensor_alloc(&k, ATTN_F32, 5, s, TU_CONTIG);
    tu_tensor_alloc(&v, ATTN_F32, 5, s, TU_CONTIG);
    tu_tensor_alloc(&out, ATTN_F32, 5, s, TU_CONTIG);
    tu_tensor_alloc(&lse, ATTN_F32, 4, sl, TU_CONTIG);
    tu_fill_normal(&q, 0, 1);
    tu_fill_normal(&k, 0, 1);
    tu_fill_normal(&v, 0, 1);
    attn_neighborhood_params good = ATTN_NEIGHBORHOOD_PARAMS_INIT;
    good.ndim = 2;
    good.kernel_size[0] = 3;
    good.kernel_size[1] = 5;
    CHECK_OK(attn_neighborhood(ctx, &good, &q.t, &k.t, &v.t, &out.t, &lse.t));

    attn_neighborhood_params p = good;
    p.kernel_size[1] = 4;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "must be odd", "even kernel");
    p = good;
    p.kernel_size[0] = 1;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "at least 3", "kernel 1");
    p = good;
    p.kernel_size[1] = 9;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "more than axis Y", "kernel > axis");
    p = good;
    p.dilation[0] = 4;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "exceeds axis X",
                   "dilation x kernel > axis");
    p = good;
    p.dilation[1] = 0;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "at least 1", "dilation 0");
    p = good;
    p.ndim = 4;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "ndim", "ndim 4");
    p = good;
    p.ndim = 1;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "dims", "tensor rank vs ndim");
    p = good;
    p.size = 3;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "params->size", "bad size");
    p = good;
    p.scale = NAN;
    expect_invalid(ctx, &p, &q.t, &k.t, &v.t, &out, NULL, "scale", "NaN scale");

    attn_tensor bad = k.t;          /* k of the wrong shape (another grid) */
    bad.shape[2] = 6;
    expect_invalid(ctx, &good, &q.t, &bad, &v.t, &out, NULL, "k has shape", "k shape");
    bad = v.t;
    bad.shape[3] = 1;
    bad.shape[4] = 16;              /* one kv head of dim 16: v must match k's heads */
    expect_invalid(ctx, &good, &q.t, &k.t, &bad, &out, NULL, "v has shape", "v shape");
    attn_tensor bl = lse.t;         /* lse of the wrong shape */
    bl.shape[3] = 3;
    expect_invalid(ctx, &good, &q.t, &k.t, &v.t, &out, &bl, "lse has shape", "lse shape");
    bl = lse.t;
    bl.dtype = ATTN_F16;
    expect_invalid(ctx, &good, &q.t, &k.t, &v.t, &out, &bl, "lse", "lse dtype");
    bad = k.t;                      /* 2 q heads over 3 kv heads */
    bad.shape[3] = 3;
    bad.shape[4] = 5;
    expect_invalid(ctx, &good, &q.t, &bad, &v.t, &out, NULL, "multiple", "GQA ratio");
    bad = k.t;
    bad.dtype = ATTN_F16;
    expect_invalid(ctx, &good, &q.t, &bad, &v.t, &out, NULL, "share a dtype", "dtype mix");
    /* out written over an input */
    tu_tensor alias;
    tu_tensor_alloc(&alias, ATTN_F32, 5, s, TU_CONTIG);
    tu_poison(&alias);
    attn_status st = attn_neighborhood(ctx, &good, &alias.t, &k.t, &v.t, &alias.t, NULL);
    CHECK(st == ATTN_ERR_INVALID_ARGUMENT && strstr(attn_last_error(), "overlap"),
          "out aliasing q: %s: %s", attn_status_string(st), attn_last_error());
    tu_tensor_free(&alias);
    tu_tensor_free(&q); tu_tensor_free(&k); tu_tensor_free(&v);
    tu_tensor_free(&out); tu_tensor_free(&lse);
}

int main(void)
{
    tu_init("test_neighborhood");
    const char *only = getenv("ATTN_TEST_ISA");
    for (int isa = ATTN_ISA_SCALAR; isa <= ATTN_ISA_NEON; isa++) {
        if (only && *only && strcmp(only, attn_isa_name((attn_isa)isa)) != 0)
            continue;
        attn_options o = ATTN_OPTIONS_INIT;
        o.max_isa = isa;
        o.device = 0;
        attn_context *ctx = NULL;
        if (attn_context_create(&o, &ctx) != ATTN_OK)
            continue;
        attn_device_info info = ATTN_DEVICE_INFO_INIT;
        if (attn_device_get_info(ctx, 0, &info) != ATTN_OK || (int)info.isa != isa) {
            attn_context_destroy(ctx);
            continue;
        }
        printf("isa %-7s: testing\n", attn_isa_name((attn_isa)isa));
        ctxs[isa] = ctx;
    }
    attn_context *any = NULL;
    for (int isa = 0; isa < NISA; isa++)
        if (ctxs[isa] && !any)
            any = ctxs[isa];
    CHECK(any != NULL, "no kernel set could be tested");
    if (any) {
        correctness_cases();
        validation_cases(any);
    }
    for (int isa = 0; isa < NISA; isa++)
        if (ctxs[isa]) {
            printf("isa %-7s: %ld runs, worst error out f32 %.2e f16 %.2e bf16 %.2e\n",
                   attn_isa_name((attn_isa)isa), ran[isa], worst_err[isa][0],
                   worst_err[isa][1], worst_err[isa][2]);
            attn_context_destroy(ctxs[isa]);
        }
    return tu_finish();
}
