/*
 * attn_decode on OpenCL (the KV cache's pool in device memory) against the
 * double-precision reference: every storage type, head dims that exercise
 * each load width (8/4/2/1 elements), GQA, page sizes, streaming caches,
 * forked and truncated sequences, batches with repeated sequences, and
 * every option decode supports (causal, windows, sink tokens, soft-cap,
 * ALiBi, sink logits, sigmoid, gate, lse; q/out/gate f32/f16/bf16, strided
 * views), attn_buffer_copy on the device. Some cases force small split-KV
 * chunks (ATTN_OPENCL_DECODE_CHUNK) so the chunk merge is exercised on a
 * CPU device; each case picks the variant switches (work-group size, lanes
 * per K row, f16 conversion, aligned vector loads, early V loads, combine
 * columns, table upload and reuse, argument cache, flush) at random, and
 * some decode twice so that the second call reuses the device's table.
 *
 * The reference reads each sequence's kept tokens back from the cache
 * (attn_kv_cache_read; test_kv_cache and test_decode check that against an
 * independent dequantisation) and runs ref_sdpa on them: bottom-right
 * causal over the kept tokens is what attn_decode computes.
 * Tolerances (max error relative to the largest reference output): f32 q
 * and out 1e-4; f16/bf16 out 1e-2; lse 1e-4. Exit 77 without OpenCL.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"
#include "ref.h"

typedef struct dcase {
    attn_dtype kv;
    int64_t hkv, group, d, dv, ps, sink, window;
    int b, sq, minlen, maxlen;
} dcase;

static attn_tensor host3(float *data, int64_t n, int64_t h, int64_t d)
{
    attn_tensor t = { 0 };
    t.data = data;
    t.dtype = ATTN_F32;
    t.ndim = 3;
    t.shape[0] = n; t.shape[1] = h; t.shape[2] = d;
    return t;
}

static void append_random(attn_kv_cache *kc, int32_t seq, const dcase *c, int64_t n)
{
    float *k = malloc((size_t)(n * c->hkv * c->d) * sizeof(float));
    float *v = malloc((size_t)(n * c->hkv * c->dv) * sizeof(float));
    for (int64_t i = 0; i < n * c->hkv * c->d; i++) k[i] = (float)tu_normal();
    for (int64_t i = 0; i < n * c->hkv * c->dv; i++) v[i] = (float)tu_normal();
    attn_tensor tk = host3(k, n, c->hkv, c->d), tv = host3(v, n, c->hkv, c->dv);
    CHECK_OK(attn_kv_cache_append(kc, seq, &tk, &tv));
    free(k);
    free(v);
}

/* Sequences 0..nseq-1: appends in pieces, forks of earlier ones, rejected
 * speculative tokens (truncation). */
static void build(attn_kv_cache *kc, const dcase *c, int nseq)
{
    for (int s = 0; s < nseq; s++) {
        int64_t len = 0;
        if (s > 0 && tu_randint(0, 1)) {
            int64_t srclen = 0;
            const int src = tu_randint(0, s - 1);
            attn_kv_cache_seq_len(kc, src, &srclen);
            CHECK_OK(attn_kv_cache_fork(kc, src, s, tu_randint(0, (int)srclen)));
            attn_kv_cache_seq_len(kc, s, &len);
        }
        const int64_t target = tu_randint(c->minlen > c->sq ? c->minlen : c->sq, c->maxlen);
        int64_t pos = 0;
        attn_kv_cache_seq_pos(kc, s, &pos);
        while (pos < target || len < c->sq) {
            append_random(kc, s, c, tu_randint(1, tu_randint(0, 1) ? 9 : 150));
            attn_kv_cache_seq_len(kc, s, &len);
            if (tu_randint(0, 5) == 0 && len > c->sq + 8)
                CHECK_OK(attn_kv_cache_truncate(kc, s, len - tu_randint(1, 8)));
            attn_kv_cache_seq_len(kc, s, &len);
            attn_kv_cache_seq_pos(kc, s, &pos);
        }
    }
}

/* Random variant switches (src/opencl/decode.c), named in buf. */
static void pick_variant(char *buf, size_t n)
{
    static const char *const cols[4] = { "0", "1", "8", "32" };
    const char *lanes = (const char *[]){ "0", "1", "2", "4", "16", "64" }[tu_randint(0, 5)];
    const char *col = cols[tu_randint(0, 3)];
    const char *wg = (const char *[]){ "1", "8", "32", "64", "128" }[tu_randint(0, 4)];
    const char *upload = tu_randint(0, 1) ? "pinned" : "pageable";
    const char *reuse = tu_randint(0, 1) ? "1" : "0", *args = tu_randint(0, 1) ? "1" : "0";
    const char *f16 = (const char *[]){ "bits", "vload", "half" }[tu_randint(0, 2)];
    const char *aligned = tu_randint(0, 3) ? "1" : "0", *vearly = tu_randint(0, 1) ? "1" : "0";
    setenv("ATTN_OPENCL_DECODE_LANES", lanes, 1);
    setenv("ATTN_OPENCL_DECODE_WG", wg, 1);
    setenv("ATTN_OPENCL_DECODE_COMBINE_COLS", col, 1);
    setenv("ATTN_OPENCL_DECODE_UPLOAD", upload, 1);
    setenv("ATTN_OPENCL_DECODE_REUSE", reuse, 1);
    setenv("ATTN_OPENCL_DECODE_ARGCACHE", args, 1);
    setenv("ATTN_OPENCL_DECODE_FLUSH", args, 1);
    setenv("ATTN_OPENCL_DECODE_F16", f16, 1);
    setenv("ATTN_OPENCL_DECODE_ALIGNED", aligned, 1);
    setenv("ATTN_OPENCL_DECODE_VEARLY", vearly, 1);
    snprintf(buf, n, "wg=%s lanes=%s cols=%s %s reuse=%s argcache=flush=%s f16=%s aligned=%s vearly=%s",
             wg, lanes, col, upload, reuse, args, f16, aligned, vearly);
}

static void clear_variant(void)
{
    unsetenv("ATTN_OPENCL_DECODE_LANES");
    unsetenv("ATTN_OPENCL_DECODE_WG");
    unsetenv("ATTN_OPENCL_DECODE_COMBINE_COLS");
    unsetenv("ATTN_OPENCL_DECODE_UPLOAD");
    unsetenv("ATTN_OPENCL_DECODE_REUSE");
    unsetenv("ATTN_OPENCL_DECODE_ARGCACHE");
    unsetenv("ATTN_OPENCL_DECODE_FLUSH");
    unsetenv("ATTN_OPENCL_DECODE_F16");
    unsetenv("ATTN_OPENCL_DECODE_ALIGNED");
    unsetenv("ATTN_OPENCL_DECODE_VEARLY");
}

static void run_case(int idx, const dcase *c, int chunk)
{
    static const attn_dtype io[3] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    char name[288], variant[128];
    pick_variant(variant, sizeof variant);
    const int calls = tu_randint(1, 2);
    snprintf(name, sizeof name, "case %d (%s hkv=%lld g=%lld d=%lld dv=%lld ps=%lld sink=%lld "
             "win=%lld b=%d sq=%d chunk=%d %s calls=%d)", idx, tu_dtype_name(c->kv),
             (long long)c->hkv, (long long)c->group, (long long)c->d, (long long)c->dv,
             (long long)c->ps, (long long)c->sink, (long long)c->window, c->b, c->sq, chunk,
             variant, calls);
    const int nseq = c->b + 1;
    attn_kv_cache_desc desc = ATTN_KV_CACHE_DESC_INIT;
    desc.dtype = c->kv;
    desc.num_kv_heads = (int32_t)c->hkv;
    desc.head_dim = (int32_t)c->d;
    desc.head_dim_v = (int32_t)c->dv;
    desc.page_size = (int32_t)c->ps;
    desc.max_seqs = nseq;
    desc.max_pages = (int32_t)((2 * (c->maxlen + 160) / c->ps + 4) * nseq);
    desc.stream_sink = c->sink;
    desc.stream_window = c->window;
    desc.device = dev;
    attn_kv_cache *kc = NULL;
    CHECK_OK(attn_kv_cache_create(ctx, &desc, &kc));
    if (!kc)
        return;
    build(kc, c, nseq);

    const int64_t hq = c->hkv * c->group;
    int32_t seqs[8];
    for (int b = 0; b < c->b; b++)
        seqs[b] = tu_randint(0, nseq - 1);
    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    p.scale = (float)(tu_uniform() * 2.0 / sqrt((double)c->d));
    p.causal = tu_randint(0, 3) != 0;
    if (tu_randint(0, 3) == 0) p.window_left = tu_randint(0, 300);
    if (tu_randint(0, 5) == 0) p.window_right = tu_randint(0, 4);
    if (tu_randint(0, 3) == 0) p.sink_tokens = tu_randint(0, 8);
    if (tu_randint(0, 3) == 0) p.softcap = (float)(1.0 + 10.0 * tu_uniform());
    float slopes[64], sinkl[64];
    for (int h = 0; h < hq; h++) {
        slopes[h] = (float)(0.1 * tu_uniform());
        sinkl[h] = (float)tu_normal();
    }
    if (tu_randint(0, 3) == 0) p.alibi_slopes = slopes;
    const int sigmoid = tu_randint(0, 5) == 0;
    if (sigmoid) {
        p.score = ATTN_SCORE_SIGMOID;
        p.sigmoid_bias = (float)tu_normal();
    } else if (tu_randint(0, 3) == 0) {
        p.sink_logits = sinkl;
    }
    const int want_lse = !sigmoid && tu_randint(0, 2) != 0;
    const int want_gate = tu_randint(0, 4) == 0;

    const attn_dtype qdt = io[tu_randint(0, 2)], odt = io[tu_randint(0, 2)];
    const int layout = tu_randint(0, TU_NLAYOUTS - 1);
    const int64_t qs[4] = { c->b, c->sq, hq, c->d }, os[4] = { c->b, c->sq, hq, c->dv };
    const int64_t ls[3] = { c->b, hq, c->sq };
    dtensor q, out, lse, gate;
    memset(&lse, 0, sizeof lse);
    memset(&gate, 0, sizeof gate);
    int ok = mk(&q, qdt, 4, qs, layout) == 0 && mk(&out, odt, 4, os, layout) == 0 &&
             (!want_lse || mk(&lse, ATTN_F32, 3, ls, TU_CONTIG) == 0) &&
             (!want_gate || mk(&gate, io[tu_randint(0, 2)], 4, os, TU_CONTIG) == 0);
    CHECK(ok, "%s: test tensors", name);
    if (ok) {
        tu_fill_normal(&q.h, 0, 1);
        tu_poison(&out.h);
        if (want_lse) tu_poison(&lse.h);
        if (want_gate) tu_fill_normal(&gate.h, 0, 1);
        ok = upload(&q) == 0 && upload(&out) == 0 && (!want_lse || upload(&lse) == 0) &&
             (!want_gate || upload(&gate) == 0);
        CHECK(ok, "%s: upload", name);
    }
    if (ok) {
        if (want_gate) p.gate = &gate.d;
        char cs[32];
        snprintf(cs, sizeof cs, "%d", chunk);
        if (chunk) setenv("ATTN_OPENCL_DECODE_CHUNK", cs, 1);
        attn_status s = ATTN_OK;
        for (int k = 0; k < calls && s == ATTN_OK; k++) {
            if (k > 0) {   /* poisoned again, into the same buffer */
                tu_poison(&out.h);
                s = attn_buffer_write(out.buf, OFF, out.h.mem, out.h.total);
            }
            if (s == ATTN_OK)
                s = attn_decode(ctx, &p, &q.d, kc, seqs, &out.d, want_lse ? &lse.d : NULL);
        }
        unsetenv("ATTN_OPENCL_DECODE_CHUNK");
        CHECK(s == ATTN_OK, "%s: attn_decode: %s", name, attn_last_error());
        ok = s == ATTN_OK && download(&out) == 0 && (!want_lse || download(&lse) == 0);
    }
    if (ok) {
        char msg[160];
        CHECK(tu_check_written(&out.h, msg, sizeof msg) == 0, "%s: out: %s", name, msg);
        const int64_t orow = c->sq * hq * c->dv, lrow = hq * c->sq;
        double *ro = malloc((size_t)(c->b * orow) * sizeof(double));
        double *rl = malloc((size_t)(c->b * lrow) * sizeof(double));
        for (int b = 0; b < c->b && ok; b++) {
            if (want_gate) p.gate = &gate.h.t;
            ok = decode_reference(kc, seqs[b], c->hkv, c->d, c->dv, &p, &q,
                                  p.gate ? &gate : NULL, b, ro + b * orow,
                                  want_lse ? rl + b * lrow : NULL) == 0;
        }
        CHECK(ok, "%s: reference", name);
        if (ok) {
            const double tol = qdt == ATTN_F32 && odt == ATTN_F32 &&
                               (!want_gate || gate.h.t.dtype == ATTN_F32) ? 1e-4 : 1e-2;
            double refmax = 0.0;
            int64_t worst = 0;
            const double err = tu_rel_err(&out.h, ro, &refmax, &worst);
            CHECK(err <= tol, "%s: out error %.3g (tolerance %.0e, max |ref| %.3g, element %lld)",
                  name, err, tol, refmax, (long long)worst);
            if (want_lse) {
                const double lerr = tu_lse_err(&lse.h, rl, &worst);
                CHECK(lerr <= 1e-4, "%s: lse error %.3g at %lld", name, lerr, (long long)worst);
            }
            if (tu_verbose)
                printf("%s: error %.2e\n", name, err);
        }
        free(ro);
        free(rl);
    }
    clear_variant();
    dfree(&q);
    dfree(&out);
    if (want_lse) dfree(&lse);
    if (want_gate) dfree(&gate);
    attn_kv_cache_destroy(kc);
}

/* Tensors on another device than the cache: ATTN_ERR_INVALID_ARGUMENT. */
static void test_device_mismatch(void)
{
    attn_kv_cache_desc desc = ATTN_KV_CACHE_DESC_INIT;
    desc.num_kv_heads = 1;
    desc.head_dim = 32;
    desc.page_size = 16;
    desc.max_pages = 4;
    desc.device = dev;
    attn_kv_cache *gpu = NULL, *cpu = NULL;
    CHECK_OK(attn_kv_cache_create(ctx, &desc, &gpu));
    desc.device = 0;
    CHECK_OK(attn_kv_cache_create(ctx, &desc, &cpu));
    if (!gpu || !cpu) {
        attn_kv_cache_destroy(gpu);
        attn_kv_cache_destroy(cpu);
        return;
    }
    const dcase c = { ATTN_F16, 1, 1, 32, 32, 16, 0, 0, 1, 1, 1, 8 };
    append_random(gpu, 0, &c, 5);
    append_random(cpu, 0, &c, 5);
    const int64_t sh[4] = { 1, 1, 1, 32 }, lsh[3] = { 1, 1, 1 };
    dtensor q, out, lse;
    if (mk(&q, ATTN_F32, 4, sh, TU_CONTIG) || mk(&out, ATTN_F32, 4, sh, TU_CONTIG) ||
        mk(&lse, ATTN_F32, 3, lsh, TU_CONTIG) || upload(&q) || upload(&out) || upload(&lse)) {
        CHECK(0, "device mismatch: test tensors");
    } else {
        attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
        const int32_t seq = 0;
        CHECK_OK(attn_decode(ctx, &p, &q.d, gpu, &seq, &out.d, &lse.d));
        CHECK(attn_decode(ctx, &p, &q.d, cpu, &seq, &out.d, NULL) == ATTN_ERR_INVALID_ARGUMENT,
              "device q/out with a CPU cache must be refused");
        CHECK(attn_decode(ctx, &p, &q.d, gpu, &seq, &out.d, &lse.h.t) ==
                  ATTN_ERR_INVALID_ARGUMENT, "host lse with a device cache must be refused");
        CHECK(attn_decode(ctx, &p, &q.h.t, gpu, &seq, &out.d, NULL) == ATTN_ERR_INVALID_ARGUMENT,
              "host q with a device cache must be refused");
    }
    dfree(&q);
    dfree(&out);
    dfree(&lse);
    attn_kv_cache_destroy(gpu);
    attn_kv_cache_destroy(cpu);
}

/* attn_buffer_copy on the device (decode-bench's bandwidth roof uses it). */
static void test_device_copy(void)
{
    enum { N = 1 << 16 };
    attn_buffer *a = NULL, *b = NULL;
    CHECK_OK(attn_buffer_create(ctx, dev, N, &a));
    CHECK_OK(attn_buffer_create(ctx, dev, N, &b));
    unsigned char *src = malloc(N), *dst = calloc(1, N);
    if (a && b && src && dst) {
        for (int i = 0; i < N; i++)
            src[i] = (unsigned char)(i * 13 + 7);
        CHECK_OK(attn_buffer_write(a, 0, src, N));
        CHECK_OK(attn_buffer_copy(b, 64, a, 1000, N - 1000));
        CHECK_OK(attn_buffer_read(b, 64, dst, N - 1000));
        CHECK(memcmp(dst, src + 1000, N - 1000) == 0, "device copy differs");
        CHECK(attn_buffer_copy(a, 0, a, 100, 200) == ATTN_ERR_INVALID_ARGUMENT,
              "overlapping device copy must be refused");
    }
    free(src);
    free(dst);
    attn_buffer_destroy(a);
    attn_buffer_destroy(b);
}

static void per_device(const attn_device_info *info)
{
    static const attn_dtype kvs[5] = { ATTN_F32, ATTN_F16, ATTN_BF16, ATTN_Q8, ATTN_Q4 };
    static const int64_t d_float[] = { 8, 40, 64, 80, 128, 6, 7 }, d_quant[] = { 32, 64, 128, 256 };
    static const int64_t pss[] = { 1, 3, 16, 17, 64 };
    printf("device %d: %s\n", dev, info->name);
    test_device_mismatch();
    test_device_copy();
    const int n = tu_quick ? 5 : 40;
    for (int i = 0; i < n; i++) {
        dcase c;
        c.kv = kvs[i % 5];
        const int quant = c.kv == ATTN_Q8 || c.kv == ATTN_Q4;
        c.hkv = tu_randint(1, 3);
        c.group = (int64_t[]){ 1, 2, 4, 8 }[tu_randint(0, 3)];
        c.d = quant ? d_quant[tu_randint(0, 3)] : d_float[tu_randint(0, 6)];
        c.dv = tu_randint(0, 3) == 0 ? (quant ? 32 : c.d > 8 ? 24 : 5) : c.d;
        c.ps = pss[tu_randint(0, 4)];
        c.window = tu_randint(0, 3) == 0 ? tu_randint(1, 200) : 0;
        c.sink = c.window ? tu_randint(0, 6) : 0;
        c.b = tu_randint(1, 4);
        c.sq = tu_randint(0, 2) == 0 ? tu_randint(2, 16) : 1;
        c.minlen = 1;
        c.maxlen = tu_quick ? 300 : 1500;
        if (c.window && c.window < c.sq)
            c.window = c.sq;
        run_case(i, &c, tu_randint(0, 1) ? 0 : 64 * tu_randint(1, 3));
    }
    /* one long sequence in chunks of 64 keys: more chunks than the
     * combine kernel's work-group takes at a time; and a Q8 case with
     * several row blocks */
    const dcase many = { ATTN_F16, 1, 2, 32, 32, 64, 0, 0, 1, 2, 6000, 6400 };
    run_case(n, &many, 64);
    const dcase tiles = { ATTN_Q8, 2, 4, 64, 64, 16, 0, 0, 2, 3, 200, 900 };
    run_case(n + 1, &tiles, 0);
}

int main(void)
{
    return devtest_main("test_opencl_decode", DEVTEST_OPENCL, "ATTN_TEST_OPENCL_DEVICE",
                        per_device, NULL);
}
