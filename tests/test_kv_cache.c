/* attn_kv_cache: page accounting (fork shares pages, copy-on-write copies
 * one, truncate/remove release them), streaming eviction, capacity, and bad
 * input: each failing call returns a clear error and leaves the cache
 * unchanged (seq_len, positions, free pages and contents are compared
 * before and after). Also attn_decode's argument checks. */
#include <stddef.h>
#include "kvref.h"

#define HKV 2
#define D 64
#define DV 32

static attn_context *ctx;
static int pool_device;   /* where make() puts the pool */

static attn_kv_cache *make(attn_dtype dt, int32_t ps, int64_t pages, int64_t sink, int64_t win)
{
    attn_kv_cache_desc d = ATTN_KV_CACHE_DESC_INIT;
    d.dtype = dt; d.num_kv_heads = HKV; d.head_dim = D; d.head_dim_v = DV;
    d.page_size = ps; d.max_pages = pages; d.max_seqs = 8;
    d.stream_sink = sink; d.stream_window = win;
    d.device = pool_device;
    attn_kv_cache *c = NULL;
    KV_OK(attn_kv_cache_create(ctx, &d, &c));
    return c;
}

/* Appends n tokens whose values encode (tag, token, element). */
static attn_status put(attn_kv_cache *c, int32_t seq, int64_t n, float tag)
{
    float *k = malloc((size_t)(n * HKV * D + 1) * 4), *v = malloc((size_t)(n * HKV * DV + 1) * 4);
    for (int64_t i = 0; i < n * HKV * D; i++) k[i] = tag + 0.001f * (float)(i % 97);
    for (int64_t i = 0; i < n * HKV * DV; i++) v[i] = -tag - 0.001f * (float)(i % 89);
    attn_tensor tk = kv_t3(k, ATTN_F32, n, HKV, D), tv = kv_t3(v, ATTN_F32, n, HKV, DV);
    attn_status s = attn_kv_cache_append(c, seq, &tk, &tv);
    free(k); free(v);
    return s;
}

/* A snapshot of everything observable about a cache's sequences. */
typedef struct snap { int64_t len[8], pos[8], free_pages; float *k[8], *v[8]; } snap;

static void take(attn_kv_cache *c, snap *s)
{
    memset(s, 0, sizeof *s);
    s->free_pages = attn_kv_cache_free_pages(c);
    for (int i = 0; i < 8; i++) {
        KV_OK(attn_kv_cache_seq_len(c, i, &s->len[i]));
        KV_OK(attn_kv_cache_seq_pos(c, i, &s->pos[i]));
        if (s->len[i] == 0) continue;
        s->k[i] = malloc((size_t)(s->len[i] * HKV * D) * 4);
        s->v[i] = malloc((size_t)(s->len[i] * HKV * DV) * 4);
        attn_tensor tk = kv_t3(s->k[i], ATTN_F32, s->len[i], HKV, D);
        attn_tensor tv = kv_t3(s->v[i], ATTN_F32, s->len[i], HKV, DV);
        KV_OK(attn_kv_cache_read(c, i, 0, &tk, &tv));
    }
}

static int same(const snap *a, const snap *b)
{
    if (a->free_pages != b->free_pages) return 0;
    for (int i = 0; i < 8; i++) {
        if (a->len[i] != b->len[i] || a->pos[i] != b->pos[i]) return 0;
        if (a->len[i] && (memcmp(a->k[i], b->k[i], (size_t)(a->len[i] * HKV * D) * 4) ||
                          memcmp(a->v[i], b->v[i], (size_t)(a->len[i] * HKV * DV) * 4)))
            return 0;
    }
    return 1;
}

static void drop(snap *s) { for (int i = 0; i < 8; i++) { free(s->k[i]); free(s->v[i]); } }

/* A call that must fail with `want` and change nothing. */
#define EXPECT_FAIL(c, want, call) do { snap b_, a_; take(c, &b_); attn_status s_ = (call); \
    KV_CHECK(s_ == (want), "%s returned %s, expected %s", #call, attn_status_string(s_), \
             attn_status_string(want)); \
    KV_CHECK(attn_last_error()[0] != '\0', "%s: no error message", #call); \
    if (getenv("KV_VERBOSE")) printf("  %-60.60s -> %s\n", #call, attn_last_error()); \
    take(c, &a_); KV_CHECK(same(&b_, &a_), "%s changed the cache", #call); drop(&b_); drop(&a_); \
} while (0)

static void test_pages(void)
{
    attn_kv_cache *c = make(ATTN_F16, 16, 20, 0, 0);
    KV_CHECK(attn_kv_cache_free_pages(c) == 20, "fresh cache has 20 free pages");
    KV_OK(put(c, 0, 40, 1.0f));                       /* 3 pages, last one half full */
    KV_CHECK(attn_kv_cache_free_pages(c) == 17, "40 tokens in 16-token pages take 3 pages");
    KV_OK(attn_kv_cache_fork(c, 0, 1, 40));           /* shares all 3 */
    KV_CHECK(attn_kv_cache_free_pages(c) == 17, "fork copies no pages");
    KV_OK(attn_kv_cache_fork(c, 0, 2, 20));           /* shares 2 */
    KV_CHECK(attn_kv_cache_free_pages(c) == 17, "prefix fork copies no pages");
    snap s0;
    take(c, &s0);
    KV_OK(put(c, 1, 1, 2.0f));                        /* copy-on-write of page 3 */
    KV_CHECK(attn_kv_cache_free_pages(c) == 16, "append to a shared partial page copies it");
    KV_OK(put(c, 2, 1, 3.0f));                        /* copy-on-write of page 2 */
    KV_CHECK(attn_kv_cache_free_pages(c) == 15, "append to a shared partial prefix page copies it");
    snap s1;
    take(c, &s1);
    KV_CHECK(s1.len[0] == 40 && memcmp(s0.k[0], s1.k[0], 40 * HKV * D * 4) == 0,
             "the fork source is unchanged by its forks' appends");
    KV_CHECK(memcmp(s0.k[0], s1.k[1], 40 * HKV * D * 4) == 0 && s1.len[1] == 41, "fork 1 keeps its prefix");
    KV_CHECK(memcmp(s0.k[0], s1.k[2], 20 * HKV * D * 4) == 0 && s1.len[2] == 21, "fork 2 keeps its prefix");
    KV_CHECK(s1.k[1][40 * HKV * D] != s1.k[0][0] && s1.k[2][20 * HKV * D] != s1.k[0][20 * HKV * D],
             "forks hold their own new tokens");
    drop(&s0); drop(&s1);
    KV_OK(attn_kv_cache_truncate(c, 0, 17));          /* releases page 3 of seq 0 (still shared? no) */
    int64_t len = 0;
    KV_OK(attn_kv_cache_seq_len(c, 0, &len));
    KV_CHECK(len == 17, "truncate sets seq_len");
    KV_OK(attn_kv_cache_remove(c, 0));
    KV_OK(attn_kv_cache_remove(c, 1));
    KV_OK(attn_kv_cache_remove(c, 2));
    KV_CHECK(attn_kv_cache_free_pages(c) == 20, "every page is free after removing every sequence");
    /* Capacity: 20 pages of 16 = 320 tokens. */
    KV_OK(put(c, 3, 300, 1.0f));
    EXPECT_FAIL(c, ATTN_ERR_OUT_OF_MEMORY, put(c, 3, 21, 2.0f));
    EXPECT_FAIL(c, ATTN_ERR_OUT_OF_MEMORY, put(c, 4, 40, 2.0f));
    KV_OK(put(c, 3, 20, 2.0f));
    KV_CHECK(attn_kv_cache_free_pages(c) == 0, "the pool is full");
    KV_OK(attn_kv_cache_fork(c, 3, 4, 100));          /* fork needs no pages */
    EXPECT_FAIL(c, ATTN_ERR_OUT_OF_MEMORY, put(c, 4, 1, 5.0f)); /* but COW does */
    KV_OK(attn_kv_cache_truncate(c, 4, 96));          /* now on a page boundary ... */
    EXPECT_FAIL(c, ATTN_ERR_OUT_OF_MEMORY, put(c, 4, 1, 5.0f)); /* ... still needs a page */
    attn_kv_cache_destroy(c);
}

static void test_streaming(void)
{
    /* sink 4, window 40, pages of 8: memory stays bounded however long it runs */
    attn_kv_cache *c = make(ATTN_Q8, 8, 8, 4, 40);
    for (int i = 0; i < 100; i++)
        KV_OK(put(c, 0, 7, (float)i));
    int64_t len = 0, pos = 0;
    KV_OK(attn_kv_cache_seq_len(c, 0, &len));
    KV_OK(attn_kv_cache_seq_pos(c, 0, &pos));
    KV_CHECK(len == 44 && pos == 700, "streaming keeps sink + window: len %lld pos %lld",
             (long long)len, (long long)pos);
    KV_CHECK(attn_kv_cache_free_pages(c) >= 1, "streaming memory is bounded (%lld free)",
             (long long)attn_kv_cache_free_pages(c));
    /* the first kept token after the sinks is position 660: tag 660/7 = 94 */
    float k[HKV * D];
    attn_tensor tk = kv_t3(k, ATTN_F32, 1, HKV, D);
    KV_OK(attn_kv_cache_read(c, 0, 4, &tk, NULL));
    KV_CHECK(fabsf(k[0] - 94.0f) < 0.5f, "window starts at the right token (%g)", k[0]);
    KV_OK(attn_kv_cache_read(c, 0, 0, &tk, NULL));
    KV_CHECK(fabsf(k[0] - 0.0f) < 0.5f, "sink token kept (%g)", k[0]);
    KV_OK(attn_kv_cache_truncate(c, 0, 30));          /* rewind inside the window */
    KV_OK(attn_kv_cache_seq_pos(c, 0, &pos));
    KV_CHECK(pos == 686, "truncate rewinds the position (%lld)", (long long)pos);
    KV_OK(put(c, 0, 100, 7.0f));
    KV_OK(attn_kv_cache_seq_len(c, 0, &len));
    KV_CHECK(len == 44, "len after more appends %lld", (long long)len);
    /* one huge append: only what is kept is written, memory still bounded */
    KV_OK(put(c, 0, 1000, 9.0f));
    KV_OK(attn_kv_cache_remove(c, 0));
    KV_CHECK(attn_kv_cache_free_pages(c) == 8, "all pages back");
    attn_kv_cache_destroy(c);
}

static void test_bad_input(void)
{
    attn_kv_cache_desc d = ATTN_KV_CACHE_DESC_INIT;
    attn_kv_cache *c = NULL;
    d.num_kv_heads = HKV; d.head_dim = D; d.max_pages = 4;
    KV_CHECK(attn_kv_cache_create(NULL, &d, &c) == ATTN_ERR_INVALID_ARGUMENT && !c, "NULL ctx");
    KV_CHECK(attn_kv_cache_create(ctx, NULL, &c) == ATTN_ERR_INVALID_ARGUMENT, "NULL desc");
    KV_CHECK(attn_kv_cache_create(ctx, &d, NULL) == ATTN_ERR_INVALID_ARGUMENT, "NULL out");
    attn_kv_cache_desc b = d; b.size = 8;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "bad size");
    b = d; b.dtype = ATTN_U8;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "U8 storage");
    b = d; b.dtype = (attn_dtype)77;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "bogus dtype");
    b = d; b.dtype = ATTN_Q4; b.head_dim = 40;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "Q4 with D=40");
    b = d; b.head_dim = 0;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "D=0");
    b = d; b.num_kv_heads = 0;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "Hkv=0");
    b = d; b.page_size = 0;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "page_size 0");
    b = d; b.max_pages = 0;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "max_pages 0");
    b = d; b.max_seqs = 0;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "max_seqs 0");
    b = d; b.stream_sink = 4;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "sink without window");
    b = d; b.device = -1;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "device -1");
    b = d; b.device = attn_device_count(ctx);
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "device past the last");
    /* a desc from before the device field: accepted, the pool on the CPU */
    b = d; b.size = offsetof(attn_kv_cache_desc, device); b.device = 99;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_OK && c, "desc without the device field");
    attn_kv_cache_destroy(c);
    c = NULL;
    b = d; b.stream_window = -1;
    KV_CHECK(attn_kv_cache_create(ctx, &b, &c) == ATTN_ERR_INVALID_ARGUMENT, "negative window");
    b = d; b.max_pages = INT32_MAX; b.head_dim = 4096; b.num_kv_heads = 65536; b.page_size = 65536;
    attn_status s = attn_kv_cache_create(ctx, &b, &c);
    KV_CHECK(s == ATTN_ERR_INVALID_ARGUMENT || s == ATTN_ERR_OUT_OF_MEMORY, "huge pool fails cleanly");
    KV_CHECK(c == NULL, "no cache on failure");

    c = make(ATTN_Q4, 16, 16, 0, 0);
    KV_OK(put(c, 1, 50, 1.0f));
    KV_OK(put(c, 2, 10, 2.0f));
    float k[3 * HKV * 96], v[3 * HKV * 96];
    memset(k, 0, sizeof k); memset(v, 0, sizeof v);
    attn_tensor tk = kv_t3(k, ATTN_F32, 3, HKV, D), tv = kv_t3(v, ATTN_F32, 3, HKV, DV);
    attn_tensor wk = kv_t3(k, ATTN_F32, 3, HKV, D + 32), wh = kv_t3(k, ATTN_F32, 3, HKV + 1, D);
    attn_tensor wn = kv_t3(v, ATTN_F32, 2, HKV, DV), wd = kv_t3(k, ATTN_U8, 3, HKV, D);
    attn_tensor nul = kv_t3(NULL, ATTN_F32, 3, HKV, D);
    int64_t len;
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 8, &tk, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, -1, &tk, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 1, &wk, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 1, &wh, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 1, &tk, &wn));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 1, &wd, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 1, &nul, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 1, NULL, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 1, &tk, NULL));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_append(c, 1, &tk, &tk));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_truncate(c, 3, 0));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_truncate(c, 1, 51));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_truncate(c, 1, -1));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_remove(c, 3));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_remove(c, 99));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_fork(c, 3, 4, 0));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_fork(c, 1, 2, 5));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_fork(c, 1, 1, 5));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_fork(c, 1, 4, 51));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_fork(c, 1, 8, 5));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_read(c, 1, 48, &tk, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_read(c, 1, INT64_MAX - 1, &tk, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_read(c, 3, 0, &tk, &tv));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_read(c, 1, 0, NULL, NULL));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_seq_len(c, 8, &len));
    EXPECT_FAIL(c, ATTN_ERR_INVALID_ARGUMENT, attn_kv_cache_seq_len(c, 1, NULL));
    KV_CHECK(attn_kv_cache_append(NULL, 0, &tk, &tv) == ATTN_ERR_INVALID_ARGUMENT, "NULL cache");
    KV_CHECK(attn_kv_cache_seq_len(NULL, 0, &len) == ATTN_ERR_INVALID_ARGUMENT, "NULL cache");
    KV_CHECK(attn_kv_cache_free_pages(NULL) == -1 && attn_kv_cache_token_bytes(NULL) == 0, "NULL");
    attn_kv_cache_destroy(NULL);
    KV_CHECK(attn_kv_cache_token_bytes(c) == (size_t)(HKV * (D / 2 + 4 * D / 32 + DV / 2 + 4 * DV / 32)),
             "Q4 token bytes %zu", attn_kv_cache_token_bytes(c));

    /* attn_decode: each bad argument fails, and out is left untouched. */
    enum { B = 2, SQ = 2, HQ = 4 };
    float q[B * SQ * HQ * D], out[B * SQ * HQ * DV], lse[B * HQ * SQ];
    for (size_t i = 0; i < sizeof q / 4; i++) q[i] = 0.1f;
    for (size_t i = 0; i < sizeof out / 4; i++) out[i] = 12345.0f;
    attn_tensor tq = attn_tensor_4d(q, ATTN_F32, B, SQ, HQ, D);
    attn_tensor to = attn_tensor_4d(out, ATTN_F32, B, SQ, HQ, DV);
    attn_tensor tl = kv_t3(lse, ATTN_F32, B, HQ, SQ);
    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    int32_t seqs[B] = { 1, 2 }, unknown[B] = { 1, 3 }, outside[B] = { 1, 9 };
    attn_tensor q5 = attn_tensor_4d(q, ATTN_F32, B, SQ, 5, D);
    attn_tensor qd = attn_tensor_4d(q, ATTN_F32, B, SQ, 2, D + 32);
    attn_tensor q17 = attn_tensor_4d(q, ATTN_F32, 1, 17, 2, D);
    attn_tensor ob = attn_tensor_4d(out, ATTN_F32, B, SQ, HQ, D);
    attn_tensor lb = kv_t3(lse, ATTN_F32, B, SQ, HQ);
    attn_tensor alias = attn_tensor_4d(q, ATTN_F32, B, SQ, HQ, DV);
    attn_sdpa_params pm = p, ps = p, pz = p, pc = p;
    pm.mask = &tq; ps.score = ATTN_SCORE_SIGMOID; pz.size = 4;
    int32_t cu[3] = { 0, 1, 2 };
    pc.cu_seqlens_q = cu; pc.cu_seqlens_k = cu; pc.num_seqs = 2;
    struct { const char *what; attn_status st; } r[] = {
        { "NULL ctx",        attn_decode(NULL, &p, &tq, c, seqs, &to, NULL) },
        { "NULL params",     attn_decode(ctx, NULL, &tq, c, seqs, &to, NULL) },
        { "NULL q",          attn_decode(ctx, &p, NULL, c, seqs, &to, NULL) },
        { "NULL cache",      attn_decode(ctx, &p, &tq, NULL, seqs, &to, NULL) },
        { "NULL seqs",       attn_decode(ctx, &p, &tq, c, NULL, &to, NULL) },
        { "NULL out",        attn_decode(ctx, &p, &tq, c, seqs, NULL, NULL) },
        { "unknown seq",     attn_decode(ctx, &p, &tq, c, unknown, &to, NULL) },
        { "seq out of range",attn_decode(ctx, &p, &tq, c, outside, &to, NULL) },
        { "Hq % Hkv",        attn_decode(ctx, &p, &q5, c, seqs, &to, NULL) },
        { "head dim",        attn_decode(ctx, &p, &qd, c, seqs, &to, NULL) },
        { "Sq > 16",         attn_decode(ctx, &p, &q17, c, seqs, &to, NULL) },
        { "out shape",       attn_decode(ctx, &p, &tq, c, seqs, &ob, NULL) },
        { "lse shape",       attn_decode(ctx, &p, &tq, c, seqs, &to, &lb) },
        { "out aliases q",   attn_decode(ctx, &p, &tq, c, seqs, &alias, NULL) },
        { "mask",            attn_decode(ctx, &pm, &tq, c, seqs, &to, NULL) },
        { "sigmoid + lse",   attn_decode(ctx, &ps, &tq, c, seqs, &to, &tl) },
        { "params size",     attn_decode(ctx, &pz, &tq, c, seqs, &to, NULL) },
        { "varlen",          attn_decode(ctx, &pc, &tq, c, seqs, &to, NULL) },
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        KV_CHECK(r[i].st == ATTN_ERR_INVALID_ARGUMENT, "attn_decode with %s: %s", r[i].what,
                 attn_status_string(r[i].st));
    int untouched = 1;
    for (size_t i = 0; i < sizeof out / 4; i++) untouched &= out[i] == 12345.0f;
    KV_CHECK(untouched, "failed attn_decode calls left out untouched");
    /* A sequence shorter than Sq. */
    KV_OK(put(c, 5, 1, 1.0f));
    int32_t short_seq[B] = { 1, 5 };
    KV_CHECK(attn_decode(ctx, &p, &tq, c, short_seq, &to, NULL) == ATTN_ERR_INVALID_ARGUMENT,
             "sequence shorter than Sq");
    /* A cache from another context. */
    attn_context *ctx2 = NULL;
    KV_OK(attn_context_create(NULL, &ctx2));
    KV_CHECK(attn_decode(ctx2, &p, &tq, c, seqs, &to, NULL) == ATTN_ERR_INVALID_ARGUMENT,
             "cache of another context");
    attn_context_destroy(ctx2);
    KV_OK(attn_decode(ctx, &p, &tq, c, seqs, &to, &tl));
    attn_kv_cache_destroy(c);
}

/* Page-table traffic (partial pages, copy-on-write, truncation, streaming
 * eviction, fork) on a cache of device dev: it must read back exactly like
 * the same script on a CPU cache. */
static void script(attn_kv_cache *c)
{
    KV_OK(put(c, 0, 21, 1.0f));
    KV_OK(attn_kv_cache_fork(c, 0, 1, 19));
    KV_OK(put(c, 1, 3, 2.0f));                 /* copy-on-write of a shared partial page */
    KV_OK(put(c, 0, 45, 3.0f));
    KV_OK(attn_kv_cache_truncate(c, 0, 15));
    KV_OK(put(c, 2, 1, 4.0f));
    KV_OK(put(c, 0, 7, 5.0f));
}

static void test_device_pools(void)
{
    for (int dev = 1; dev < attn_device_count(ctx); dev++) {
        const attn_dtype dts[2] = { ATTN_F16, ATTN_Q4 };
        for (int i = 0; i < 4; i++) {
            const int64_t sink = i & 2 ? 3 : 0, win = i & 2 ? 20 : 0;
            pool_device = 0;
            attn_kv_cache *a = make(dts[i & 1], 8, 32, sink, win);
            pool_device = dev;
            attn_kv_cache *b = make(dts[i & 1], 8, 32, sink, win);
            pool_device = 0;
            if (!a || !b) {
                attn_kv_cache_destroy(a);
                attn_kv_cache_destroy(b);
                continue;
            }
            script(a);
            script(b);
            snap sa, sb;
            take(a, &sa);
            take(b, &sb);
            KV_CHECK(same(&sa, &sb), "device %d, case %d: the device pool reads back differently "
                     "from the CPU pool", dev, i);
            drop(&sa);
            drop(&sb);
            /* attn_decode runs where the cache is: host tensors are refused. */
            float q[HKV * D], o[HKV * DV];
            memset(q, 0, sizeof q);
            attn_tensor tq = { .data = q, .dtype = ATTN_F32, .ndim = 4, .shape = { 1, 1, HKV, D } };
            attn_tensor to = { .data = o, .dtype = ATTN_F32, .ndim = 4, .shape = { 1, 1, HKV, DV } };
            attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
            int32_t seq = 0;
            KV_CHECK(attn_decode(ctx, &p, &tq, b, &seq, &to, NULL) == ATTN_ERR_INVALID_ARGUMENT,
                     "host q and out with a cache on device %d", dev);
            attn_kv_cache_destroy(a);
            attn_kv_cache_destroy(b);
        }
    }
}

/* Non-finite values: f32/f16/bf16 keep them; Q8 and Q4 have no code for
 * NaN and store it as q = 0 (Q8: 0; Q4: the block's minimum), with the
 * block's other values quantised as usual and infinities saturated. */
static void test_non_finite(void)
{
    static const attn_dtype types[2] = { ATTN_Q8, ATTN_Q4 };
    for (int t = 0; t < 2; t++) {
        attn_kv_cache *c = make(types[t], 4, 4, 0, 0);
        float k[HKV * D], v[HKV * DV], kr[HKV * D], vr[HKV * DV];
        for (int i = 0; i < HKV * D; i++) k[i] = 0.01f * (float)(i % 13);
        for (int i = 0; i < HKV * DV; i++) v[i] = -0.02f * (float)(i % 7);
        k[3] = NAN;
        k[40] = INFINITY;
        v[5] = NAN;
        v[37] = -INFINITY;
        attn_tensor tk = kv_t3(k, ATTN_F32, 1, HKV, D), tv = kv_t3(v, ATTN_F32, 1, HKV, DV);
        KV_OK(attn_kv_cache_append(c, 0, &tk, &tv));
        attn_tensor rk = kv_t3(kr, ATTN_F32, 1, HKV, D), rv = kv_t3(vr, ATTN_F32, 1, HKV, DV);
        KV_OK(attn_kv_cache_read(c, 0, 0, &rk, &rv));
        int finite = 1;
        for (int i = 0; i < HKV * D; i++) finite &= isfinite(kr[i]);
        for (int i = 0; i < HKV * DV; i++) finite &= isfinite(vr[i]);
        KV_CHECK(finite, "%s: NaN and inf inputs read back finite", types[t] == ATTN_Q8 ? "Q8" : "Q4");
        /* a block without non-finite values is quantised as usual */
        KV_CHECK(fabsf(kr[HKV * D - 1] - k[HKV * D - 1]) < 0.01f,
                 "%s: other blocks unaffected (%g vs %g)", types[t] == ATTN_Q8 ? "Q8" : "Q4",
                 (double)kr[HKV * D - 1], (double)k[HKV * D - 1]);
        /* a query with NaN and inf decodes without undefined arithmetic
         * (its scores are NaN; the integer-dot-product kernels round it) */
        float q[2 * HKV * D], o[2 * HKV * DV];
        for (int i = 0; i < 2 * HKV * D; i++) q[i] = 0.1f;
        q[1] = NAN;
        q[D + 2] = INFINITY;
        attn_tensor tq = attn_tensor_4d(q, ATTN_F32, 1, 1, 2 * HKV, D);
        attn_tensor to = attn_tensor_4d(o, ATTN_F32, 1, 1, 2 * HKV, DV);
        attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
        int32_t seq = 0;
        KV_OK(attn_decode(ctx, &p, &tq, c, &seq, &to, NULL));
        attn_kv_cache_destroy(c);
    }
}

int main(void)
{
    if (attn_context_create(NULL, &ctx) != ATTN_OK) {
        fprintf(stderr, "context: %s\n", attn_last_error());
        return 1;
    }
    test_pages();
    test_streaming();
    test_bad_input();
    test_non_finite();
    test_device_pools();
    attn_context_destroy(ctx);
    printf("test_kv_cache: %d failures\n", kv_failures);
    return kv_failures ? 1 : 0;
}
