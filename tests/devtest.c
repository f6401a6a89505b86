/*
 * The GPU backend tests' shared part (test_opencl, test_vulkan): tensors
 * copied into attn_buffers of the device under test, the attn_sdpa case
 * table and runner, and the attn_merge runner, all against the
 * double-precision reference. Tolerances (max error relative to the largest
 * reference output): f32 in and out 1e-5; any f16/bf16 tensor 1e-2.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"
#include "ref.h"

attn_context *ctx;
int dev;                        /* device index under test */

int device_under_test(int d, unsigned types, const char *only_env, attn_device_info *info)
{
    *info = (attn_device_info)ATTN_DEVICE_INFO_INIT;
    attn_device_get_info(ctx, d, info);
    const char *only = getenv(only_env);
    return (types & (1u << info->type)) && (!only || atoi(only) == d);
}

int devtest_main(const char *name, unsigned types, const char *only_env,
                 void (*per_device)(const attn_device_info *info), void (*after)(void))
{
    tu_init(name);
    if (types & DEVTEST_VULKAN)
        setenv("ATTN_VULKAN_DEBUG", "1", 0);
    if (attn_context_create(NULL, &ctx) != ATTN_OK) {
        fprintf(stderr, "attn_context_create: %s\n", attn_last_error());
        return 1;
    }
    int found = 0;
    for (dev = 0; dev < attn_device_count(ctx); dev++) {
        attn_device_info info;
        if (!device_under_test(dev, types, only_env, &info))
            continue;
        found++;
        const double t0 = tu_now();
        per_device(&info);
        printf("device %d: %.1f s\n", dev, tu_now() - t0);
    }
    attn_context_destroy(ctx);
    ctx = NULL;
    if (found && after)
        after();
    if (!found) {
        printf("no %s device: skipped\n", types == DEVTEST_OPENCL ? "OpenCL" :
               types == DEVTEST_VULKAN ? "Vulkan" : "OpenCL or Vulkan");
        return 77;
    }
    return tu_finish();
}

int upload(dtensor *x)
{
    if (attn_buffer_create(ctx, dev, x->h.total + OFF, &x->buf) != ATTN_OK)
        return -1;
    if (attn_buffer_write(x->buf, OFF, x->h.mem, x->h.total) != ATTN_OK)
        return -1;
    x->d = x->h.t;
    x->d.data = NULL;
    x->d.buffer = x->buf;
    x->d.offset = OFF + (size_t)((unsigned char *)x->h.t.data - x->h.mem);
    return 0;
}

int mk(dtensor *x, attn_dtype dt, int ndim, const int64_t *shape, int layout)
{
    memset(x, 0, sizeof *x);
    return tu_tensor_alloc(&x->h, dt, ndim, shape, layout);
}

int download(dtensor *x)
{
    return attn_buffer_read(x->buf, OFF, x->h.mem, x->h.total) == ATTN_OK ? 0 : -1;
}

void dfree(dtensor *x)
{
    attn_buffer_destroy(x->buf);
    tu_tensor_free(&x->h);
    memset(x, 0, sizeof *x);
}

double tol_for(attn_dtype a, attn_dtype b)
{
    return a == ATTN_F32 && b == ATTN_F32 ? 1e-5 : 1e-2;
}

/* ------------------------------------------------------------------------ */
/* attn_sdpa                                                                */
/* ------------------------------------------------------------------------ */

const scase devtest_cases[] = {
 /* name              b  sq   sk  hq hkv  d   dv  in         out        layout        c  wl  wr sk al sl sg cap  m  g  bm vl lse q */
 { "f32-gqa",         2, 65, 129,  4, 2, 64, 64, ATTN_F32,  ATTN_F32,  TU_CONTIG,    0, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 },
 { "causal-swap12",   2, 63, 129,  4, 2, 64, 64, ATTN_F32,  ATTN_F16,  TU_SWAP12,    1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 },
 { "window-sinks",    1, 70,  90,  2, 1, 64, 64, ATTN_F32,  ATTN_F32,  TU_PADDED,    0, 17,  5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 },
 { "everything",      2, 33,  97,  4, 4, 64, 64, ATTN_F32,  ATTN_F32,  TU_CONTIG,    1, 20, -1, 2, 1, 1, 0, 30, 0, 0, 0, 0, 1, 1 },
 { "mask-f32-bcast",  2, 40,  71,  4, 2, 64, 64, ATTN_F32,  ATTN_F32,  TU_EXPLICIT,  0, -1, -1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0 },
 { "mask-f16-bcast",  2, 40,  71,  2, 1, 64, 64, ATTN_F16,  ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0 },
 { "mask-u8",         2, 37,  50,  2, 2, 64, 64, ATTN_F32,  ATTN_BF16, TU_SWAP12,    0, -1, -1, 0, 0, 1, 0, 0, 3, 0, 0, 0, 1, 1 },
 { "sigmoid-gate",    1, 50,  66,  4, 2, 64, 64, ATTN_F32,  ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 1, 0, 1, 0, 0, 3, 0, 0, 0, 1 },
 { "block-mask",      2, 70, 140,  2, 1, 64, 64, ATTN_F32,  ATTN_F32,  TU_CONTIG,    0, -1, -1, 0, 0, 0, 0, 0, 0, 0, 16, 0, 1, 1 },
 { "varlen-causal",   1,  0,   0,  4, 2, 64, 64, ATTN_F32,  ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 3, 1, 0, 1, 1, 1 },
 { "f16-gqa4",        1, 65,  65,  8, 2, 64, 64, ATTN_F16,  ATTN_F16,  TU_SWAP12,    1, -1, -1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 1, 1 },
 { "bf16-window",     2, 31,  64,  2, 2, 64, 64, ATTN_BF16, ATTN_BF16, TU_PADDED,    1, 9, -1,  1, 1, 0, 0, 20, 0, 0, 8, 0, 1, 1 },
 { "odd-dims-mqa",    3,  1,   7,  3, 1, 40, 24, ATTN_F32,  ATTN_F32,  TU_INNER2,    1, -1, -1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0 },
 { "odd-dims-big",    1, 77, 200,  2, 1, 40, 24, ATTN_F32,  ATTN_F32,  TU_SWAP12_PADDED, 0, 50, 10, 4, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0 },
 { "no-visible-keys", 2,  9,   4,  2, 1, 64, 64, ATTN_F32,  ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1 },
 { "d128-causal",     1,129, 129,  2, 2,128,128, ATTN_F32,  ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 },
};
const size_t devtest_ncases = sizeof devtest_cases / sizeof devtest_cases[0];

static const int32_t cu_q[] = { 0, 5, 5, 75 };     /* lengths 5, 0, 70 */
static const int32_t cu_k[] = { 0, 9, 13, 77 };    /* lengths 9, 4, 64 */

void run_sdpa(const scase *c)
{
    const int varlen = c->varlen;
    const int64_t nseq = varlen ? 3 : c->b;
    const int64_t bt = varlen ? 1 : c->b;
    const int64_t sq = varlen ? cu_q[3] : c->sq, sk = varlen ? cu_k[3] : c->sk;
    const int64_t msq = varlen ? 70 : sq, msk = varlen ? 64 : sk;   /* per-sequence longest */
    dtensor q, k, v, out, lse, mask, gate, bm;
    memset(&lse, 0, sizeof lse); memset(&mask, 0, sizeof mask);
    memset(&gate, 0, sizeof gate); memset(&bm, 0, sizeof bm);
    const int64_t qs[4] = { bt, sq, c->hq, c->d }, ks[4] = { bt, sk, c->hkv, c->d };
    const int64_t vs[4] = { bt, sk, c->hkv, c->dv }, os[4] = { bt, sq, c->hq, c->dv };
    const int64_t ls[3] = { bt, c->hq, sq };
    int err = mk(&q, c->in, 4, qs, c->layout) | mk(&k, c->in, 4, ks, c->layout) |
              mk(&v, c->in, 4, vs, c->layout) | mk(&out, c->out, 4, os, c->layout);
    if (c->lse)
        err |= mk(&lse, ATTN_F32, 3, ls, c->layout == TU_CONTIG ? TU_CONTIG : TU_SWAP12);
    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    p.causal = c->causal;
    p.window_left = c->wl;
    p.window_right = c->wr;
    p.sink_tokens = c->sinks;
    p.softcap = c->softcap;
    p.score = c->sigmoid ? ATTN_SCORE_SIGMOID : ATTN_SCORE_SOFTMAX;
    p.sigmoid_bias = c->sigmoid ? -0.5f : 0.0f;
    float slopes[16], sinkl[16];
    for (int h = 0; h < c->hq; h++) {
        slopes[h] = 0.05f * (float)(h + 1);
        sinkl[h] = 0.3f * (float)h - 0.2f;
    }
    if (c->alibi) p.alibi_slopes = slopes;
    if (c->sink_logits) p.sink_logits = sinkl;
    if (varlen) {
        p.cu_seqlens_q = cu_q;
        p.cu_seqlens_k = cu_k;
        p.num_seqs = nseq;
    }
    if (c->mask) {
        static const attn_dtype mdt[4] = { ATTN_F32, ATTN_F32, ATTN_F16, ATTN_U8 };
        const int64_t ms[4] = { c->mask == 1 ? 1 : nseq, c->mask == 2 ? 1 : c->hq, msq, msk };
        err |= mk(&mask, mdt[c->mask], 4, ms, c->layout == TU_SWAP12 ? TU_PADDED : TU_CONTIG);
    }
    if (c->gate)
        err |= mk(&gate, (attn_dtype)(c->gate - 1), 4, os, TU_CONTIG);
    if (c->bmask) {
        p.block_q = c->bmask;
        p.block_k = 2 * c->bmask;
        const int64_t bs[4] = { 1, c->hq, (msq + p.block_q - 1) / p.block_q,
                                (msk + p.block_k - 1) / p.block_k };
        err |= mk(&bm, ATTN_U8, 4, bs, TU_CONTIG);
    }
    if (err) {
        CHECK(0, "%s: host allocation failed", c->name);
        return;
    }
    tu_fill_normal(&q.h, 0.0, 1.0);
    tu_fill_normal(&k.h, 0.0, 1.0);
    tu_fill_normal(&v.h, 0.0, 1.0);
    if (c->mask == 3) {
        tu_fill_uniform(&mask.h, 0.0, 1.0);   /* u8: rounds to 0/1 */
        /* make whole rows invisible now and then */
        for (int64_t b = 0; b < mask.h.t.shape[0]; b++)
            for (int64_t h = 0; h < mask.h.t.shape[1]; h++)
                for (int64_t j = 0; j < msk; j++) {
                    int64_t idx[4] = { b, h, 3, j };
                    ref_set(&mask.h.t, idx, 0.0);
                }
    } else if (c->mask) {
        tu_fill_normal(&mask.h, 0.0, 1.0);
    }
    if (c->gate)
        tu_fill_normal(&gate.h, 0.0, 2.0);
    if (c->bmask) {
        tu_fill_uniform(&bm.h, 0.0, 1.0);
        int64_t idx[4] = { 0, 0, 0, 0 };
        ref_set(&bm.h.t, idx, 1.0);
    }
    tu_poison(&out.h);
    if (c->lse)
        tu_poison(&lse.h);

    /* Reference on the host tensors. */
    const size_t on = (size_t)(bt * sq * c->hq * c->dv), ln = (size_t)(bt * c->hq * sq);
    double *ro = malloc(on * sizeof *ro), *rl = malloc(ln * sizeof *rl);
    attn_sdpa_params hp = p;
    hp.mask = c->mask ? &mask.h.t : NULL;
    hp.gate = c->gate ? &gate.h.t : NULL;
    hp.block_mask = c->bmask ? &bm.h.t : NULL;
    if (!ro || !rl || ref_sdpa(&hp, &q.h.t, &k.h.t, &v.h.t, ro, rl) != 0) {
        CHECK(0, "%s: reference failed", c->name);
        goto done;
    }

    /* Device run. */
    if (upload(&q) || upload(&k) || upload(&v) || upload(&out) ||
        (c->lse && upload(&lse)) || (c->mask && upload(&mask)) || (c->gate && upload(&gate)) ||
        (c->bmask && upload(&bm))) {
        CHECK(0, "%s: upload failed: %s", c->name, attn_last_error());
        goto done;
    }
    attn_sdpa_params dp = p;
    dp.mask = c->mask ? &mask.d : NULL;
    dp.gate = c->gate ? &gate.d : NULL;
    dp.block_mask = c->bmask ? &bm.d : NULL;
    const double t0 = tu_now();
    attn_status s = attn_sdpa(ctx, &dp, &q.d, &k.d, &v.d, &out.d, c->lse ? &lse.d : NULL);
    const double dt = tu_now() - t0;
    CHECK(s == ATTN_OK, "%s: attn_sdpa: %s: %s", c->name, attn_status_string(s), attn_last_error());
    if (s != ATTN_OK || download(&out) || (c->lse && download(&lse))) {
        CHECK(0, "%s: download failed", c->name);
        goto done;
    }
    char msg[256] = "";
    long bad = tu_check_written(&out.h, msg, sizeof msg);
    CHECK(bad == 0, "%s: out: %ld bad bytes/elements: %s", c->name, bad, msg);
    const double tol = tol_for(c->in, c->out);
    double rmax = 0;
    int64_t worst = 0;
    const double e = tu_rel_err(&out.h, ro, &rmax, &worst);
    CHECK(e <= tol, "%s: out error %.3g > %.3g (worst element %lld, |ref| max %.3g)", c->name, e,
          tol, (long long)worst, rmax);
    double le = 0;
    if (c->lse) {
        bad = tu_check_written(&lse.h, msg, sizeof msg);
        CHECK(bad == 0, "%s: lse: %ld bad: %s", c->name, bad, msg);
        le = tu_lse_err(&lse.h, rl, &worst);
        CHECK(le <= tol, "%s: lse error %.3g > %.3g (worst %lld)", c->name, le, tol, (long long)worst);
    }
    if (tu_verbose)
        printf("  dev %d sdpa %-16s out err %.2e lse err %.2e  %.3f s\n", dev, c->name, e, le, dt);
done:
    free(ro);
    free(rl);
    dfree(&q); dfree(&k); dfree(&v); dfree(&out); dfree(&lse);
    dfree(&mask); dfree(&gate); dfree(&bm);
}

/* ------------------------------------------------------------------------ */
/* attn_merge                                                               */
/* ------------------------------------------------------------------------ */

void run_merge(const char *name, int n, int64_t b, int64_t s, int64_t h, int64_t dv,
                      attn_dtype in, attn_dtype outdt, int layout, int with_lse)
{
    dtensor parts[4], lses[4], out, lse;
    memset(&lse, 0, sizeof lse);
    const int64_t os[4] = { b, s, h, dv }, ls[3] = { b, h, s };
    int err = mk(&out, outdt, 4, os, layout);
    if (with_lse)
        err |= mk(&lse, ATTN_F32, 3, ls, TU_CONTIG);
    for (int i = 0; i < n; i++) {
        err |= mk(&parts[i], in, 4, os, i % 2 ? layout : TU_CONTIG);
        err |= mk(&lses[i], ATTN_F32, 3, ls, i % 2 ? TU_CONTIG : TU_PADDED);
    }
    if (err) {
        CHECK(0, "merge %s: allocation failed", name);
        return;
    }
    for (int i = 0; i < n; i++) {
        tu_fill_normal(&parts[i].h, 0.0, 1.0);
        tu_fill_normal(&lses[i].h, 0.0, 3.0);
        /* rows with -inf parts, and one row with nothing at all */
        for (int64_t r = 0; r < s; r += 3) {
            int64_t idx[3] = { 0, 0, r };
            if (r % 2 == 0 || i == 0)
                ref_set(&lses[i].h.t, idx, -INFINITY);
        }
    }
    tu_poison(&out.h);
    if (with_lse)
        tu_poison(&lse.h);
    const size_t on = (size_t)(b * s * h * dv), ln = (size_t)(b * h * s);
    double *ro = malloc((on ? on : 1) * sizeof *ro), *rl = malloc(ln * sizeof *rl);
    attn_tensor ho[4], hl[4], d_o[4], d_l[4];
    for (int i = 0; i < n; i++) {
        ho[i] = parts[i].h.t;
        hl[i] = lses[i].h.t;
    }
    if (!ro || !rl || ref_merge(ho, hl, n, ro, rl) != 0) {
        CHECK(0, "merge %s: reference failed", name);
        goto done;
    }
    int up = upload(&out) | (with_lse ? upload(&lse) : 0);
    for (int i = 0; i < n; i++) {
        up |= upload(&parts[i]) | upload(&lses[i]);
        d_o[i] = parts[i].d;
        d_l[i] = lses[i].d;
    }
    if (up) {
        CHECK(0, "merge %s: upload failed", name);
        goto done;
    }
    attn_status st = attn_merge(ctx, d_o, d_l, n, &out.d, with_lse ? &lse.d : NULL);
    CHECK(st == ATTN_OK, "merge %s: %s: %s", name, attn_status_string(st), attn_last_error());
    if (st != ATTN_OK || download(&out) || (with_lse && download(&lse)))
        goto done;
    char msg[256] = "";
    long bad = tu_check_written(&out.h, msg, sizeof msg);
    CHECK(bad == 0, "merge %s: out: %ld bad: %s", name, bad, msg);
    const double tol = tol_for(in, outdt);
    const double e = tu_rel_err(&out.h, ro, NULL, NULL);
    CHECK(e <= tol, "merge %s: out error %.3g > %.3g", name, e, tol);
    double le = 0;
    if (with_lse) {
        le = tu_lse_err(&lse.h, rl, NULL);
        CHECK(le <= 1e-5, "merge %s: lse error %.3g", name, le);
    }
    if (tu_verbose)
        printf("  dev %d merge %-14s out err %.2e lse err %.2e\n", dev, name, e, le);
done:
    free(ro);
    free(rl);
    for (int i = 0; i < n; i++) {
        dfree(&parts[i]);
        dfree(&lses[i]);
    }
    dfree(&out);
    dfree(&lse);
}

void run_merge_cases(void)
{
    run_merge("f32x3", 3, 2, 21, 3, 64, ATTN_F32, ATTN_F32, TU_SWAP12, 1);
    run_merge("f16x2-bf16out", 2, 1, 17, 2, 40, ATTN_F16, ATTN_BF16, TU_PADDED, 1);
    run_merge("single", 1, 2, 7, 1, 8, ATTN_BF16, ATTN_F32, TU_CONTIG, 0);
    if (!tu_quick)
        run_merge("f32x4-dv0", 4, 1, 6, 2, 0, ATTN_F32, ATTN_F32, TU_CONTIG, 1);
}

int decode_reference(attn_kv_cache *kc, int32_t seq, int64_t hkv, int64_t d, int64_t dv,
                     const attn_sdpa_params *p, const dtensor *q, const dtensor *gate,
                     int64_t b, double *out, double *lse)
{
    int64_t L = 0;
    CHECK_OK(attn_kv_cache_seq_len(kc, seq, &L));
    float *k = malloc((size_t)(L * hkv * d) * sizeof(float));
    float *v = malloc((size_t)(L * hkv * dv) * sizeof(float));
    attn_tensor tk = { .data = k, .dtype = ATTN_F32, .ndim = 3, .shape = { L, hkv, d } };
    attn_tensor tv = { .data = v, .dtype = ATTN_F32, .ndim = 3, .shape = { L, hkv, dv } };
    CHECK_OK(attn_kv_cache_read(kc, seq, 0, &tk, &tv));
    attn_tensor rk = attn_tensor_4d(k, ATTN_F32, 1, L, hkv, d);
    attn_tensor rv = attn_tensor_4d(v, ATTN_F32, 1, L, hkv, dv);
    attn_tensor rq = tu_slice(&q->h, 0, b, 1), rg;
    attn_sdpa_params rp = *p;
    if (gate) {
        rg = tu_slice(&gate->h, 0, b, 1);
        rp.gate = &rg;
    }
    const int r = ref_sdpa(&rp, &rq, &rk, &rv, out, lse);
    free(k);
    free(v);
    return r;
}
