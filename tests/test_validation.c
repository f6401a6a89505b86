/*
 * libattn: one test per validation rule of attn_sdpa and attn_merge.
 *
 * Every case starts from a known-valid call (checked to succeed on its own),
 * breaks exactly one thing, and asserts
 *   - the exact status (ATTN_ERR_INVALID_ARGUMENT, or ATTN_ERR_UNSUPPORTED),
 *   - a non-empty attn_last_error() that names the offending argument
 *     (the name must appear as a whole word: "q" matches "q:" or "q/k" but
 *     not "sequence"),
 *   - that no byte of any tensor memory changed: outputs are poisoned with a
 *     known pattern and every tensor lives in an allocation with guard bytes
 *     on both sides; the whole allocation, guards included, is compared with
 *     a snapshot taken just before the call.
 *
 * Self-contained (no testutil): build with
 *   gcc -O1 -g -fsanitize=address,undefined -fopenmp -Iinclude -Isrc \
 *       src/[a-z]*.c src/cpu/[a-z]*.c tests/test_validation.c -lm -o /tmp/tv && /tmp/tv
 * Exit status 0 = all cases passed. Set ATTN_TEST_VERBOSE=1 to print every case.
 */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"

/* Undefined behaviour in the library is a failure: make UBSan stop at it. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }

static int g_fail, g_pass, g_verbose;
static attn_context *g_ctx;

#define GUARD 64
#define POISON 0xA5

/* ---- memory regions with guard bytes ------------------------------------ */

typedef struct region {
    unsigned char *raw;   /* GUARD + n + GUARD bytes */
    size_t n;
    unsigned char *snap;  /* snapshot of raw, same size */
} region;

static void *region_new(region *r, size_t n)
{
    r->n = n;
    r->raw = malloc(n + 2 * GUARD);
    r->snap = malloc(n + 2 * GUARD);
    if (!r->raw || !r->snap) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(r->raw, POISON, n + 2 * GUARD);
    return r->raw + GUARD;
}

static void region_free(region *r)
{
    free(r->raw);
    free(r->snap);
    r->raw = r->snap = NULL;
}

static void region_fill_random(region *r, attn_dtype dt, unsigned *seed)
{
    unsigned char *p = r->raw + GUARD;
    if (dt == ATTN_F32) {
        for (size_t i = 0; i + 4 <= r->n; i += 4) {
            *seed = *seed * 1103515245u + 12345u;
            float x = (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
            memcpy(p + i, &x, 4);
        }
    } else if (dt == ATTN_U8) {
        memset(p, 1, r->n);
    }
}

/* ---- whole-word search for the argument name in the message ------------- */

static int is_ident(int c) { return isalnum(c) || c == '_'; }

static int names_arg(const char *msg, const char *name)
{
    size_t len = strlen(name);
    for (const char *s = msg; (s = strstr(s, name)) != NULL; s++) {
        int before_ok = s == msg || !is_ident((unsigned char)s[-1]);
        int after_ok = !is_ident((unsigned char)s[len]);
        if (before_ok && after_ok)
            return 1;
    }
    return 0;
}

/* ---- the sdpa fixture ------------------------------------------------------ */

enum { FX_LSE = 1, FX_MASK = 2, FX_GATE = 4, FX_BM = 8, FX_VARLEN = 16 };

#define MAXREG 16

typedef struct fixture {
    int64_t B, Sq, Sk, Hq, Hkv, D, Dv;
    struct { attn_sdpa_params p; unsigned char pad[64]; } pw; /* room for size > sizeof */
    attn_tensor q, k, v, out, lse, mask, gate, bm;
    region rq, rk, rv, ro, rl, rm, rg, rb;
    int32_t cu_q[8], cu_k[8];
    float slopes[64], sinks[64];
    /* what is passed to attn_sdpa (tests may set these to NULL or elsewhere) */
    attn_context *ctx;
    const attn_sdpa_params *pp;
    const attn_tensor *pq, *pk, *pv, *pout, *plse;
    /* extra memory (e.g. buffers) that must stay untouched */
    unsigned char *extra[4];
    size_t extra_n[4];
    unsigned char *extra_snap[4];
    int nextra;
    attn_buffer *bufs[4];
    int nbufs;
} fixture;

static void contiguous_strides(attn_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

static void set4(attn_tensor *t, void *data, attn_dtype dt, int64_t a, int64_t b, int64_t c,
                 int64_t d)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->dtype = dt;
    t->ndim = 4;
    t->shape[0] = a; t->shape[1] = b; t->shape[2] = c; t->shape[3] = d;
}

static void set3(attn_tensor *t, void *data, attn_dtype dt, int64_t a, int64_t b, int64_t c)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->dtype = dt;
    t->ndim = 3;
    t->shape[0] = a; t->shape[1] = b; t->shape[2] = c;
}

/* Allocations are 4x what the nominal shape needs, so cases that enlarge a
 * shape never make a buggy library read or write outside an allocation. */
#define SLACK 4

static void fx_init(fixture *f, int flags)
{
    memset(f, 0, sizeof *f);
    unsigned seed = 12345;
    f->B = 2; f->Sq = 5; f->Sk = 7; f->Hq = 4; f->Hkv = 2; f->D = 8; f->Dv = 8;
    int64_t Bt = f->B, Tq = f->Sq, Tk = f->Sk;
    if (flags & FX_VARLEN) {
        /* 3 sequences: q lengths 2,3,1 (total 6), k lengths 3,4,2 (total 9) */
        static const int32_t cq[] = { 0, 2, 5, 6 }, ck[] = { 0, 3, 7, 9 };
        memcpy(f->cu_q, cq, sizeof cq);
        memcpy(f->cu_k, ck, sizeof ck);
        Bt = 1; Tq = 6; Tk = 9;
        f->B = 1; f->Sq = Tq; f->Sk = Tk;
    }
    attn_sdpa_params def = ATTN_SDPA_PARAMS_INIT;
    f->pw.p = def;
    memset(f->pw.pad, 0, sizeof f->pw.pad);
    size_t nq = (size_t)(Bt * Tq * f->Hq * f->D), nk = (size_t)(Bt * Tk * f->Hkv * f->D);
    size_t nv = (size_t)(Bt * Tk * f->Hkv * f->Dv), no = (size_t)(Bt * Tq * f->Hq * f->Dv);
    set4(&f->q, region_new(&f->rq, SLACK * 4 * nq), ATTN_F32, Bt, Tq, f->Hq, f->D);
    set4(&f->k, region_new(&f->rk, SLACK * 4 * nk), ATTN_F32, Bt, Tk, f->Hkv, f->D);
    set4(&f->v, region_new(&f->rv, SLACK * 4 * nv), ATTN_F32, Bt, Tk, f->Hkv, f->Dv);
    set4(&f->out, region_new(&f->ro, SLACK * 4 * no), ATTN_F32, Bt, Tq, f->Hq, f->Dv);
    region_fill_random(&f->rq, ATTN_F32, &seed);
    region_fill_random(&f->rk, ATTN_F32, &seed);
    region_fill_random(&f->rv, ATTN_F32, &seed);
    f->ctx = g_ctx;
    f->pp = &f->pw.p;
    f->pq = &f->q; f->pk = &f->k; f->pv = &f->v; f->pout = &f->out;
    if (flags & FX_LSE) {
        set3(&f->lse, region_new(&f->rl, SLACK * 4 * (size_t)(Bt * f->Hq * Tq)), ATTN_F32,
             Bt, f->Hq, Tq);
        f->plse = &f->lse;
    }
    int64_t nseq = (flags & FX_VARLEN) ? 3 : f->B;
    int64_t mq = (flags & FX_VARLEN) ? 3 : f->Sq, mk = (flags & FX_VARLEN) ? 4 : f->Sk;
    if (flags & FX_MASK) {
        set4(&f->mask, region_new(&f->rm, SLACK * 4 * (size_t)(nseq * f->Hq * mq * mk)),
             ATTN_F32, nseq, f->Hq, mq, mk);
        memset(f->rm.raw + GUARD, 0, f->rm.n);   /* additive 0 = no effect */
        f->pw.p.mask = &f->mask;
    }
    if (flags & FX_GATE) {
        set4(&f->gate, region_new(&f->rg, SLACK * 4 * no), ATTN_F32, Bt, Tq, f->Hq, f->Dv);
        region_fill_random(&f->rg, ATTN_F32, &seed);
        f->pw.p.gate = &f->gate;
    }
    if (flags & FX_BM) {
        f->pw.p.block_q = 2;
        f->pw.p.block_k = 4;
        int64_t nbq = (mq + 1) / 2, nbk = (mk + 3) / 4;
        set4(&f->bm, region_new(&f->rb, SLACK * (size_t)(nseq * f->Hq * nbq * nbk)), ATTN_U8,
             nseq, f->Hq, nbq, nbk);
        region_fill_random(&f->rb, ATTN_U8, &seed);
        f->pw.p.block_mask = &f->bm;
    }
    if (flags & FX_VARLEN) {
        f->pw.p.cu_seqlens_q = f->cu_q;
        f->pw.p.cu_seqlens_k = f->cu_k;
        f->pw.p.num_seqs = 3;
    }
    for (int i = 0; i < 64; i++) {
        f->slopes[i] = 0.125f;
        f->sinks[i] = 0.5f;
    }
}

static void fx_add_extra(fixture *f, void *p, size_t n)
{
    f->extra[f->nextra] = p;
    f->extra_n[f->nextra] = n;
    f->nextra++;
}

/* A CPU buffer of `bytes`, filled with POISON, registered as extra memory. */
static attn_buffer *fx_buffer(fixture *f, size_t bytes)
{
    attn_buffer *b = NULL;
    if (attn_buffer_create(g_ctx, 0, bytes, &b) != ATTN_OK || !b) {
        fprintf(stderr, "attn_buffer_create(%zu) failed: %s\n", bytes, attn_last_error());
        exit(2);
    }
    unsigned char *h = attn_buffer_host_ptr(b);
    memset(h, POISON, bytes);
    f->bufs[f->nbufs++] = b;
    fx_add_extra(f, h, bytes);
    return b;
}

static void fx_free(fixture *f)
{
    region *rs[] = { &f->rq, &f->rk, &f->rv, &f->ro, &f->rl, &f->rm, &f->rg, &f->rb };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        if (rs[i]->raw)
            region_free(rs[i]);
    for (int i = 0; i < f->nbufs; i++)
        attn_buffer_destroy(f->bufs[i]);
    for (int i = 0; i < f->nextra; i++)
        free(f->extra_snap[i]);
}

static void fx_snapshot(fixture *f)
{
    region *rs[] = { &f->rq, &f->rk, &f->rv, &f->ro, &f->rl, &f->rm, &f->rg, &f->rb };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        if (rs[i]->raw)
            memcpy(rs[i]->snap, rs[i]->raw, rs[i]->n + 2 * GUARD);
    for (int i = 0; i < f->nextra; i++) {
        free(f->extra_snap[i]);
        f->extra_snap[i] = malloc(f->extra_n[i]);
        memcpy(f->extra_snap[i], f->extra[i], f->extra_n[i]);
    }
}

/* Name of the first region that changed since the snapshot, or NULL. */
static const char *fx_changed(fixture *f)
{
    region *rs[] = { &f->rq, &f->rk, &f->rv, &f->ro, &f->rl, &f->rm, &f->rg, &f->rb };
    static const char *names[] = { "q memory", "k memory", "v memory", "out memory",
                                   "lse memory", "mask memory", "gate memory",
                                   "block_mask memory" };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        if (rs[i]->raw && memcmp(rs[i]->snap, rs[i]->raw, rs[i]->n + 2 * GUARD))
            return names[i];
    for (int i = 0; i < f->nextra; i++)
        if (memcmp(f->extra_snap[i], f->extra[i], f->extra_n[i]))
            return "buffer memory";
    return NULL;
}

static attn_status fx_run(fixture *f)
{
    return attn_sdpa(f->ctx, f->pp, f->pq, f->pk, f->pv, f->pout, f->plse);
}

/* ---- reporting ------------------------------------------------------------ */

static const char *st_name(attn_status s)
{
    switch (s) {
    case ATTN_OK: return "ATTN_OK";
    case ATTN_ERR_INVALID_ARGUMENT: return "ATTN_ERR_INVALID_ARGUMENT";
    case ATTN_ERR_UNSUPPORTED: return "ATTN_ERR_UNSUPPORTED";
    case ATTN_ERR_OUT_OF_MEMORY: return "ATTN_ERR_OUT_OF_MEMORY";
    case ATTN_ERR_DEVICE: return "ATTN_ERR_DEVICE";
    case ATTN_ERR_INTERNAL: return "ATTN_ERR_INTERNAL";
    }
    return "?";
}

/* Checks a failed call: status, message naming `name`, memory untouched. */
static void check_failure(const char *op, const char *rule, attn_status got, attn_status want,
                          const char *name, const char *changed)
{
    const char *msg = attn_last_error();
    char why[512] = "";
    if (got != want)
        snprintf(why, sizeof why, "status %s, expected %s", st_name(got), st_name(want));
    else if (!msg || !*msg)
        snprintf(why, sizeof why, "attn_last_error() is empty");
    else if (name && !names_arg(msg, name))
        snprintf(why, sizeof why, "message does not name '%s'", name);
    else if (changed)
        snprintf(why, sizeof why, "%s was modified by a failing call", changed);
    if (*why) {
        g_fail++;
        printf("FAIL %s: %s: %s\n     message: \"%s\"\n", op, rule, why, msg ? msg : "(null)");
    } else {
        g_pass++;
        if (g_verbose)
            printf("ok   %s: %s  [%s]\n", op, rule, msg);
    }
}

static void expect_sdpa(fixture *f, const char *rule, attn_status want, const char *name)
{
    fx_snapshot(f);
    attn_status s = fx_run(f);
    check_failure("attn_sdpa", rule, s, want, name, s == ATTN_OK ? NULL : fx_changed(f));
}

static void expect_ok(const char *op, const char *rule, attn_status s)
{
    if (s != ATTN_OK) {
        g_fail++;
        printf("FAIL %s: %s: valid call returned %s: \"%s\"\n", op, rule, st_name(s),
               attn_last_error());
    } else if (attn_last_error()[0]) {
        g_fail++;
        printf("FAIL %s: %s: success but attn_last_error() is \"%s\"\n", op, rule,
               attn_last_error());
    } else {
        g_pass++;
        if (g_verbose)
            printf("ok   %s: %s (valid, succeeds)\n", op, rule);
    }
}

/* RULE(description, expected status, argument name, flags, setup statements...) */
#define RULE(desc, want, name, flags, ...) do {              \
        fixture f_; fx_init(&f_, (flags));                      \
        fixture *f = &f_; (void)f;                              \
        __VA_ARGS__;                                            \
        expect_sdpa(f, desc, want, name);                       \
        fx_free(f);                                             \
    } while (0)

/* VALID(description, flags, setup...): the call must succeed. */
#define VALID(desc, flags, ...) do {                           \
        fixture f_; fx_init(&f_, (flags));                      \
        fixture *f = &f_; (void)f;                              \
        __VA_ARGS__;                                            \
        expect_ok("attn_sdpa", desc, fx_run(f));                \
        fx_free(f);                                             \
    } while (0)

#define INV ATTN_ERR_INVALID_ARGUMENT
#define UNS ATTN_ERR_UNSUPPORTED

static const int ALL = FX_LSE | FX_MASK | FX_GATE | FX_BM;

/* ---- attn_sdpa rules ------------------------------------------------------- */

static void sdpa_baselines(void)
{
    VALID("baseline", 0);
    VALID("baseline with lse", FX_LSE);
    VALID("baseline with mask", FX_MASK);
    VALID("baseline with gate", FX_GATE);
    VALID("baseline with block_mask", FX_BM);
    VALID("baseline with everything", ALL);
    VALID("baseline varlen", FX_VARLEN);
    VALID("baseline varlen with everything", FX_VARLEN | ALL);
    VALID("broadcast mask [1,1,Sq,Sk]", FX_MASK, f->mask.shape[0] = 1, f->mask.shape[1] = 1);
    VALID("broadcast mask [B,1,Sq,Sk]", FX_MASK, f->mask.shape[1] = 1);
    VALID("u8 mask", FX_MASK, f->mask.dtype = ATTN_U8, memset(f->rm.raw + GUARD, 1, f->rm.n));
    VALID("f16 mask", FX_MASK, f->mask.dtype = ATTN_F16);
    VALID("broadcast block_mask [1,1,..]", FX_BM, f->bm.shape[0] = 1, f->bm.shape[1] = 1);
    VALID("window_left = window_right = 0, sink_tokens = 2", 0,
          f->pw.p.window_left = 0, f->pw.p.window_right = 0, f->pw.p.sink_tokens = 2);
    VALID("softcap 30, scale 0.5, causal", FX_LSE,
          f->pw.p.softcap = 30.0f, f->pw.p.scale = 0.5f, f->pw.p.causal = 1);
    VALID("sigmoid without lse", 0, f->pw.p.score = ATTN_SCORE_SIGMOID);
    VALID("alibi + sink logits", FX_LSE, f->pw.p.alibi_slopes = f->slopes,
          f->pw.p.sink_logits = f->sinks);
    VALID("params size of the first published struct (no num_seqs)", 0,
          f->pw.p.size = offsetof(attn_sdpa_params, num_seqs));
    VALID("explicit strides ([B,H,S,D] storage viewed as [B,S,H,D])", 0,
          f->q.stride[0] = f->Sq * f->Hq * f->D, f->q.stride[1] = f->D,
          f->q.stride[2] = f->Sq * f->D, f->q.stride[3] = 1);
    VALID("MQA (Hkv = 1)", 0, f->k.shape[2] = 1, f->v.shape[2] = 1);
    /* A stride that addresses nothing may hold any value; under UBSan these
     * catch a kernel that multiplies it before looking at the shape. */
    VALID("Sq = 1 and Hkv = 1 with strides 2^62 on those axes", FX_LSE,
          contiguous_strides(&f->q), contiguous_strides(&f->k), contiguous_strides(&f->v),
          f->q.shape[1] = f->out.shape[1] = f->lse.shape[2] = 1,
          f->q.stride[1] = INT64_C(1) << 62, f->k.shape[2] = f->v.shape[2] = 1,
          f->k.stride[2] = f->v.stride[2] = INT64_C(1) << 62);
    VALID("Sk = 0 with strides 2^62 on k and v", FX_LSE,
          contiguous_strides(&f->k), contiguous_strides(&f->v),
          f->k.shape[1] = f->v.shape[1] = 0, f->k.stride[0] = f->v.stride[1] = INT64_C(1) << 62);
    VALID("Dv != D", 0, f->v.shape[3] = 4, f->out.shape[3] = 4);
    VALID("f16 q/k/v, bf16 out", 0, f->q.dtype = ATTN_F16, f->k.dtype = ATTN_F16,
          f->v.dtype = ATTN_F16, f->out.dtype = ATTN_BF16);
    VALID("empty batch (B = 0) with NULL data", FX_LSE,
          f->q.shape[0] = f->k.shape[0] = f->v.shape[0] = f->out.shape[0] = 0,
          f->lse.shape[0] = 0, f->q.data = f->k.data = f->v.data = f->out.data = NULL,
          f->lse.data = NULL);
    VALID("Sk = 0 (rows with no key)", FX_LSE, f->k.shape[1] = 0, f->v.shape[1] = 0);
    VALID("out in a buffer at an offset", 0, {
        attn_buffer *b = fx_buffer(f, 4096 * 4);
        f->out.data = NULL; f->out.buffer = b; f->out.offset = 64;
    });
}

static void sdpa_null_and_params(void)
{
    RULE("ctx is NULL", INV, "ctx", 0, f->ctx = NULL);
    RULE("params is NULL", INV, "params", 0, f->pp = NULL);
    RULE("q is NULL", INV, "q", 0, f->pq = NULL);
    RULE("k is NULL", INV, "k", 0, f->pk = NULL);
    RULE("v is NULL", INV, "v", 0, f->pv = NULL);
    RULE("out is NULL", INV, "out", 0, f->pout = NULL);
    RULE("params->size is 0", INV, "size", 0, f->pw.p.size = 0);
    RULE("params->size is 1", INV, "size", 0, f->pw.p.size = 1);
    RULE("params->size > sizeof(attn_sdpa_params)", INV, "size", 0,
         f->pw.p.size = sizeof(attn_sdpa_params) + 8);
    RULE("params->size is SIZE_MAX", INV, "size", 0, f->pw.p.size = SIZE_MAX);
}

static void sdpa_ndim_dtype(void)
{
    RULE("q ndim 3", INV, "q", 0, f->q.ndim = 3);
    RULE("q ndim 5", INV, "q", 0, f->q.ndim = 5, f->q.shape[4] = 1);
    RULE("q ndim 0", INV, "q", 0, f->q.ndim = 0);
    RULE("q ndim -1", INV, "q", 0, f->q.ndim = -1);
    RULE("q ndim 7 (> ATTN_MAX_DIMS)", INV, "q", 0, f->q.ndim = 7);
    RULE("k ndim 3", INV, "k", 0, f->k.ndim = 3);
    RULE("v ndim 5", INV, "v", 0, f->v.ndim = 5, f->v.shape[4] = 1);
    RULE("out ndim 3", INV, "out", 0, f->out.ndim = 3);
    RULE("lse ndim 4", INV, "lse", FX_LSE, f->lse.ndim = 4, f->lse.shape[3] = 1);
    RULE("lse ndim 2", INV, "lse", FX_LSE, f->lse.ndim = 2);
    RULE("mask ndim 3", INV, "mask", FX_MASK, f->mask.ndim = 3);
    RULE("gate ndim 3", INV, "gate", FX_GATE, f->gate.ndim = 3);
    RULE("block_mask ndim 2", INV, "block_mask", FX_BM, f->bm.ndim = 2);

    RULE("q dtype U8", INV, "q", 0, f->q.dtype = ATTN_U8, f->k.dtype = ATTN_U8,
         f->v.dtype = ATTN_U8);
    RULE("q dtype Q8", INV, "q", 0, f->q.dtype = ATTN_Q8, f->k.dtype = ATTN_Q8,
         f->v.dtype = ATTN_Q8);
    RULE("q dtype Q4", INV, "q", 0, f->q.dtype = ATTN_Q4, f->k.dtype = ATTN_Q4,
         f->v.dtype = ATTN_Q4);
    RULE("q dtype 99 (not an attn_dtype)", INV, "q", 0, f->q.dtype = (attn_dtype)99);
    RULE("q dtype -1 (not an attn_dtype)", INV, "q", 0, f->q.dtype = (attn_dtype)-1);
    RULE("k dtype U8", INV, "k", 0, f->k.dtype = ATTN_U8);
    RULE("v dtype Q8", INV, "v", 0, f->v.dtype = ATTN_Q8);
    RULE("q f32 but k f16", INV, "k", 0, f->k.dtype = ATTN_F16);
    RULE("q f32 but v bf16", INV, "v", 0, f->v.dtype = ATTN_BF16);
    RULE("q f16 but k/v f32", INV, "k", 0, f->q.dtype = ATTN_F16);
    RULE("out dtype U8", INV, "out", 0, f->out.dtype = ATTN_U8);
    RULE("out dtype Q4", INV, "out", 0, f->out.dtype = ATTN_Q4);
    RULE("lse dtype F16", INV, "lse", FX_LSE, f->lse.dtype = ATTN_F16);
    RULE("lse dtype BF16", INV, "lse", FX_LSE, f->lse.dtype = ATTN_BF16);
    RULE("mask dtype BF16", INV, "mask", FX_MASK, f->mask.dtype = ATTN_BF16);
    RULE("mask dtype Q8", INV, "mask", FX_MASK, f->mask.dtype = ATTN_Q8);
    RULE("gate dtype U8", INV, "gate", FX_GATE, f->gate.dtype = ATTN_U8);
    RULE("block_mask dtype F32", INV, "block_mask", FX_BM, f->bm.dtype = ATTN_F32);
    RULE("block_mask dtype F16", INV, "block_mask", FX_BM, f->bm.dtype = ATTN_F16);
}

static void sdpa_shapes(void)
{
    RULE("k batch != q batch", INV, "k", 0, f->k.shape[0] = 1);
    RULE("v batch != q batch", INV, "v", 0, f->v.shape[0] = 1);
    RULE("out batch != q batch", INV, "out", 0, f->out.shape[0] = 1);
    RULE("v Sk != k Sk", INV, "v", 0, f->v.shape[1] = 6);
    RULE("v Hkv != k Hkv", INV, "v", 0, f->v.shape[2] = 1);
    RULE("k D != q D", INV, "k", 0, f->k.shape[3] = 4);
    RULE("out Sq != q Sq", INV, "out", 0, f->out.shape[1] = 4);
    RULE("out Hq != q Hq", INV, "out", 0, f->out.shape[2] = 2);
    RULE("out Dv != v Dv", INV, "out", 0, f->out.shape[3] = 4);
    RULE("Hq not a multiple of Hkv (4 vs 3)", INV, "k", 0, f->k.shape[2] = 3,
         f->v.shape[2] = 3);
    RULE("Hq < Hkv (1 vs 2)", INV, "k", 0, f->q.shape[2] = 1, f->out.shape[2] = 1);
    RULE("Hkv = 0", INV, "k", 0, f->k.shape[2] = 0, f->v.shape[2] = 0);
    RULE("D = 0", INV, "q", 0, f->q.shape[3] = 0, f->k.shape[3] = 0);
    RULE("Dv = 0", INV, "v", 0, f->v.shape[3] = 0, f->out.shape[3] = 0);
    RULE("q shape[1] negative", INV, "q", 0, f->q.shape[1] = -1);
    RULE("k shape[0] negative", INV, "k", 0, f->k.shape[0] = -2);
    RULE("out shape[3] INT64_MIN", INV, "out", 0, f->out.shape[3] = INT64_MIN);
    RULE("q stride[3] negative", INV, "q", 0, contiguous_strides(&f->q), f->q.stride[3] = -1);
    RULE("k stride[0] negative", INV, "k", 0, contiguous_strides(&f->k),
         f->k.stride[0] = -f->k.stride[0]);
    RULE("out stride[1] negative", INV, "out", 0, contiguous_strides(&f->out),
         f->out.stride[1] = -1);
    RULE("head dim 8192 is beyond the library's limit", UNS, NULL, 0, {
        /* a real allocation so a library that accepts it cannot overrun */
        region_free(&f->rq); region_free(&f->rk);
        set4(&f->q, region_new(&f->rq, 4 * 8192), ATTN_F32, 1, 1, 1, 8192);
        set4(&f->k, region_new(&f->rk, 4 * 8192), ATTN_F32, 1, 1, 1, 8192);
        f->v.shape[0] = 1; f->v.shape[1] = 1; f->v.shape[2] = 1;
        f->out.shape[0] = 1; f->out.shape[1] = 1; f->out.shape[2] = 1;
    });
}

static void sdpa_overflow_and_memory(void)
{
    const int64_t T40 = INT64_C(1) << 40;
    /* stride 0 along the sequence: 2^31 (or INT64_MAX) keys in a few bytes;
     * found by the fuzzer (tile counts overflowed) */
    RULE("k/v with 2^31 keys through a stride-0 sequence dim", UNS, "k", 0,
         contiguous_strides(&f->k), contiguous_strides(&f->v),
         f->k.shape[1] = f->v.shape[1] = INT64_C(1) << 31,
         f->k.stride[1] = f->v.stride[1] = 0);
    RULE("k/v with INT64_MAX keys through a stride-0 sequence dim (element count overflows)",
         INV, "k", 0,
         contiguous_strides(&f->k), contiguous_strides(&f->v),
         f->k.shape[1] = f->v.shape[1] = INT64_MAX,
         f->k.stride[1] = f->v.stride[1] = 0);
    RULE("q shape 2^40 x stride 2^40 (extent overflows int64)", INV, "q", 0,
         f->q.shape[0] = T40, f->q.stride[0] = T40, f->q.stride[1] = 1, f->q.stride[2] = 1,
         f->q.stride[3] = 1, f->k.shape[0] = T40, f->v.shape[0] = T40);
    RULE("k shape 2^40 x stride 2^40", INV, "k", 0,
         f->k.shape[1] = T40, f->k.stride[1] = T40, f->k.stride[3] = 1);
    RULE("q element count overflows int64 (contiguous 2^32 x 2^32 x 4 x 8)", INV, "q", 0,
         f->q.shape[0] = INT64_C(1) << 32, f->q.shape[1] = INT64_C(1) << 32);
    RULE("out element count overflows int64", INV, "out", 0,
         f->out.shape[1] = INT64_C(1) << 40, f->out.shape[2] = INT64_C(1) << 40);
    RULE("q byte extent overflows size_t (2^62 f32 elements)", INV, "q", 0,
         f->q.shape[0] = f->q.shape[1] = f->q.shape[2] = 1, f->q.shape[3] = INT64_C(1) << 62);
    RULE("q byte extent > SIZE_MAX/2 (2^61 f32 elements)", INV, "q", 0,
         f->q.shape[0] = f->q.shape[1] = f->q.shape[2] = 1, f->q.shape[3] = INT64_C(1) << 61);
    RULE("out stride INT64_MAX", INV, "out", 0, contiguous_strides(&f->out),
         f->out.stride[0] = INT64_MAX);
    RULE("q stride INT64_MAX on dim 2", INV, "q", 0, contiguous_strides(&f->q),
         f->q.stride[2] = INT64_MAX);
    RULE("lse shape huge", INV, "lse", FX_LSE, f->lse.shape[0] = f->lse.shape[1] = 1,
         f->lse.shape[2] = INT64_C(1) << 62);
    RULE("mask stride 2^62", INV, "mask", FX_MASK, contiguous_strides(&f->mask),
         f->mask.stride[2] = INT64_C(1) << 62);

    RULE("q data NULL", INV, "q", 0, f->q.data = NULL);
    RULE("k data NULL", INV, "k", 0, f->k.data = NULL);
    RULE("v data NULL", INV, "v", 0, f->v.data = NULL);
    RULE("out data NULL", INV, "out", 0, f->out.data = NULL);
    RULE("lse data NULL", INV, "lse", FX_LSE, f->lse.data = NULL);
    RULE("mask data NULL", INV, "mask", FX_MASK, f->mask.data = NULL);
    RULE("gate data NULL", INV, "gate", FX_GATE, f->gate.data = NULL);
    RULE("block_mask data NULL", INV, "block_mask", FX_BM, f->bm.data = NULL);

    /* buffer-backed tensors: the library knows the buffer size */
    RULE("q in a buffer too small", INV, "q", 0, {
        attn_buffer *b = fx_buffer(f, 4 * 100);   /* q needs 2*5*4*8 = 320 floats */
        f->q.data = NULL; f->q.buffer = b;
    });
    RULE("q in a buffer: offset + extent past the end by one element", INV, "q", 0, {
        attn_buffer *b = fx_buffer(f, 4 * 320 + 64);
        f->q.data = NULL; f->q.buffer = b; f->q.offset = 68;
    });
    RULE("out in a buffer: offset + extent past the end", INV, "out", 0, {
        attn_buffer *b = fx_buffer(f, 4 * 320);
        f->out.data = NULL; f->out.buffer = b; f->out.offset = 4;
    });
    RULE("out in a buffer: offset past the end", INV, "out", 0, {
        attn_buffer *b = fx_buffer(f, 4 * 320);
        f->out.data = NULL; f->out.buffer = b; f->out.offset = 4 * 320 + 4;
    });
    RULE("k in a buffer: offset SIZE_MAX - 3 (offset + extent wraps)", INV, "k", 0, {
        attn_buffer *b = fx_buffer(f, 4 * 1024);
        f->k.data = NULL; f->k.buffer = b; f->k.offset = SIZE_MAX - 3;
    });
    RULE("lse in a buffer too small", INV, "lse", FX_LSE, {
        attn_buffer *b = fx_buffer(f, 4 * 39);   /* lse needs 2*4*5 = 40 */
        f->lse.data = NULL; f->lse.buffer = b;
    });
    RULE("mask in a buffer too small", INV, "mask", FX_MASK, {
        attn_buffer *b = fx_buffer(f, 64);
        f->mask.data = NULL; f->mask.buffer = b;
    });
    RULE("out in a buffer with a strided extent past the end", INV, "out", 0, {
        attn_buffer *b = fx_buffer(f, 4 * 320);
        f->out.data = NULL; f->out.buffer = b;
        contiguous_strides(&f->out); f->out.stride[0] = 161;   /* last elem 161+159 = 320 */
    });
    RULE("q in a buffer at an offset not a multiple of the element size", INV, "q", 0, {
        attn_buffer *b = fx_buffer(f, 4 * 400);
        f->q.data = NULL; f->q.buffer = b; f->q.offset = 2;
    });
}

static void sdpa_aliasing(void)
{
    RULE("out has a zero stride on a dim of size > 1 (heads)", INV, "out", 0,
         contiguous_strides(&f->out), f->out.stride[2] = 0);
    RULE("out has a zero stride on the batch dim", INV, "out", 0,
         contiguous_strides(&f->out), f->out.stride[0] = 0);
    RULE("out strides overlap (head stride Dv/2)", INV, "out", 0,
         contiguous_strides(&f->out), f->out.stride[2] = 4);
    RULE("out strides overlap (seq stride = head stride)", INV, "out", 0,
         contiguous_strides(&f->out), f->out.stride[1] = f->out.stride[2]);
    RULE("lse has a zero stride on Sq", INV, "lse", FX_LSE,
         contiguous_strides(&f->lse), f->lse.stride[2] = 0);
    RULE("out is q (same memory)", INV, "out", 0, f->out.data = f->q.data);
    RULE("out overlaps the tail of q", INV, "out", 0,
         f->out.data = (float *)f->q.data + 100);
    RULE("out is k", INV, "out", 0, f->out.data = f->k.data);
    RULE("out is v", INV, "out", 0, f->out.data = f->v.data);
    RULE("out is gate", INV, "out", FX_GATE, f->out.data = f->gate.data);
    RULE("out is mask", INV, "out", FX_MASK, f->out.data = f->mask.data);
    RULE("out is block_mask", INV, "out", FX_BM, f->out.data = f->bm.data);
    RULE("lse overlaps out", INV, "lse", FX_LSE, f->lse.data = (float *)f->out.data + 8);
    RULE("lse is q", INV, "lse", FX_LSE, f->lse.data = f->q.data);
    RULE("lse is mask", INV, "lse", FX_LSE | FX_MASK, f->lse.data = f->mask.data);
    RULE("out and q in the same buffer, overlapping", INV, "out", 0, {
        attn_buffer *b = fx_buffer(f, 4 * 1024);
        attn_buffer_write(b, 0, f->q.data, 4 * 320);
        f->q.data = NULL; f->q.buffer = b; f->q.offset = 0;
        f->out.data = NULL; f->out.buffer = b; f->out.offset = 4 * 300;
    });
}

static void sdpa_scalars(void)
{
    RULE("window_left = -2", INV, "window_left", 0, f->pw.p.window_left = -2);
    RULE("window_left = INT64_MIN", INV, "window_left", 0, f->pw.p.window_left = INT64_MIN);
    RULE("window_right = -2", INV, "window_right", 0, f->pw.p.window_right = -2);
    RULE("sink_tokens = -1", INV, "sink_tokens", 0, f->pw.p.sink_tokens = -1);
    RULE("softcap negative", INV, "softcap", 0, f->pw.p.softcap = -1.0f);
    RULE("softcap NaN", INV, "softcap", 0, f->pw.p.softcap = NAN);
    RULE("softcap +inf", INV, "softcap", 0, f->pw.p.softcap = INFINITY);
    RULE("scale NaN", INV, "scale", 0, f->pw.p.scale = NAN);
    RULE("scale +inf", INV, "scale", 0, f->pw.p.scale = INFINITY);
    RULE("scale -inf", INV, "scale", 0, f->pw.p.scale = -INFINITY);
    RULE("sigmoid_bias NaN", INV, "sigmoid_bias", 0,
         f->pw.p.score = ATTN_SCORE_SIGMOID, f->pw.p.sigmoid_bias = NAN);
    RULE("score = 2 (not an attn_score)", INV, "score", 0, f->pw.p.score = (attn_score)2);
    RULE("score = -1", INV, "score", 0, f->pw.p.score = (attn_score)-1);
    RULE("sigmoid with lse requested", INV, "lse", FX_LSE, f->pw.p.score = ATTN_SCORE_SIGMOID);
    RULE("sigmoid with sink_logits", INV, "sink_logits", 0,
         f->pw.p.score = ATTN_SCORE_SIGMOID, f->pw.p.sink_logits = f->sinks);
}

static void sdpa_optional_tensors(void)
{
    RULE("mask Sk wrong", INV, "mask", FX_MASK, f->mask.shape[3] = f->Sk + 1);
    RULE("mask Sq wrong", INV, "mask", FX_MASK, f->mask.shape[2] = f->Sq - 1);
    RULE("mask batch neither B nor 1", INV, "mask", FX_MASK, f->mask.shape[0] = 3);
    RULE("mask heads neither Hq nor 1 (Hkv)", INV, "mask", FX_MASK, f->mask.shape[1] = 2);
    RULE("mask [Sq,Sk] transposed", INV, "mask", FX_MASK,
         f->mask.shape[2] = f->Sk, f->mask.shape[3] = f->Sq);
    RULE("gate Dv wrong", INV, "gate", FX_GATE, f->gate.shape[3] = 4);
    RULE("gate Sq wrong", INV, "gate", FX_GATE, f->gate.shape[1] = 1);
    RULE("gate broadcast batch 1 (must equal out's shape)", INV, "gate", FX_GATE,
         f->gate.shape[0] = 1);
    RULE("gate heads wrong", INV, "gate", FX_GATE, f->gate.shape[2] = 1);
    RULE("block_mask with block_q = 0", INV, "block_q", FX_BM, f->pw.p.block_q = 0);
    RULE("block_mask with block_k = 0", INV, "block_k", FX_BM, f->pw.p.block_k = 0);
    RULE("block_mask with block_k = -4", INV, "block_k", FX_BM, f->pw.p.block_k = -4);
    RULE("block_mask row count wrong", INV, "block_mask", FX_BM, f->bm.shape[2] += 1);
    RULE("block_mask column count wrong", INV, "block_mask", FX_BM, f->bm.shape[3] -= 1);
    RULE("block_mask batch wrong", INV, "block_mask", FX_BM, f->bm.shape[0] = 3);
    RULE("block_mask heads wrong", INV, "block_mask", FX_BM, f->bm.shape[1] = 2);
    RULE("lse Sq wrong", INV, "lse", FX_LSE, f->lse.shape[2] = f->Sq + 1);
    RULE("lse [B,Sq,Hq] instead of [B,Hq,Sq]", INV, "lse", FX_LSE,
         f->lse.shape[1] = f->Sq, f->lse.shape[2] = f->Hq);
    RULE("lse batch wrong", INV, "lse", FX_LSE, f->lse.shape[0] = 1);
}

static void sdpa_varlen(void)
{
    RULE("cu_seqlens_q without cu_seqlens_k", INV, "cu_seqlens_k", FX_VARLEN,
         f->pw.p.cu_seqlens_k = NULL);
    RULE("cu_seqlens_k without cu_seqlens_q", INV, "cu_seqlens_q", FX_VARLEN,
         f->pw.p.cu_seqlens_q = NULL);
    RULE("num_seqs = 0", INV, "num_seqs", FX_VARLEN, f->pw.p.num_seqs = 0);
    RULE("num_seqs = -1", INV, "num_seqs", FX_VARLEN, f->pw.p.num_seqs = -1);
    RULE("varlen with q batch 2", INV, "q", FX_VARLEN,
         f->q.shape[0] = 2, f->k.shape[0] = 2, f->v.shape[0] = 2, f->out.shape[0] = 2);
    RULE("cu_seqlens_q[0] = 1", INV, "cu_seqlens_q", FX_VARLEN, f->cu_q[0] = 1);
    RULE("cu_seqlens_k[0] = -1", INV, "cu_seqlens_k", FX_VARLEN, f->cu_k[0] = -1);
    RULE("cu_seqlens_q not monotonic", INV, "cu_seqlens_q", FX_VARLEN, f->cu_q[2] = 1);
    RULE("cu_seqlens_k not monotonic", INV, "cu_seqlens_k", FX_VARLEN, f->cu_k[3] = 6);
    RULE("cu_seqlens_q last entry past total_q", INV, "cu_seqlens_q", FX_VARLEN,
         f->cu_q[3] = 7);
    RULE("cu_seqlens_k last entry past total_k", INV, "cu_seqlens_k", FX_VARLEN,
         f->cu_k[3] = 10);
    RULE("cu_seqlens_k INT32_MAX", INV, "cu_seqlens_k", FX_VARLEN, f->cu_k[3] = INT32_MAX);
    RULE("varlen lse not [1,Hq,total_q]", INV, "lse", FX_VARLEN | FX_LSE,
         f->lse.shape[2] = 3);
    RULE("varlen mask not [num_seqs|1,Hq|1,max_q,max_k]", INV, "mask", FX_VARLEN | FX_MASK,
         f->mask.shape[2] = 6);
    RULE("varlen mask batch = 2 (num_seqs = 3)", INV, "mask", FX_VARLEN | FX_MASK,
         f->mask.shape[0] = 2);
    RULE("varlen gate not [1,total_q,Hq,Dv]", INV, "gate", FX_VARLEN | FX_GATE,
         f->gate.shape[1] = 3);
    RULE("varlen block_mask wrong", INV, "block_mask", FX_VARLEN | FX_BM,
         f->bm.shape[3] = 3);
    VALID("varlen: last entries below the packed totals (unused tail)", FX_VARLEN,
          f->cu_q[3] = 5, f->cu_k[3] = 8);
    VALID("varlen: an empty sequence", FX_VARLEN | FX_LSE, f->cu_q[2] = 2);
}

/* Extreme but valid values: nothing may overflow inside the library. Run
 * last: with UBSan halting on the first error these abort the program. */
static void sdpa_extremes(void)
{
    /* empty tensors (Sq = Sk = 0) whose other dims and strides are huge:
     * valid, nothing to do, and no size arithmetic may overflow */
    VALID("empty q/k/v/out with batch 2^40 and stride 2^40", 0, {
        attn_tensor *ts[4] = { &f->q, &f->k, &f->v, &f->out };
        for (int i = 0; i < 4; i++) {
            ts[i]->shape[0] = INT64_C(1) << 40;
            ts[i]->shape[1] = 0;
            ts[i]->stride[0] = INT64_C(1) << 40;
            ts[i]->stride[1] = ts[i]->stride[2] = ts[i]->stride[3] = 1;
        }
    });
    VALID("empty q/k/v/out with batch 2^62 (B x Hkv overflows)", 0, {
        attn_tensor *ts[4] = { &f->q, &f->k, &f->v, &f->out };
        for (int i = 0; i < 4; i++) {
            ts[i]->shape[0] = INT64_C(1) << 62;
            ts[i]->shape[1] = 0;
        }
    });
    VALID("window_left = window_right = sink_tokens = INT64_MAX", FX_LSE,
          f->pw.p.window_left = INT64_MAX, f->pw.p.window_right = INT64_MAX,
          f->pw.p.sink_tokens = INT64_MAX);
    VALID("window_left = INT64_MAX, causal", FX_LSE, f->pw.p.window_left = INT64_MAX,
          f->pw.p.causal = 1);
    VALID("window_right = INT64_MAX, window_left = 0", FX_LSE, f->pw.p.window_right = INT64_MAX,
          f->pw.p.window_left = 0);
    VALID("block_q = block_k = INT64_MAX (one block each way)", FX_BM,
          f->pw.p.block_q = INT64_MAX, f->pw.p.block_k = INT64_MAX,
          f->bm.shape[2] = 1, f->bm.shape[3] = 1);
    VALID("scale = FLT_MAX, softcap = FLT_MIN", FX_LSE, f->pw.p.scale = 3.4028235e38f,
          f->pw.p.softcap = 1.17549435e-38f);
}

/* ---- attn_merge ------------------------------------------------------------ */

typedef struct mfix {
    int n;
    attn_tensor outs[3], lses[3], out, lse;
    region ro[3], rl[3], rout, rlse;
    attn_context *ctx;
    const attn_tensor *pouts, *plses, *pout, *plse;
} mfix;

static void mf_init(mfix *m)
{
    memset(m, 0, sizeof *m);
    unsigned seed = 777;
    const int64_t B = 2, S = 3, H = 4, Dv = 8;
    m->n = 3;
    for (int i = 0; i < 3; i++) {
        set4(&m->outs[i], region_new(&m->ro[i], SLACK * 4 * B * S * H * Dv), ATTN_F32, B, S, H, Dv);
        set3(&m->lses[i], region_new(&m->rl[i], SLACK * 4 * B * H * S), ATTN_F32, B, H, S);
        region_fill_random(&m->ro[i], ATTN_F32, &seed);
        region_fill_random(&m->rl[i], ATTN_F32, &seed);
    }
    set4(&m->out, region_new(&m->rout, SLACK * 4 * B * S * H * Dv), ATTN_F32, B, S, H, Dv);
    set3(&m->lse, region_new(&m->rlse, SLACK * 4 * B * H * S), ATTN_F32, B, H, S);
    m->ctx = g_ctx;
    m->pouts = m->outs; m->plses = m->lses; m->pout = &m->out; m->plse = &m->lse;
}

static region *mf_region(mfix *m, int i)
{
    return i < 3 ? &m->ro[i] : i < 6 ? &m->rl[i - 3] : i == 6 ? &m->rout : &m->rlse;
}

static void mf_free(mfix *m)
{
    for (int i = 0; i < 8; i++)
        region_free(mf_region(m, i));
}

static void expect_merge(mfix *m, const char *rule, attn_status want, const char *name)
{
    for (int i = 0; i < 8; i++) {
        region *r = mf_region(m, i);
        memcpy(r->snap, r->raw, r->n + 2 * GUARD);
    }
    attn_status s = attn_merge(m->ctx, m->pouts, m->plses, m->n, m->pout, m->plse);
    const char *changed = NULL;
    for (int i = 0; i < 8 && s != ATTN_OK; i++) {
        region *r = mf_region(m, i);
        if (memcmp(r->snap, r->raw, r->n + 2 * GUARD))
            changed = i < 3 ? "outs[i] memory" : i < 6 ? "lses[i] memory" : i == 6 ?
                      "out memory" : "lse memory";
    }
    check_failure("attn_merge", rule, s, want, name, changed);
}

#define MRULE(desc, want, name, ...) do {                    \
        mfix m_; mf_init(&m_); mfix *m = &m_; (void)m;        \
        __VA_ARGS__;                                          \
        expect_merge(m, desc, want, name);                    \
        mf_free(m);                                           \
    } while (0)

#define MVALID(desc, ...) do {                                            \
        mfix m_; mf_init(&m_); mfix *m = &m_; (void)m;                     \
        __VA_ARGS__;                                                       \
        expect_ok("attn_merge", desc,                                      \
                  attn_merge(m->ctx, m->pouts, m->plses, m->n, m->pout, m->plse)); \
        mf_free(m);                                                        \
    } while (0)

static void merge_rules(void)
{
    MVALID("baseline");
    MVALID("baseline without lse", m->plse = NULL);
    MVALID("n = 1", m->n = 1);
    MVALID("mixed part dtypes (f16 part, bf16 out)", m->outs[1].dtype = ATTN_F16,
           m->out.dtype = ATTN_BF16);

    MRULE("ctx is NULL", INV, "ctx", m->ctx = NULL);
    MRULE("n = 0", INV, "n", m->n = 0);
    MRULE("n = -1", INV, "n", m->n = -1);
    MRULE("outs is NULL", INV, "outs", m->pouts = NULL);
    MRULE("lses is NULL", INV, "lses", m->plses = NULL);
    MRULE("out is NULL", INV, "out", m->pout = NULL);
    MRULE("outs[1] shape differs", INV, "outs", m->outs[1].shape[3] = 4);
    MRULE("outs[2] batch differs", INV, "outs", m->outs[2].shape[0] = 1);
    MRULE("out shape differs from the parts", INV, "outs", m->plse = NULL, m->out.shape[1] = 2);
    MRULE("lses[1] shape differs", INV, "lses", m->lses[1].shape[2] = 2);
    MRULE("lses[0] [B,S,H] instead of [B,H,S]", INV, "lses",
          m->lses[0].shape[1] = 3, m->lses[0].shape[2] = 4);
    MRULE("lses[2] dtype F16", INV, "lses", m->lses[2].dtype = ATTN_F16);
    MRULE("lses[0] ndim 4", INV, "lses", m->lses[0].ndim = 4, m->lses[0].shape[3] = 1);
    MRULE("outs[1] dtype U8", INV, "outs", m->outs[1].dtype = ATTN_U8);
    MRULE("outs[0] dtype Q8", INV, "outs", m->outs[0].dtype = ATTN_Q8);
    MRULE("outs[1] data NULL", INV, "outs", m->outs[1].data = NULL);
    MRULE("lses[1] data NULL", INV, "lses", m->lses[1].data = NULL);
    MRULE("outs[0] negative stride", INV, "outs", contiguous_strides(&m->outs[0]),
          m->outs[0].stride[3] = -1);
    MRULE("outs[2] extent overflows", INV, "outs",
          m->outs[2].stride[0] = INT64_C(1) << 40, m->outs[2].stride[1] = 1,
          m->outs[2].stride[2] = 1, m->outs[2].stride[3] = 1,
          m->outs[2].shape[0] = INT64_C(1) << 40);
    MRULE("out dtype U8", INV, "out", m->out.dtype = ATTN_U8);
    MRULE("out ndim 3", INV, "out", m->out.ndim = 3);
    MRULE("out data NULL", INV, "out", m->out.data = NULL);
    MRULE("lse (merged) shape wrong", INV, "lse", m->lse.shape[0] = 1);
    MRULE("lse (merged) dtype BF16", INV, "lse", m->lse.dtype = ATTN_BF16);
    MRULE("out aliases outs[1]", INV, "out", m->out.data = m->outs[1].data);
    MRULE("out overlaps lses[0]", INV, "out", m->out.data = m->lses[0].data);
    MRULE("lse aliases lses[2]", INV, "lse", m->lse.data = m->lses[2].data);
    MRULE("lse overlaps out", INV, "lse", m->lse.data = (float *)m->out.data + 4);
    MRULE("out has a zero stride on heads", INV, "out", contiguous_strides(&m->out),
          m->out.stride[2] = 0);
    MRULE("lse has overlapping strides", INV, "lse", contiguous_strides(&m->lse),
          m->lse.stride[1] = 1);
    {
        /* out in a CPU buffer too small for it; the buffer must stay untouched */
        mfix m_; mf_init(&m_); mfix *m = &m_;
        attn_buffer *b = NULL;
        if (attn_buffer_create(g_ctx, 0, 4 * 100, &b) != ATTN_OK) {
            printf("FAIL attn_buffer_create: %s\n", attn_last_error());
            g_fail++;
        } else {
            unsigned char *h = attn_buffer_host_ptr(b);
            memset(h, POISON, 4 * 100);
            m->out.data = NULL; m->out.buffer = b;
            expect_merge(m, "out in a buffer too small", INV, "out");
            for (int i = 0; i < 4 * 100; i++)
                if (h[i] != POISON) {
                    printf("FAIL attn_merge: out in a buffer too small: buffer modified\n");
                    g_fail++;
                    break;
                }
            attn_buffer_destroy(b);
        }
        mf_free(m);
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* keep output if a sanitizer aborts */
    const char *vb = getenv("ATTN_TEST_VERBOSE");
    g_verbose = vb && *vb && strcmp(vb, "0") != 0;
    attn_status s = attn_context_create(NULL, &g_ctx);
    if (s != ATTN_OK) {
        printf("FAIL attn_context_create: %s\n", attn_last_error());
        return 1;
    }
    sdpa_baselines();
    sdpa_null_and_params();
    sdpa_ndim_dtype();
    sdpa_shapes();
    sdpa_overflow_and_memory();
    sdpa_aliasing();
    sdpa_scalars();
    sdpa_optional_tensors();
    sdpa_varlen();
    merge_rules();
    sdpa_extremes();
    attn_context_destroy(g_ctx);
    printf("test_validation: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
