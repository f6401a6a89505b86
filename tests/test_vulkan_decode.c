/*
 * attn_decode on the Vulkan backend, the KV cache's page pool in a buffer of
 * the device, against the double-precision reference (ref_sdpa) on the
 * cache's kept tokens as attn_kv_cache_read returns them (test_kv_cache
 * checks those against the storage formats' round trip). Covers every
 * storage type, Sq 1..16, GQA, D != Dv and head dims off the wide-load
 * path, page sizes 1..64, streaming caches (sinks + window) and forked
 * sequences sharing pages, batches with repeated sequences, and every score
 * option (causal, window, sink_tokens, softcap, ALiBi, sink logits, sigmoid,
 * gate, lse) with f32/f16/bf16 q and out in strided views. Each case runs
 * with the tile maxima by subgroup arithmetic (one subgroup per workgroup
 * and several) and through shared memory, and in other workgroup shapes
 * (odd sizes, one query row per block, odd unrolls, V loaded late; quick
 * runs: one case each), and split into many chunks as well as one (the
 * chunks merged by one invocation per output element and by four), all
 * of it in both chunk layouts (ATTN_VULKAN_DECODE_LAYOUT=keys, rows), and
 * with device-local buffers, the table uploaded each way. Also:
 * tensors on another device than the cache are ATTN_ERR_INVALID_ARGUMENT.
 * With the Khronos validation layer installed it is enabled (a validation
 * error aborts). Exit 77 without Vulkan devices.
 *
 * Tolerances (max error relative to the largest reference output): f32 q
 * and out 2e-5, else 1e-2; lse 1e-4.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"
#include "ref.h"

typedef struct dcase {
    const char *name;
    attn_dtype dt;
    int hkv, group, d, dv, ps, sink, window;   /* cache (window 0: no streaming) */
    int b, sq, maxlen;
    attn_dtype qdt, odt;
    int layout;
    int causal, wl, wr, sinks, alibi, sinkl, sigmoid, gate, lse;
    float softcap;
    int quick;
} dcase;

static const dcase cases[] = {
 /* name            dt        hkv g   d   dv  ps sink win  b sq len  q          out        layout        c  wl  wr sk al sl sg g lse cap  q */
 { "f16-gqa4",      ATTN_F16,  2, 4, 128, 128, 16, 0,  0,  2, 1, 700, ATTN_F32,  ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 1, 0,  1 },
 { "f32-sq16",      ATTN_F32,  1, 3,  64,  64, 17, 0,  0,  2, 16, 300, ATTN_F32, ATTN_F32,  TU_SWAP12,    1, -1, -1, 0, 0, 1, 0, 0, 1, 0,  1 },
 { "bf16-window",   ATTN_BF16, 3, 2,  80,  80,  3, 0,  0,  3, 5, 260, ATTN_BF16, ATTN_BF16, TU_PADDED,    1, 40,  2, 4, 1, 0, 0, 1, 1, 12, 1 },
 { "q8-everything", ATTN_Q8,   2, 2,  64,  32, 64, 0,  0,  2, 3, 500, ATTN_F16,  ATTN_F32,  TU_CONTIG,    1, 90, -1, 3, 1, 1, 0, 1, 1, 20, 1 },
 { "q4-gqa8",       ATTN_Q4,   1, 8, 128, 128, 16, 0,  0,  1, 2, 400, ATTN_F32,  ATTN_F16,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 1, 0,  0 },
 { "odd-dims",      ATTN_F32,  2, 1,  40,  24,  5, 0,  0,  3, 4, 150, ATTN_F32,  ATTN_F32,  TU_INNER2,    0, -1,  3, 0, 1, 0, 0, 0, 1, 0,  0 },
 { "f16-odd-d-sigm", ATTN_F16, 1, 2,  36,  20,  1, 0,  0,  2, 1,  90, ATTN_F16,  ATTN_F16,  TU_INNER2,    0, -1,  3, 0, 1, 0, 1, 1, 0, 0,  1 },
 { "stream-f16",    ATTN_F16,  2, 2,  64,  64, 16, 4, 100, 3, 3, 600, ATTN_F32,  ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 1, 0,  0 },
 { "stream-q4",     ATTN_Q4,   1, 4,  64,  64,  7, 5,  60, 2, 2, 300, ATTN_F32,  ATTN_BF16, TU_SWAP12,    1, 30, -1, 2, 0, 1, 0, 0, 1, 5,  1 },
 { "sigmoid-gate",  ATTN_BF16, 2, 2,  64,  64, 32, 0,  0,  2, 6, 350, ATTN_F32,  ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 1, 0, 1, 1, 0, 0,  0 },
 { "no-causal-q8",  ATTN_Q8,   1, 1, 256, 256, 64, 0,  0,  1, 16, 200, ATTN_BF16, ATTN_F32, TU_PADDED,    0, -1, -1, 0, 0, 0, 0, 0, 1, 0,  0 },
 { "stream-f32-long", ATTN_F32, 2, 4, 128, 64, 64, 3, 900, 2, 8, 2500, ATTN_F16, ATTN_F32, TU_CONTIG,    1, 500, -1, 2, 1, 1, 0, 1, 1, 30, 0 },
 { "q4-long",       ATTN_Q4,   2, 2, 128, 128, 64, 0,  0,  3, 1, 3000, ATTN_F32, ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 1, 0,  0 },
};

static int64_t rint_(int64_t lo, int64_t hi) { return tu_randint((int)lo, (int)hi); }

static attn_tensor t3(void *data, attn_dtype dt, int64_t a, int64_t b, int64_t c)
{
    attn_tensor t = { 0 };
    t.data = data;
    t.dtype = dt;
    t.ndim = 3;
    t.shape[0] = a;
    t.shape[1] = b;
    t.shape[2] = c;
    return t;
}

/* Appends n random tokens to sequence id. */
static void append(attn_kv_cache *kc, const dcase *c, int32_t id, int64_t n)
{
    float *k = malloc((size_t)(n * c->hkv * c->d) * sizeof(float));
    float *v = malloc((size_t)(n * c->hkv * c->dv) * sizeof(float));
    for (int64_t i = 0; i < n * c->hkv * c->d; i++) k[i] = (float)tu_normal();
    for (int64_t i = 0; i < n * c->hkv * c->dv; i++) v[i] = (float)tu_normal();
    attn_tensor tk = t3(k, ATTN_F32, n, c->hkv, c->d), tv = t3(v, ATTN_F32, n, c->hkv, c->dv);
    CHECK_OK(attn_kv_cache_append(kc, id, &tk, &tv));
    free(k);
    free(v);
}

/* Sequences 0 (appends), 1 (fork of 0, then its own appends; the whole of
 * 0 on a streaming cache, a prefix otherwise) and 2 (fresh), with more
 * appends to 0 after the fork (copy-on-write). */
static attn_kv_cache *build(const dcase *c)
{
    attn_kv_cache_desc desc = ATTN_KV_CACHE_DESC_INIT;
    desc.dtype = c->dt;
    desc.num_kv_heads = c->hkv;
    desc.head_dim = c->d;
    desc.head_dim_v = c->dv;
    desc.page_size = c->ps;
    desc.max_seqs = 4;
    desc.max_pages = 3 * (2 * c->maxlen / c->ps + 4);
    desc.stream_sink = c->sink;
    desc.stream_window = c->window;
    desc.device = dev;
    attn_kv_cache *kc = NULL;
    CHECK_OK(attn_kv_cache_create(ctx, &desc, &kc));
    if (!kc)
        return NULL;
    const int64_t sq = c->sq;
    int64_t len0 = rint_(c->maxlen / 2 > sq ? c->maxlen / 2 : sq, c->maxlen);
    for (int64_t done = 0; done < len0;) {
        const int64_t n = rint_(1, len0 - done < 300 ? len0 - done : 300);
        append(kc, c, 0, n);
        done += n;
    }
    int64_t kept = 0;
    CHECK_OK(attn_kv_cache_seq_len(kc, 0, &kept));
    CHECK_OK(attn_kv_cache_fork(kc, 0, 1, c->window ? kept : rint_(1, kept)));
    append(kc, c, 1, rint_(sq, 40));
    append(kc, c, 0, rint_(1, 20));
    append(kc, c, 2, rint_(sq, c->maxlen / 3 > sq ? c->maxlen / 3 : sq));
    return kc;
}

static void run_case(const dcase *c, const char *label)
{
    attn_kv_cache *kc = build(c);
    if (!kc)
        return;
    const int64_t hq = (int64_t)c->hkv * c->group;
    int32_t seqs[8];
    for (int b = 0; b < c->b; b++)
        seqs[b] = (int32_t)rint_(0, 2);
    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    p.scale = (float)((0.5 + tu_uniform()) / sqrt((double)c->d));
    p.causal = c->causal;
    p.window_left = c->wl;
    p.window_right = c->wr;
    p.sink_tokens = c->sinks;
    p.softcap = c->softcap;
    float slopes[64], sinkl[64];
    for (int64_t h = 0; h < hq; h++) {
        slopes[h] = (float)(0.05 * tu_uniform());
        sinkl[h] = (float)tu_normal();
    }
    if (c->alibi) p.alibi_slopes = slopes;
    if (c->sinkl) p.sink_logits = sinkl;
    if (c->sigmoid) {
        p.score = ATTN_SCORE_SIGMOID;
        p.sigmoid_bias = (float)tu_normal();
    }
    dtensor q, out, lse, gate;
    memset(&gate, 0, sizeof gate);
    memset(&lse, 0, sizeof lse);
    const int64_t qs[4] = { c->b, c->sq, hq, c->d }, os[4] = { c->b, c->sq, hq, c->dv };
    const int64_t ls[3] = { c->b, hq, c->sq };
    int bad = mk(&q, c->qdt, 4, qs, c->layout) || mk(&out, c->odt, 4, os, c->layout);
    if (!bad) {
        tu_fill_normal(&q.h, 0, 1);
        tu_poison(&out.h);
        bad = upload(&q) || upload(&out);
    }
    if (!bad && c->gate) {
        bad = mk(&gate, ATTN_BF16, 4, os, TU_PADDED);
        if (!bad) {
            tu_fill_normal(&gate.h, 0, 2);
            bad = upload(&gate);
            p.gate = &gate.d;
        }
    }
    if (!bad && c->lse) {
        bad = mk(&lse, ATTN_F32, 3, ls, TU_CONTIG);
        if (!bad) {
            tu_poison(&lse.h);
            bad = upload(&lse);
        }
    }
    CHECK(!bad, "%s: device tensors", c->name);
    const size_t per_out = (size_t)(c->sq * hq * c->dv), per_lse = (size_t)(hq * c->sq);
    double *ref = malloc((size_t)c->b * per_out * sizeof *ref);
    double *rlse = malloc((size_t)c->b * per_lse * sizeof *rlse);
    if (!bad) {
        CHECK_OK(attn_decode(ctx, &p, &q.d, kc, seqs, &out.d, c->lse ? &lse.d : NULL));
        int rbad = 0;
        for (int b = 0; b < c->b; b++)
            rbad |= decode_reference(kc, seqs[b], c->hkv, c->d, c->dv, &p, &q,
                                     p.gate ? &gate : NULL, b, ref + b * per_out,
                                     rlse + b * per_lse);
        CHECK(!rbad, "%s: reference failed", c->name);
        char msg[200];
        CHECK(download(&out) == 0 && tu_check_written(&out.h, msg, sizeof msg) == 0,
              "%s (%s): out: %s", c->name, label, msg);
        const double tol = c->qdt == ATTN_F32 && c->odt == ATTN_F32 ? 2e-5 : 1e-2;
        double refmax = 0.0;
        int64_t worst = 0;
        const double err = tu_rel_err(&out.h, ref, &refmax, &worst);
        CHECK(err <= tol, "%s (%s): out error %.3g > %.3g (element %lld, max |ref| %.3g)",
              c->name, label, err, tol, (long long)worst, refmax);
        if (c->lse) {
            CHECK(download(&lse) == 0, "%s: lse download", c->name);
            const double lerr = tu_lse_err(&lse.h, rlse, &worst);
            CHECK(lerr <= 1e-4, "%s (%s): lse error %.3g (element %lld)", c->name, label, lerr,
                  (long long)worst);
        }
        if (tu_verbose)
            printf("  %-16s %-12s err %.2e\n", c->name, label, err);
    }
    free(ref);
    free(rlse);
    dfree(&q);
    dfree(&out);
    dfree(&gate);
    dfree(&lse);
    attn_kv_cache_destroy(kc);
}

/* Tensors elsewhere than the cache: q on the host with a device cache, and
 * a CPU cache with q and out on the device. */
static void test_mismatch(void)
{
    const dcase c = { "mismatch", ATTN_F16, 1, 1, 32, 32, 16, 0, 0, 1, 1, 40, ATTN_F32, ATTN_F32,
                      TU_CONTIG, 1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 1 };
    attn_kv_cache *kc = build(&c);
    dtensor q, out;
    const int64_t sh[4] = { 1, 1, 1, 32 };
    if (!kc || mk(&q, ATTN_F32, 4, sh, TU_CONTIG) || mk(&out, ATTN_F32, 4, sh, TU_CONTIG))
        return;
    tu_fill_normal(&q.h, 0, 1);
    tu_poison(&out.h);
    const int32_t seq = 0;
    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    attn_status s = attn_decode(ctx, &p, &q.h.t, kc, &seq, &out.h.t, NULL);
    CHECK(s == ATTN_ERR_INVALID_ARGUMENT && strstr(attn_last_error(), "device"),
          "host q with a device cache: %s: %s", attn_status_string(s), attn_last_error());
    attn_kv_cache_desc desc = ATTN_KV_CACHE_DESC_INIT;
    desc.dtype = ATTN_F16;
    desc.num_kv_heads = 1;
    desc.head_dim = 32;
    desc.max_pages = 4;
    attn_kv_cache *cpu = NULL;
    CHECK_OK(attn_kv_cache_create(ctx, &desc, &cpu));
    if (cpu && upload(&q) == 0 && upload(&out) == 0) {
        float kv[32] = { 0 };
        attn_tensor t = t3(kv, ATTN_F32, 1, 1, 32);
        CHECK_OK(attn_kv_cache_append(cpu, 0, &t, &t));
        s = attn_decode(ctx, &p, &q.d, cpu, &seq, &out.d, NULL);
        CHECK(s == ATTN_ERR_INVALID_ARGUMENT, "device q with a CPU cache: %s: %s",
              attn_status_string(s), attn_last_error());
        CHECK(download(&out) == 0 && tu_check_untouched(&out.h) == 0,
              "a refused decode touched out");
    }
    attn_kv_cache_destroy(cpu);
    attn_kv_cache_destroy(kc);
    dfree(&q);
    dfree(&out);
}

/* The cases (only the quick ones in quick runs), or the one named. Each
 * new shape costs lavapipe a shader compile of seconds. */
static void run_all(const char *label, const char *only)
{
    const char *filter = getenv("ATTN_TEST_FILTER");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if ((!tu_quick || cases[i].quick) && (!filter || strstr(cases[i].name, filter)) &&
            (!only || strcmp(cases[i].name, only) == 0))
            run_case(&cases[i], label);
}

/* Device-local buffers as on a discrete GPU (lavapipe maps them
 * otherwise): the table reaches the device by each way it can
 * (ATTN_VULKAN_DECODE_TABLE, src/vulkan/decode.c), one case each. */
static void run_staged(void)
{
    static const char *const modes[] = { "update", "staged", "host", "bar" };
    setenv("ATTN_VULKAN_STAGING", "1", 1);
    CHECK_OK(attn_context_create(NULL, &ctx));
    for (dev = 0; ctx && dev < attn_device_count(ctx); dev++) {
        attn_device_info info;
        if (!device_under_test(dev, DEVTEST_VULKAN, "ATTN_TEST_VULKAN_DEVICE", &info))
            continue;
        for (int m = 0; m < 4; m++) {
            setenv("ATTN_VULKAN_DECODE_TABLE", modes[m], 1);
            run_all(modes[m], tu_quick ? "stream-q4" : "stream-f16");
        }
        unsetenv("ATTN_VULKAN_DECODE_TABLE");
    }
    attn_context_destroy(ctx);
    unsetenv("ATTN_VULKAN_STAGING");
}

/* The cases in each workgroup shape and variant under `layout`
 * (ATTN_VULKAN_DECODE_LAYOUT): every case in each where `every` (and not
 * quick), else every case in the default shape and one in each other
 * (lavapipe compiles each new shape for seconds). The rows layout skips
 * the variants of what it shares with the keys layout (the chunks and
 * their merge), and adds its own (lanes per row). */
static void per_layout(const char *layout, int every)
{
    const int rows = strcmp(layout, "rows") == 0;
    char label[64];
#define LABEL(what) (snprintf(label, sizeof label, "%s %s", layout, what), label)
#define ONE(name) (tu_quick || !every ? (name) : NULL)
    setenv("ATTN_VULKAN_DECODE_LAYOUT", layout, 1);
    run_all(LABEL("default"), NULL);
    /* Tile maxima through shared memory, in a workgroup of 13 (keys) or
     * 32 (rows: several subgroups where they are smaller, up to 16
     * invocations per row). */
    setenv("ATTN_VULKAN_SUBGROUP", "0", 1);
    setenv("ATTN_VULKAN_DECODE_WG", rows ? "32" : "13", 1);
    run_all(LABEL("no subgroup"), ONE(rows ? "f16-gqa4" : "f32-sq16"));
    unsetenv("ATTN_VULKAN_SUBGROUP");
    /* 20 invocations: several subgroups where they are smaller, the last
     * part-filled (their maxima combined through shared memory); 5: one
     * part-filled subgroup. */
    setenv("ATTN_VULKAN_DECODE_WG", "20", 1);
    run_all(LABEL("wg 20"), ONE("bf16-window"));
    setenv("ATTN_VULKAN_DECODE_WG", "5", 1);
    run_all(LABEL("wg 5"), ONE("f16-odd-d-sigm"));
    unsetenv("ATTN_VULKAN_DECODE_WG");
    /* A tile's V loads issued after the softmax (default: with its K loads). */
    setenv("ATTN_VULKAN_DECODE_VEARLY", "0", 1);
    run_all(LABEL("v late"), ONE("stream-q4"));
    unsetenv("ATTN_VULKAN_DECODE_VEARLY");
    if (!rows) {
        /* Few workgroups: one chunk per (sequence, head) where it fits. */
        setenv("ATTN_VULKAN_DECODE_GROUPS", "1", 1);
        run_all(LABEL("one chunk"), NULL);
        unsetenv("ATTN_VULKAN_DECODE_GROUPS");
        /* Chunks merged by 4 invocations per output element (GPUs take
         * several; 1 on lavapipe). */
        setenv("ATTN_VULKAN_DECODE_COMBINE", "4", 1);
        run_all(LABEL("combine 4"), ONE("stream-q4"));
        unsetenv("ATTN_VULKAN_DECODE_COMBINE");
    }
    /* One query row per workgroup (row blocks), V loads of 3 keys and K
     * loads of 3 pieces together (not dividing the tile or the row), and
     * chunks of one tile. */
    setenv("ATTN_VULKAN_DECODE_ROWS", "1", 1);
    setenv("ATTN_VULKAN_DECODE_VUNROLL", "3", 1);
    setenv("ATTN_VULKAN_DECODE_KUNROLL", "3", 1);
    setenv("ATTN_VULKAN_DECODE_CHUNK", "1", 1);
    run_all(LABEL("rows 1 unroll 3"), ONE("q8-everything"));
    unsetenv("ATTN_VULKAN_DECODE_ROWS");
    unsetenv("ATTN_VULKAN_DECODE_VUNROLL");
    unsetenv("ATTN_VULKAN_DECODE_KUNROLL");
    unsetenv("ATTN_VULKAN_DECODE_CHUNK");
    /* Rows layout: four invocations per K row, several pieces each (a
     * row of D = 80 in bf16 has 10: the third round for two of them). */
    if (rows) {
        setenv("ATTN_VULKAN_DECODE_LANES", "4", 1);
        run_all(LABEL("lanes 4"), ONE("bf16-window"));
        unsetenv("ATTN_VULKAN_DECODE_LANES");
    }
    unsetenv("ATTN_VULKAN_DECODE_LAYOUT");
#undef ONE
#undef LABEL
}

static void per_device(const attn_device_info *info)
{
    printf("device %d: %s (subgroup %d)\n", dev, info->name, info->subgroup_size);
    per_layout("keys", 1);
    per_layout("rows", 0);
    test_mismatch();
}

int main(void)
{
    return devtest_main("test_vulkan_decode", DEVTEST_VULKAN, "ATTN_TEST_VULKAN_DEVICE",
                        per_device, run_staged);
}
