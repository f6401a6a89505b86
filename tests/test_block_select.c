/*
 * attn_block_select: validation (one case per rule), both selection rules
 * against the double-precision reference (tests/ref_block_select.c) for every
 * CPU kernel set, the rule's invariants (threshold 1 keeps every allowed
 * block, causal never keeps a future block, forced blocks, ties to the lower
 * index) and its output used directly as attn_sdpa's block_mask. GPU
 * devices: tests/test_block_select_gpu.c.
 *
 * Environment: see testutil.h (ATTN_TEST_SEED, ATTN_TEST_QUICK, ...).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"
#include "ref.h"
#include "bs_check.h"
#include "testutil.h"

/* Runs one case on ctx and compares with the reference (tests/bs_check.c). */
static void run_case(attn_context *ctx, const char *isa, const bs_case *c)
{
    tu_tensor q, k, m;
    char name[200];
    bs_case_name(c, isa, name, sizeof name);
    if (bs_make_inputs(c, 2.0, &q, &k, &m)) {
        CHECK(0, "%s: allocation failed", name);
        return;
    }
    attn_status s = attn_block_select(ctx, &c->p, &q.t, &k.t, &m.t);
    CHECK(s == ATTN_OK, "%s: %s", name, attn_last_error());
    bs_check(c, &q, &k, &m, name);
    tu_tensor_free(&q);
    tu_tensor_free(&k);
    tu_tensor_free(&m);
}

static void against_reference(attn_context *ctx, const char *isa)
{
    for (int i = 0; i < bs_ncases(); i++) {
        bs_case c;
        bs_table_case(i, &c);
        run_case(ctx, isa, &c);
    }
}

/* Identical keys make every score and share equal: ties go to lower indices. */
static void ties(attn_context *ctx, const char *isa)
{
    for (int method = 0; method < 2; method++) {
        bs_case c = bs_ties_case(method);
        tu_tensor q, k, m;
        if (bs_make_inputs(&c, 1.0, &q, &k, &m)) { CHECK(0, "ties: allocation failed"); return; }
        for (int64_t j = 0; j < c.Sk; j++)
            for (int64_t e = 0; e < c.D; e++) {
                int64_t idx[4] = { 0, j, 0, e };
                ref_set(&k.t, idx, 0.25 * (double)(e % 5) - 0.5);
            }
        CHECK_OK(attn_block_select(ctx, &c.p, &q.t, &k.t, &m.t));
        /* rows I = 0..3, diagonal block I + 4 (Sk - Sq = 64); 8 equal blocks:
         * xattn keeps 0, the diagonal, then the lowest until half (4 blocks);
         * moba the diagonal and the two lowest others */
        for (int64_t I = 0; I < 4; I++) {
            int ok = 1;
            for (int64_t J = 0; J < 8; J++) {
                const int diag = J == I + 4;
                const int want = method ? (diag || J < 2) : (diag || J < 3);
                ok &= bs_mask_at(&m, 0, 0, I, J) == want;
            }
            CHECK(ok, "%s ties %s: block row %lld not the lowest indices", isa,
                  method ? "moba" : "xattn", (long long)I);
        }
        tu_tensor_free(&q); tu_tensor_free(&k); tu_tensor_free(&m);
    }
}

/* NaN in q: the call still succeeds and writes every mask element. */
static void nan_input(attn_context *ctx, const char *isa)
{
    for (int method = 0; method < 2; method++) {
        bs_case c = bs_nan_case(method);
        tu_tensor q, k, m;
        if (bs_make_inputs(&c, 1.0, &q, &k, &m)) { CHECK(0, "nan: allocation failed"); return; }
        int64_t idx[4] = { 0, 17, 0, 3 };
        ref_set(&q.t, idx, NAN);
        CHECK_OK(attn_block_select(ctx, &c.p, &q.t, &k.t, &m.t));
        char msg[200];
        CHECK(tu_check_written(&m, msg, sizeof msg) == 0, "%s nan %s: %s", isa,
              method ? "moba" : "xattn", msg);
        tu_tensor_free(&q); tu_tensor_free(&k); tu_tensor_free(&m);
    }
}

/* The selected mask feeds attn_sdpa directly: output equals the reference
 * attention with that block mask. */
static void feeds_sdpa(attn_context *ctx, const char *isa)
{
    bs_case c;
    memset(&c, 0, sizeof c);
    c.p = (attn_block_select_params)ATTN_BLOCK_SELECT_PARAMS_INIT;
    c.p.block_q = 32; c.p.block_k = 64; c.p.stride = 8; c.p.threshold = 0.8f; c.p.causal = 1;
    c.B = 2; c.Hq = 4; c.Hkv = 2; c.D = 32; c.Sq = 150; c.Sk = 200; c.dt = ATTN_F32;
    tu_tensor q, k, m, v, o;
    int64_t os[4] = { c.B, c.Sq, c.Hq, c.D }, vs[4] = { c.B, c.Sk, c.Hkv, c.D };
    if (bs_make_inputs(&c, 1.0, &q, &k, &m) || tu_tensor_alloc(&v, ATTN_F32, 4, vs, TU_CONTIG) ||
        tu_tensor_alloc(&o, ATTN_F32, 4, os, TU_CONTIG)) {
        CHECK(0, "feeds_sdpa: allocation failed");
        return;
    }
    tu_fill_normal(&v, 0.0, 1.0);
    tu_poison(&o);
    CHECK_OK(attn_block_select(ctx, &c.p, &q.t, &k.t, &m.t));
    attn_sdpa_params sp = ATTN_SDPA_PARAMS_INIT;
    sp.causal = 1;
    sp.block_mask = &m.t;
    sp.block_q = c.p.block_q;
    sp.block_k = c.p.block_k;
    CHECK_OK(attn_sdpa(ctx, &sp, &q.t, &k.t, &v.t, &o.t, NULL));
    double *ref = malloc(sizeof(double) * (size_t)(c.B * c.Sq * c.Hq * c.D));
    CHECK(ref && ref_sdpa(&sp, &q.t, &k.t, &v.t, ref, NULL) == 0, "feeds_sdpa: reference");
    const double err = ref ? tu_rel_err(&o, ref, NULL, NULL) : INFINITY;
    CHECK(err < 1e-4, "%s feeds_sdpa: error %.3g", isa, err);
    free(ref);
    tu_tensor_free(&q); tu_tensor_free(&k); tu_tensor_free(&m);
    tu_tensor_free(&v); tu_tensor_free(&o);
}

/* One case per validation rule: the exact status, a message naming the
 * argument, and an untouched mask. */
static void validation(attn_context *ctx)
{
    bs_case c;
    memset(&c, 0, sizeof c);
    c.p = (attn_block_select_params)ATTN_BLOCK_SELECT_PARAMS_INIT;
    c.p.block_q = 16; c.p.block_k = 32; c.p.stride = 8;
    c.B = 2; c.Hq = 4; c.Hkv = 2; c.D = 16; c.Sq = 40; c.Sk = 70; c.dt = ATTN_F32;
    tu_tensor q, k, m, k16, mbad;
    int64_t k16s[4] = { 2, 70, 2, 16 }, mbs[4] = { 2, 4, 4, 3 };
    if (bs_make_inputs(&c, 1.0, &q, &k, &m) || tu_tensor_alloc(&k16, ATTN_F16, 4, k16s, TU_CONTIG) ||
        tu_tensor_alloc(&mbad, ATTN_U8, 4, mbs, TU_CONTIG)) {
        CHECK(0, "validation: allocation failed");
        return;
    }
    CHECK_OK(attn_block_select(ctx, &c.p, &q.t, &k.t, &m.t));
    tu_poison(&m);
    /* U8 holds no NaN: compare the whole allocation with a snapshot */
    unsigned char *snap = malloc(m.total);
    if (!snap) { CHECK(0, "validation: allocation failed"); return; }
    memcpy(snap, m.mem, m.total);
#define BAD(rule, want, word, ctx_, pp, qq, kk, mm)                                          \
    do {                                                                                   \
        attn_status s_ = attn_block_select(ctx_, pp, qq, kk, mm);                          \
        CHECK(s_ == (want) && strstr(attn_last_error(), word) &&                            \
              memcmp(snap, m.mem, m.total) == 0,                                                 \
              "rule '%s': got %s, message '%s' (want '%s')", rule, attn_status_string(s_), \
              attn_last_error(), word);                                                    \
    } while (0)
    const attn_status INV = ATTN_ERR_INVALID_ARGUMENT;
    attn_block_select_params p = c.p;
    BAD("ctx NULL", INV, "ctx", NULL, &p, &q.t, &k.t, &m.t);
    BAD("params NULL", INV, "params", ctx, NULL, &q.t, &k.t, &m.t);
    p = c.p; p.size = 8;            BAD("params size", INV, "params->size", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.method = 7;          BAD("method", INV, "params->method", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.block_q = 0;         BAD("block_q", INV, "block_q", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.block_k = -3;        BAD("block_k", INV, "block_k", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.stride = 0;          BAD("stride 0", INV, "params->stride", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.stride = 3;          BAD("stride divides", INV, "params->stride", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.threshold = 0.0f;    BAD("threshold 0", INV, "params->threshold", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.threshold = 1.5f;    BAD("threshold > 1", INV, "params->threshold", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.threshold = NAN;     BAD("threshold NaN", INV, "params->threshold", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.scale = INFINITY;    BAD("scale", INV, "params->scale", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p; p.method = ATTN_BLOCK_SELECT_MOBA; p.top_k = 0;
    BAD("top_k", INV, "params->top_k", ctx, &p, &q.t, &k.t, &m.t);
    p = c.p;
    BAD("q NULL", INV, "q", ctx, &p, NULL, &k.t, &m.t);
    BAD("k NULL", INV, "k", ctx, &p, &q.t, NULL, &m.t);
    BAD("mask NULL", INV, "block_mask", ctx, &p, &q.t, &k.t, NULL);
    attn_tensor t = q.t; t.ndim = 3;
    BAD("q ndim", INV, "q", ctx, &p, &t, &k.t, &m.t);
    t = m.t; t.dtype = ATTN_F16;    BAD("mask dtype", INV, "block_mask", ctx, &p, &q.t, &k.t, &t);
    BAD("q/k dtypes", INV, "dtypes", ctx, &p, &q.t, &k16.t, &m.t);
    t = k.t; t.shape[0] = 1;        BAD("batch", INV, "batch", ctx, &p, &q.t, &t, &m.t);
    t = k.t; t.shape[3] = 8;        BAD("head dim", INV, "head dims", ctx, &p, &q.t, &t, &m.t);
    t = k.t; t.shape[2] = 3;        BAD("GQA", INV, "multiple", ctx, &p, &q.t, &t, &m.t);
    BAD("mask shape", INV, "block_mask has shape", ctx, &p, &q.t, &k.t, &mbad.t);
    t = m.t; t.data = q.t.data;     BAD("mask aliases q", INV, "q", ctx, &p, &q.t, &k.t, &t);
    t = m.t;
    t.stride[3] = 1; t.stride[2] = 3; t.stride[1] = 0; t.stride[0] = 48;
    BAD("mask overlaps itself", INV, "block_mask", ctx, &p, &q.t, &k.t, &t);
#undef BAD
    free(snap);
    tu_tensor_free(&q); tu_tensor_free(&k); tu_tensor_free(&m);
    tu_tensor_free(&k16); tu_tensor_free(&mbad);
}

int main(void)
{
    tu_init("test_block_select");
    static const attn_isa ISAS[] = { ATTN_ISA_SCALAR, ATTN_ISA_AVX2, ATTN_ISA_AVX512,
                                     ATTN_ISA_NEON };
    int seen[8] = { 0 };
    for (int i = 0; i < 4; i++) {
        attn_options o = ATTN_OPTIONS_INIT;
        o.max_isa = (int)ISAS[i];
        attn_context *ctx = NULL;
        if (attn_context_create(&o, &ctx) != ATTN_OK) {
            CHECK(0, "context: %s", attn_last_error());
            continue;
        }
        attn_device_info info = ATTN_DEVICE_INFO_INIT;
        attn_device_get_info(ctx, 0, &info);
        if (info.isa != ISAS[i] || seen[info.isa]++) {
            attn_context_destroy(ctx);
            continue;
        }
        const char *isa = attn_isa_name(info.isa);
        printf("test_block_select: isa %s\n", isa);
        if (i == 0)
            validation(ctx);
        against_reference(ctx, isa);
        ties(ctx, isa);
        nan_input(ctx, isa);
        feeds_sdpa(ctx, isa);
        attn_context_destroy(ctx);
    }
    return tu_finish();
}
