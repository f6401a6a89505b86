/*
 * attn-bench: throughput of libattn's ops against the machine's own roofs.
 *
 * Uses only the public API (include/attn.h). Measures, once per run, the FMA
 * peak of the ISA the context reports (one thread and all the context's
 * threads) and the memory copy bandwidth, then runs a shape set (or one shape
 * given on the command line) and prints median time, GFLOP/s and the fraction
 * of the FMA roof; --json writes one JSON object per shape.
 *
 * Layout, so that the decode / linear / neighborhood families slot in:
 *   - bench_case:  one problem (op + shape fields), plain data;
 *   - shape sets:  named generators of bench_case lists (set_table[]);
 *   - op runners:  per-op setup / run / teardown / flop and byte counts
 *                  (op_table[]); the timing loop and the reporting are generic.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#include "attn.h"
#include "roof.h"

#define EXIT_USAGE   2
#define EXIT_LIBRARY 1

/* ------------------------------------------------------------------------ */
/* Problems                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum bench_op {
    OP_SDPA = 0,
    OP_DECODE,      /* attn_decode over a paged KV cache: Sq query tokens, Sk cached */
    OP_SPARSE,      /* block-sparse attn_sdpa: a random block mask of density_pct kept blocks */
    OP_SELECT,      /* attn_block_select (select_method) writing such a mask */
    OP_LINEAR,      /* attn_linear: Sq = Sk = T tokens, H = Hq = Hkv heads, D = Dk */
    /* neighborhood attention (issue #6 part 1) */
    OP_NEIGHBORHOOD, /* attn_neighborhood over a 1-3 axis token grid (sq = sk = tokens) */
    OP_NB_DENSE,     /* the same problem as dense attn_sdpa with the equivalent U8 mask */
    /* end neighborhood attention */
    OP_COUNT
} bench_op;

typedef struct bench_case {
    bench_op    op;
    const char *set;        /* name of the set it came from ("cli" for --b ...) */
    int64_t     b, hq, hkv, sq, sk, d, dv;
    int         causal;
    int64_t     window_left, window_right, sink_tokens;
    attn_dtype  dtype;
    attn_linear_kind lin_kind;   /* OP_LINEAR only */
    int         lin_step;        /* OP_LINEAR: one recurrent decode step with state in/out */
    int         lin_chunk;       /* OP_LINEAR chunkwise: chunk size, 0 = LINEAR_CHUNK */
    int64_t     lin_layout_heads; /* OP_LINEAR: heads per token row in memory (0 = hq); the
                                     call gets the first hq of them */
    int         bhsd;           /* OP_SDPA: q, k, v, out stored [B, H, S, D] (each head's rows
                                   together, PyTorch's layout), passed as strided [B, S, H, D] */
    /* neighborhood attention (OP_NEIGHBORHOOD, OP_NB_DENSE): grid axes and kernel */
    int         nb_ndim;
    int64_t     nb_grid[3], nb_kernel[3];
    int         density_pct;    /* OP_SPARSE: percent of (causally allowed) blocks kept */
    int         select_method;  /* OP_SELECT: an attn_block_select_method */
} bench_case;

static const char *dtype_name(attn_dtype t)
{
    switch (t) {
    case ATTN_F32:  return "f32";
    case ATTN_F16:  return "f16";
    case ATTN_BF16: return "bf16";
    case ATTN_Q8:   return "q8";
    case ATTN_Q4:   return "q4";
    default:        return "?";
    }
}

/* Visible (query, key) pairs of one (batch, head) under the mask parameters
 * of include/attn.h: diagonal d(i) = i + Sk - Sq; causal j <= d(i);
 * window_left j >= d(i) - L, window_right j <= d(i) + R, each unless
 * j < sink_tokens (causality still applies to sinks). Counted exactly, row by
 * row, so GFLOP/s is the work the mask asks for, not the dense Sq*Sk. */
static double sdpa_visible_pairs(int64_t sq, int64_t sk, int causal, int64_t wl, int64_t wr,
                                 int64_t sinks)
{
    double pairs = 0.0;
    for (int64_t i = 0; i < sq; i++) {
        int64_t diag = i + sk - sq;
        int64_t hi = sk - 1;                      /* window (with causality) */
        if (causal && diag < hi)
            hi = diag;
        if (wr >= 0 && diag + wr < hi)
            hi = diag + wr;
        int64_t lo = 0;
        if (wl >= 0 && diag - wl > lo)
            lo = diag - wl;
        int64_t nwin = hi >= lo ? hi - lo + 1 : 0;
        int64_t shi = sinks < sk ? sinks - 1 : sk - 1;  /* sinks: [0, shi] */
        if (causal && diag < shi)
            shi = diag;
        int64_t nsink = shi >= 0 ? shi + 1 : 0;
        int64_t both = 0;                         /* overlap of [lo,hi] and [0,shi] */
        if (nwin > 0 && nsink > 0) {
            int64_t ohi = hi < shi ? hi : shi;
            both = ohi >= lo ? ohi - lo + 1 : 0;
        }
        pairs += (double)(nwin + nsink - both);
    }
    return pairs;
}

/* ------------------------------------------------------------------------ */
/* Random inputs                                                            */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static uint16_t f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u)
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
    if (a >= 0x477ff000u)                        /* rounds to >= 65536: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {                       /* below 2^-14: f16 subnormal or zero */
        float v = fabsf(f) * 16777216.0f;         /* in units of 2^-24, exact */
        return (uint16_t)(sign | (uint32_t)lrintf(v)); /* nearest-even; 1024 = min normal */
    }
    uint32_t h = ((a >> 13) - (112u << 10));
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

/* Fills n elements of dtype t with uniform values in [-1, 1), in parallel,
 * reproducibly from `seed` (chunks of 64 Ki elements, one stream each). */
static void fill_random(void *data, attn_dtype t, size_t n, uint64_t seed)
{
    const size_t chunk = (size_t)1 << 16;
    int64_t nchunks = (int64_t)((n + chunk - 1) / chunk);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t c = 0; c < nchunks; c++) {
        uint64_t s = seed * UINT64_C(0x100000001B3) + (uint64_t)c;
        size_t i0 = (size_t)c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        for (size_t i = i0; i < i1; i++) {
            float f = (float)((double)(splitmix64(&s) >> 40) * (1.0 / 8388608.0) - 1.0);
            if (t == ATTN_F32)
                ((float *)data)[i] = f;
            else if (t == ATTN_BF16)
                ((uint16_t *)data)[i] = f32_to_bf16(f);
            else
                ((uint16_t *)data)[i] = f32_to_f16(f);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Run environment                                                          */
/* ------------------------------------------------------------------------ */

typedef struct bench_env {
    attn_context     *ctx;
    int               device;
    attn_device_info  info;
    int               threads;
    int               hugepages;   /* --hugepages: host tensors on 2 MiB pages where granted */
} bench_env;

/* A tensor's memory: host (device 0, 64-byte aligned) or a device buffer. */
typedef struct bench_mem {
    void        *host;
    attn_buffer *buf;
    size_t       bytes;
} bench_mem;

static int report_lib_error(const char *what, attn_status s);

/* Where the table goes: stdout, or stderr when --json - takes stdout. */
static FILE *tab;

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void tprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(tab ? tab : stdout, fmt, ap);
    va_end(ap);
}

/* Allocates `n` elements of `t`, filled with random data when seed != 0.
 * Returns ATTN_OK, ATTN_ERR_OUT_OF_MEMORY, or a library error. */
static attn_status mem_alloc(bench_env *env, bench_mem *m, attn_dtype t, size_t n, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    size_t es = attn_dtype_size(t);
    if (n > SIZE_MAX / (es ? es : 1) - 64)
        return ATTN_ERR_OUT_OF_MEMORY;
    m->bytes = n * es;
    size_t rounded = (m->bytes + 63) & ~(size_t)63;
    void *h = NULL;
    if (rounded == 0)
        rounded = 64;
    /* --hugepages: 2 MiB aligned and advised before the first touch, so the
     * kernel backs whole 2 MiB runs with huge pages (transparent huge pages
     * in "madvise" mode; "always" does it anyway, "never" not at all). */
    const size_t huge = (size_t)2 << 20;
    const int want_huge = env->hugepages && env->device == 0 && rounded >= huge;
    if (posix_memalign(&h, want_huge ? huge : 64, rounded))
        return ATTN_ERR_OUT_OF_MEMORY;
#ifdef MADV_HUGEPAGE
    if (want_huge)
        (void)madvise(h, rounded / huge * huge, MADV_HUGEPAGE);   /* advice: failure is fine */
#endif
    if (seed)
        fill_random(h, t, n, seed);
    else
        memset(h, 0, rounded);
    if (env->device == 0) {
        m->host = h;
        return ATTN_OK;
    }
    attn_status s = attn_buffer_create(env->ctx, env->device, rounded, &m->buf);
    if (s == ATTN_OK)
        s = attn_buffer_write(m->buf, 0, h, rounded);
    free(h);
    if (s != ATTN_OK) {
        attn_buffer_destroy(m->buf);
        m->buf = NULL;
    }
    return s;
}

static void mem_free(bench_mem *m)
{
    free(m->host);
    attn_buffer_destroy(m->buf);
    memset(m, 0, sizeof *m);
}

static attn_tensor mem_tensor4(const bench_mem *m, attn_dtype t, int64_t d0, int64_t d1,
                               int64_t d2, int64_t d3)
{
    attn_tensor x = attn_tensor_4d(m->host, t, d0, d1, d2, d3);
    if (m->buf) {
        x.data = NULL;
        x.buffer = m->buf;
        x.offset = 0;
    }
    return x;
}

/* ------------------------------------------------------------------------ */
/* Op runners                                                               */
/* ------------------------------------------------------------------------ */

typedef struct op_runner {
    bench_op    op;
    const char *name;
    /* Allocates and fills the inputs; *state is passed to run/teardown. */
    attn_status (*setup)(bench_env *env, const bench_case *c, void **state);
    attn_status (*run)(bench_env *env, const bench_case *c, void *state);
    void        (*teardown)(void *state);
    double      (*flops)(const bench_case *c);     /* per call */
    double      (*bytes)(const bench_case *c);     /* minimum memory traffic per call */
    const char  *flop_rule;                        /* how flops are counted, for the output */
} op_runner;

typedef struct sdpa_state {
    bench_mem   q, k, v, o;
    attn_tensor tq, tk, tv, to;
    attn_sdpa_params p;
} sdpa_state;

static void sdpa_teardown(void *st)
{
    sdpa_state *s = st;
    if (!s)
        return;
    mem_free(&s->q);
    mem_free(&s->k);
    mem_free(&s->v);
    mem_free(&s->o);
    free(s);
}

/* The case's mask as attn_sdpa / attn_decode parameters. */
static attn_sdpa_params case_params(const bench_case *c)
{
    attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
    p.causal = c->causal;
    p.window_left = c->window_left;
    p.window_right = c->window_right;
    p.sink_tokens = c->sink_tokens;
    return p;
}

/* The strides of a [B, S, H, D] view of memory laid out [B, H, S, D]. */
static void heads_major(attn_tensor *t)
{
    const int64_t s = t->shape[1], h = t->shape[2], d = t->shape[3];
    t->stride[3] = 1;
    t->stride[1] = d;
    t->stride[2] = s * d;
    t->stride[0] = h * s * d;
}

static attn_status sdpa_setup(bench_env *env, const bench_case *c, void **state)
{
    sdpa_state *s = calloc(1, sizeof *s);
    if (!s)
        return ATTN_ERR_OUT_OF_MEMORY;
    attn_status st;
    if ((st = mem_alloc(env, &s->q, c->dtype, (size_t)(c->b * c->sq * c->hq * c->d), 1)) ||
        (st = mem_alloc(env, &s->k, c->dtype, (size_t)(c->b * c->sk * c->hkv * c->d), 2)) ||
        (st = mem_alloc(env, &s->v, c->dtype, (size_t)(c->b * c->sk * c->hkv * c->dv), 3)) ||
        (st = mem_alloc(env, &s->o, c->dtype, (size_t)(c->b * c->sq * c->hq * c->dv), 0))) {
        sdpa_teardown(s);
        return st;
    }
    s->tq = mem_tensor4(&s->q, c->dtype, c->b, c->sq, c->hq, c->d);
    s->tk = mem_tensor4(&s->k, c->dtype, c->b, c->sk, c->hkv, c->d);
    s->tv = mem_tensor4(&s->v, c->dtype, c->b, c->sk, c->hkv, c->dv);
    s->to = mem_tensor4(&s->o, c->dtype, c->b, c->sq, c->hq, c->dv);
    if (c->bhsd) {
        heads_major(&s->tq);
        heads_major(&s->tk);
        heads_major(&s->tv);
        heads_major(&s->to);
    }
    s->p = case_params(c);
    *state = s;
    return ATTN_OK;
}

static attn_status sdpa_run(bench_env *env, const bench_case *c, void *st)
{
    sdpa_state *s = st;
    (void)c;
    return attn_sdpa(env->ctx, &s->p, &s->tq, &s->tk, &s->tv, &s->to, NULL);
}

static double sdpa_flops(const bench_case *c)
{
    double pairs = sdpa_visible_pairs(c->sq, c->sk, c->causal, c->window_left, c->window_right,
                                      c->sink_tokens);
    return 2.0 * (double)(c->d + c->dv) * pairs * (double)c->b * (double)c->hq;
}

static double sdpa_bytes(const bench_case *c)
{
    double es = (double)attn_dtype_size(c->dtype);
    return es * (double)c->b * ((double)c->sq * (double)c->hq * (double)(c->d + c->dv) +
                                (double)c->sk * (double)c->hkv * (double)(c->d + c->dv));
}

/* decode: B sequences of Sk tokens in a paged KV cache stored as c->dtype
 * (F32/F16/BF16/Q8/Q4, pages of 64), Sq query tokens each. Bytes = the cache
 * read (K and V of every head, Q8/Q4 block scales included): decode is
 * bandwidth-bound, so GB/s against the copy roof (bw_fraction in the JSON)
 * is its figure of merit. Host memory only; caches past 6 GiB are skipped. */
typedef struct decode_state {
    attn_kv_cache   *cache;
    float           *q, *o;
    int32_t         *seqs;
    attn_tensor      tq, to;
    attn_sdpa_params p;
} decode_state;

static double decode_elem_bytes(attn_dtype t)
{
    switch (t) {
    case ATTN_F32:  return 4.0;
    case ATTN_Q8:   return 1.0 + 2.0 / 32.0;      /* int8 + an f16 scale per 32 */
    case ATTN_Q4:   return 0.5 + 4.0 / 32.0;      /* nibbles + f16 scale and min per 32 */
    default:        return 2.0;
    }
}

static double decode_bytes(const bench_case *c)
{
    return decode_elem_bytes(c->dtype) * (double)c->b * (double)c->sk * (double)c->hkv *
           (double)(c->d + c->dv);
}

static void decode_teardown(void *st)
{
    decode_state *s = st;
    if (!s)
        return;
    attn_kv_cache_destroy(s->cache);
    free(s->q);
    free(s->o);
    free(s->seqs);
    free(s);
}

static attn_status decode_setup(bench_env *env, const bench_case *c, void **state)
{
    if (env->device != 0)
        return ATTN_ERR_UNSUPPORTED;              /* the cache lives on the CPU */
    if (decode_bytes(c) > 6.0 * 1073741824.0)
        return ATTN_ERR_OUT_OF_MEMORY;
    decode_state *s = calloc(1, sizeof *s);
    if (!s)
        return ATTN_ERR_OUT_OF_MEMORY;
    const int64_t page = 64, chunk = 1024;
    attn_kv_cache_desc d = ATTN_KV_CACHE_DESC_INIT;
    d.dtype = c->dtype;
    d.num_kv_heads = (int32_t)c->hkv;
    d.head_dim = (int32_t)c->d;
    d.head_dim_v = (int32_t)c->dv;
    d.page_size = (int32_t)page;
    d.max_seqs = (int32_t)c->b;
    d.max_pages = c->b * ((c->sk + page - 1) / page);
    attn_status st = attn_kv_cache_create(env->ctx, &d, &s->cache);
    const size_t nq = (size_t)(c->b * c->sq * c->hq * c->d), no = (size_t)(c->b * c->sq * c->hq * c->dv);
    const size_t nk = (size_t)(chunk * c->hkv * (c->d > c->dv ? c->d : c->dv));
    float *kv = malloc(nk * sizeof *kv);
    s->q = malloc(nq * sizeof *s->q);
    s->o = malloc(no * sizeof *s->o);
    s->seqs = malloc((size_t)c->b * sizeof *s->seqs);
    if (st == ATTN_OK && (!kv || !s->q || !s->o || !s->seqs))
        st = ATTN_ERR_OUT_OF_MEMORY;
    if (st == ATTN_OK) {
        fill_random(kv, ATTN_F32, nk, 2);
        fill_random(s->q, ATTN_F32, nq, 1);
        for (int64_t b = 0; b < c->b && st == ATTN_OK; b++) {
            s->seqs[b] = (int32_t)b;
            for (int64_t t = 0; t < c->sk && st == ATTN_OK; t += chunk) {
                int64_t n = c->sk - t < chunk ? c->sk - t : chunk;
                attn_tensor tk = { 0 }, tv;
                tk.data = kv; tk.dtype = ATTN_F32; tk.ndim = 3;
                tk.shape[0] = n; tk.shape[1] = c->hkv; tk.shape[2] = c->d;
                tv = tk;
                tv.shape[2] = c->dv;
                st = attn_kv_cache_append(s->cache, (int32_t)b, &tk, &tv);
            }
        }
    }
    free(kv);
    if (st != ATTN_OK) {
        decode_teardown(s);
        return st;
    }
    s->tq = attn_tensor_4d(s->q, ATTN_F32, c->b, c->sq, c->hq, c->d);
    s->to = attn_tensor_4d(s->o, ATTN_F32, c->b, c->sq, c->hq, c->dv);
    s->p = case_params(c);
    *state = s;
    return ATTN_OK;
}

static attn_status decode_run(bench_env *env, const bench_case *c, void *st)
{
    decode_state *s = st;
    (void)c;
    return attn_decode(env->ctx, &s->p, &s->tq, s->cache, s->seqs, &s->to, NULL);
}

/* ---- block-sparse sdpa and attn_block_select ("sparse" set) ---- */

/* Blocks of the benchmark's block masks (and of attn_block_select). */
#define SPARSE_BLOCK 128

/* The block mask of a sparse case, a pure function of the case: block
 * (h, I, J) is kept with probability density_pct / 100 among the causally
 * allowed blocks (all blocks without causal); the diagonal block is always
 * kept so no query row is left without keys. */
static int sparse_kept(const bench_case *c, int64_t h, int64_t I, int64_t J)
{
    const int64_t nbq = (c->sq + SPARSE_BLOCK - 1) / SPARSE_BLOCK;
    const int64_t diag = (I * SPARSE_BLOCK + SPARSE_BLOCK - 1 < c->sq
                          ? I * SPARSE_BLOCK + SPARSE_BLOCK - 1 : c->sq - 1) + c->sk - c->sq;
    if (c->causal && J * SPARSE_BLOCK > diag)
        return 0;
    if (J == diag / SPARSE_BLOCK)
        return 1;
    uint64_t st = ((uint64_t)h * (uint64_t)nbq + (uint64_t)I) * UINT64_C(1000003) + (uint64_t)J;
    return (double)(splitmix64(&st) >> 11) * (1.0 / 9007199254740992.0) * 100.0 < c->density_pct;
}

/* Visible (query, key) pairs of block (I, J) under the causal rule. */
static double sparse_block_pairs(const bench_case *c, int64_t I, int64_t J)
{
    double pairs = 0.0;
    const int64_t i1 = (I + 1) * SPARSE_BLOCK < c->sq ? (I + 1) * SPARSE_BLOCK : c->sq;
    const int64_t j0 = J * SPARSE_BLOCK, j1 = j0 + SPARSE_BLOCK < c->sk ? j0 + SPARSE_BLOCK : c->sk;
    for (int64_t i = I * SPARSE_BLOCK; i < i1; i++) {
        int64_t hi = c->causal ? i + c->sk - c->sq + 1 : j1;
        hi = hi < j1 ? hi : j1;
        pairs += hi > j0 ? (double)(hi - j0) : 0.0;
    }
    return pairs;
}

typedef struct sparse_state {
    sdpa_state  *dense;       /* q, k, v, out as for sdpa */
    bench_mem    mask;        /* U8 [1, Hq, nbq, nbk] on the bench's device */
    attn_tensor  tm;
} sparse_state;

static void sparse_teardown(void *st)
{
    sparse_state *s = st;
    if (!s)
        return;
    sdpa_teardown(s->dense);
    mem_free(&s->mask);
    free(s);
}

/* The mask lives where q, k, v do (a device buffer on GPU devices), so
 * attn_block_select writes it and attn_sdpa reads it there. */
static attn_status sparse_setup(bench_env *env, const bench_case *c, void **state)
{
    sparse_state *s = calloc(1, sizeof *s);
    if (!s)
        return ATTN_ERR_OUT_OF_MEMORY;
    void *dense = NULL;
    attn_status st = sdpa_setup(env, c, &dense);
    s->dense = dense;
    const int64_t nbq = (c->sq + SPARSE_BLOCK - 1) / SPARSE_BLOCK;
    const int64_t nbk = (c->sk + SPARSE_BLOCK - 1) / SPARSE_BLOCK;
    const size_t n = (size_t)(c->hq * nbq * nbk);
    if (st == ATTN_OK)
        st = mem_alloc(env, &s->mask, ATTN_U8, n, 0);
    uint8_t *kept = c->op == OP_SPARSE && st == ATTN_OK ? malloc(n) : NULL;
    if (c->op == OP_SPARSE && st == ATTN_OK && !kept)
        st = ATTN_ERR_OUT_OF_MEMORY;
    if (kept) {
        for (int64_t h = 0; h < c->hq; h++)
            for (int64_t I = 0; I < nbq; I++)
                for (int64_t J = 0; J < nbk; J++)
                    kept[(h * nbq + I) * nbk + J] = (uint8_t)sparse_kept(c, h, I, J);
        if (s->mask.host)
            memcpy(s->mask.host, kept, n);
        else
            st = attn_buffer_write(s->mask.buf, 0, kept, n);
        free(kept);
    }
    if (st != ATTN_OK) {
        sparse_teardown(s);
        return st;
    }
    s->tm = mem_tensor4(&s->mask, ATTN_U8, 1, c->hq, nbq, nbk);
    if (c->op == OP_SPARSE) {
        s->dense->p.block_mask = &s->tm;
        s->dense->p.block_q = SPARSE_BLOCK;
        s->dense->p.block_k = SPARSE_BLOCK;
    }
    *state = s;
    return ATTN_OK;
}

static attn_status sparse_run(bench_env *env, const bench_case *c, void *st)
{
    sparse_state *s = st;
    if (c->op == OP_SPARSE)
        return sdpa_run(env, c, s->dense);
    attn_block_select_params p = ATTN_BLOCK_SELECT_PARAMS_INIT;
    p.method = (attn_block_select_method)c->select_method;
    p.block_q = p.block_k = SPARSE_BLOCK;
    p.causal = c->causal;
    return attn_block_select(env->ctx, &p, &s->dense->tq, &s->dense->tk, &s->tm);
}

/* Flops of the kept blocks only (the work block sparsity leaves). */
static double sparse_flops(const bench_case *c)
{
    const int64_t nbq = (c->sq + SPARSE_BLOCK - 1) / SPARSE_BLOCK;
    const int64_t nbk = (c->sk + SPARSE_BLOCK - 1) / SPARSE_BLOCK;
    double pairs = 0.0;
    for (int64_t h = 0; h < c->hq; h++)
        for (int64_t I = 0; I < nbq; I++)
            for (int64_t J = 0; J < nbk; J++)
                if (sparse_kept(c, h, I, J))
                    pairs += sparse_block_pairs(c, I, J);
    return 2.0 * (double)(c->d + c->dv) * pairs * (double)c->b;
}

/* attn_block_select's XATTN GEMM: 2 * (Sq/s) * (Sk/s) * s*D per head (half
 * with causal); MoBA's pooled scores are negligible (counted as 0). */
static double select_flops(const bench_case *c)
{
    if (c->select_method != ATTN_BLOCK_SELECT_XATTN)
        return 0.0;
    const attn_block_select_params p = ATTN_BLOCK_SELECT_PARAMS_INIT;
    const double full = 2.0 * (double)c->sq * (double)c->sk * (double)c->d / (double)p.stride;
    return full * (c->causal ? 0.5 : 1.0) * (double)c->b * (double)c->hq;
}

static double select_bytes(const bench_case *c)
{
    double es = (double)attn_dtype_size(c->dtype);
    return es * (double)c->b * ((double)c->sq * (double)c->hq + (double)c->sk * (double)c->hkv) *
           (double)c->d;
}
/* ---- end block-sparse ---- */


/* linear: attn_linear of one kind, B x T tokens x H heads, Dk = D, Dv.
 * Chunkwise rows (lin_step 0) run the whole sequence with the library's
 * default chunk (ATTN_LINEAR_DEFAULT_CHUNK) or --chunk; decode-step rows
 * (lin_step 1, T = 1) run one recurrent token with the state read from and
 * written back to the same [B,H,Dk,Dv] f32 tensor.
 * Gates are log-space values in [-0.1, 0) (a decay of 0.90-1 per token),
 * beta in [0.25, 0.75), q and k L2-normalised for the delta kinds.
 *
 * FLOPs, per sequence and head, of the chunkwise algorithm's matrix products
 * (gates, loads and masks not counted). A chunk of n tokens has P = n(n+1)/2
 * causal (query, key) pairs, and p = n(n-1)/2 strictly below the diagonal;
 * as for sdpa, only the pairs the causal mask keeps are counted (the library
 * skips the 16 x 16 blocks above the diagonal; whole C x C blocks would
 * credit about twice the intra-chunk pairs):
 *   PLAIN, DECAY, GLA:   per chunk 2*P*(Dk+Dv) + 4*n*Dk*Dv
 *     (intra-chunk Q K^T and A V; inter-chunk Q S and the state update K^T V)
 *   DELTA, GATED_DELTA, KDA: 2*P*(Dk+Dv) + 2*p*(Dk+Dv) + 6*n*Dk*Dv
 *     (also the strict K K^T Gram, K S for the WY right-hand side and the
 *      forward substitution over the strict triangle)
 * Decode step: 4*Dk*Dv (non-delta) or 6*Dk*Dv (delta) per head, and bytes =
 * the state read and written once, 8*Dk*Dv per head: the step is bound by
 * that traffic, so GB/s against the copy roof is its figure of merit (a
 * state that fits in cache can beat the DRAM copy roof). */
#define LINEAR_CHUNK ATTN_LINEAR_DEFAULT_CHUNK
_Static_assert(LINEAR_CHUNK == 32, "the linear flop rule below names C=32");

static int linear_is_delta(attn_linear_kind k)
{
    return k == ATTN_LINEAR_DELTA || k == ATTN_LINEAR_GATED_DELTA || k == ATTN_LINEAR_KDA;
}

/* The log-gate a kind takes: 0 none, 1 one per head [B,T,H], 2 per channel [B,T,H,Dk]. */
static int linear_gate_cols(attn_linear_kind k)
{
    switch (k) {
    case ATTN_LINEAR_DECAY: case ATTN_LINEAR_GATED_DELTA: return 1;
    case ATTN_LINEAR_GLA: case ATTN_LINEAR_KDA: return 2;
    default: return 0;
    }
}

static const char *linear_kind_name(attn_linear_kind k)
{
    static const char *names[] = { "plain", "decay", "gla", "delta", "gdelta", "kda" };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

enum { LIN_Q, LIN_K, LIN_V, LIN_O, LIN_G, LIN_BETA, LIN_STATE, LIN_NT };

typedef struct linear_state {
    bench_mem   m[LIN_NT];
    attn_tensor t[LIN_NT];
    attn_linear_params p;
} linear_state;

static int64_t linear_chunk(const bench_case *c)
{
    return c->lin_chunk ? c->lin_chunk : LINEAR_CHUNK;
}

/* One chunk of n tokens (see above). */
static double linear_chunk_flops(const bench_case *c, double n)
{
    const double dk = (double)c->d, dv = (double)c->dv;
    const double pairs = n * (n + 1) / 2, strict = n * (n - 1) / 2;
    if (linear_is_delta(c->lin_kind))
        return 2.0 * (pairs + strict) * (dk + dv) + 6.0 * n * dk * dv;
    return 2.0 * pairs * (dk + dv) + 4.0 * n * dk * dv;
}

static double linear_flops(const bench_case *c)
{
    const double dk = (double)c->d, dv = (double)c->dv;
    const int64_t ch = linear_chunk(c);
    double per_head;
    if (c->lin_step)
        per_head = (linear_is_delta(c->lin_kind) ? 6.0 : 4.0) * dk * dv * (double)c->sq;
    else
        per_head = (double)(c->sq / ch) * linear_chunk_flops(c, (double)ch) +
                   linear_chunk_flops(c, (double)(c->sq % ch));
    return per_head * (double)c->b * (double)c->hq;
}

static double linear_bytes(const bench_case *c)
{
    const double heads = (double)c->b * (double)c->hq;
    if (c->lin_step)
        return 8.0 * (double)c->d * (double)c->dv * heads;
    return (double)attn_dtype_size(c->dtype) * heads * (double)c->sq *
           (2.0 * (double)c->d + 2.0 * (double)c->dv);
}

static void linear_teardown(void *st)
{
    linear_state *s = st;
    if (!s)
        return;
    for (int i = 0; i < LIN_NT; i++)
        mem_free(&s->m[i]);
    free(s);
}

/* n f32 values uniform in [lo, hi) on the bench's device: filled and
 * rescaled on the host, then copied over. */
static attn_status mem_alloc_f32(bench_env *env, bench_mem *m, size_t n, uint64_t seed,
                                 float lo, float hi)
{
    bench_env host = *env;
    host.device = 0;
    attn_status s = mem_alloc(&host, m, ATTN_F32, n, seed);
    if (s != ATTN_OK)
        return s;
    float *x = m->host;
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * 0.5f * (x[i] + 1.0f);
    if (env->device == 0)
        return ATTN_OK;
    const size_t rounded = m->bytes ? (m->bytes + 63) & ~(size_t)63 : 64;
    s = attn_buffer_create(env->ctx, env->device, rounded, &m->buf);
    if (s == ATTN_OK)
        s = attn_buffer_write(m->buf, 0, m->host, rounded);
    free(m->host);
    m->host = NULL;
    return s;
}

static attn_status linear_setup(bench_env *env, const bench_case *c, void **state)
{
    linear_state *s = calloc(1, sizeof *s);
    if (!s)
        return ATTN_ERR_OUT_OF_MEMORY;
    const int64_t b = c->b, t = c->sq, h = c->hq, gcols = linear_gate_cols(c->lin_kind);
    const int64_t hl = c->lin_layout_heads ? c->lin_layout_heads : h;
    const int delta = linear_is_delta(c->lin_kind);
    /* lo < hi: an f32 tensor uniform in [lo, hi) */
    const struct { attn_dtype dt; int64_t cols; int want; float lo, hi; } spec[LIN_NT] = {
        [LIN_Q] = { c->dtype, c->d, 1, 0, 0 },
        [LIN_K] = { c->dtype, c->d, 1, 0, 0 },
        [LIN_V] = { c->dtype, c->dv, 1, 0, 0 },
        [LIN_O] = { c->dtype, c->dv, 1, 0, 0 },
        [LIN_G] = { ATTN_F32, gcols == 2 ? c->d : 1, gcols > 0, -0.1f, 0.0f },
        [LIN_BETA] = { ATTN_F32, 1, delta, 0.25f, 0.75f },
        [LIN_STATE] = { ATTN_F32, c->d * c->dv, c->lin_step, -0.1f, 0.1f },
    };
    attn_status st = ATTN_OK;
    for (int i = 0; i < LIN_NT && st == ATTN_OK; i++) {
        if (!spec[i].want)
            continue;
        const int64_t rows = i == LIN_STATE ? b * h : b * t * hl;
        const size_t n = (size_t)(rows * spec[i].cols);
        if (spec[i].lo < spec[i].hi)
            st = mem_alloc_f32(env, &s->m[i], n, (uint64_t)i + 1, spec[i].lo, spec[i].hi);
        else
            st = mem_alloc(env, &s->m[i], spec[i].dt, n, i == LIN_O ? 0 : (uint64_t)i + 1);
    }
    if (st != ATTN_OK) {
        linear_teardown(s);
        return st;
    }
    for (int i = 0; i < LIN_STATE; i++)
        if (spec[i].want) {
            /* rows of hl heads (their strides), the first h of them */
            s->t[i] = mem_tensor4(&s->m[i], spec[i].dt, b, t, hl, spec[i].cols);
            s->t[i].shape[2] = h;
        }
    if (gcols)
        s->t[LIN_G].ndim = gcols == 2 ? 4 : 3;
    if (delta)
        s->t[LIN_BETA].ndim = 3;
    if (c->lin_step)
        s->t[LIN_STATE] = mem_tensor4(&s->m[LIN_STATE], ATTN_F32, b, h, c->d, c->dv);
    attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
    p.kind = c->lin_kind;
    p.algo = c->lin_step ? ATTN_LINEAR_ALGO_RECURRENT : ATTN_LINEAR_ALGO_CHUNKWISE;
    p.chunk_size = (int)linear_chunk(c);
    p.l2norm_qk = delta;
    s->p = p;
    *state = s;
    return ATTN_OK;
}

/* ---- neighborhood attention (issue #6 part 1) ---------------------------- */
/* attn_neighborhood on a grid of nb_ndim axes (sq = sk = grid tokens), no
 * dilation, not causal. FLOPs are the needed ones: 2*(D+Dv) per (query, key
 * in its window) pair, i.e. 4*tokens*prod(kernel)*D per head when Dv = D.
 * OP_NB_DENSE runs the same problem through attn_sdpa with the U8 mask the
 * windows define ([1,1,N,N]) and is counted with the same FLOPs, so the
 * ratio of the two times is the speedup. */
typedef struct nb_state {
    bench_mem   q, k, v, o, mask;
    attn_tensor tq, tk, tv, to, tmask;
    attn_neighborhood_params p;
    attn_sdpa_params sp;
} nb_state;

static void nb_teardown(void *st)
{
    nb_state *s = st;
    if (!s)
        return;
    mem_free(&s->q);
    mem_free(&s->k);
    mem_free(&s->v);
    mem_free(&s->o);
    mem_free(&s->mask);
    free(s);
}

/* A contiguous [B, grid..., H, dim] tensor over m. */
static attn_tensor nb_tensor(const bench_mem *m, const bench_case *c, int64_t h, int64_t dim)
{
    attn_tensor x = mem_tensor4(m, c->dtype, c->b, 1, h, dim);
    x.ndim = c->nb_ndim + 3;
    for (int a = 0; a < c->nb_ndim; a++)
        x.shape[1 + a] = c->nb_grid[a];
    x.shape[c->nb_ndim + 1] = h;
    x.shape[c->nb_ndim + 2] = dim;
    return x;
}

/* Window start along one axis (NATTEN: centred, shifted inward at borders). */
static int64_t nb_start(int64_t i, int64_t len, int64_t k)
{
    int64_t s0 = i - (k - 1) / 2;
    return s0 < 0 ? 0 : s0 > len - k ? len - k : s0;
}

static void nb_fill_mask(const bench_case *c, uint8_t *m)
{
    const int64_t n = c->sq;
    for (int64_t qi = 0; qi < n; qi++)
        for (int64_t kj = 0; kj < n; kj++) {
            int vis = 1;
            int64_t qr = qi, kr = kj;
            for (int a = c->nb_ndim - 1; a >= 0; a--) {
                const int64_t len = c->nb_grid[a], i = qr % len, j = kr % len;
                const int64_t st = nb_start(i, len, c->nb_kernel[a]);
                vis &= j >= st && j < st + c->nb_kernel[a];
                qr /= len;
                kr /= len;
            }
            m[qi * n + kj] = (uint8_t)vis;
        }
}

/* The window mask into m: in place on the host, else through a host copy
 * written to the device buffer. */
static attn_status nb_mask_write(const bench_case *c, bench_mem *m, size_t ntok)
{
    if (m->host) {
        nb_fill_mask(c, m->host);
        return ATTN_OK;
    }
    uint8_t *h = malloc(ntok * ntok);
    if (!h)
        return ATTN_ERR_OUT_OF_MEMORY;
    nb_fill_mask(c, h);
    attn_status st = attn_buffer_write(m->buf, 0, h, ntok * ntok);
    free(h);
    return st;
}

static attn_status nb_setup(bench_env *env, const bench_case *c, void **state)
{
    nb_state *s = calloc(1, sizeof *s);
    if (!s)
        return ATTN_ERR_OUT_OF_MEMORY;
    attn_status st;
    const size_t ntok = (size_t)c->sq;
    if ((st = mem_alloc(env, &s->q, c->dtype, (size_t)c->b * ntok * (size_t)(c->hq * c->d), 1)) ||
        (st = mem_alloc(env, &s->k, c->dtype, (size_t)c->b * ntok * (size_t)(c->hkv * c->d), 2)) ||
        (st = mem_alloc(env, &s->v, c->dtype, (size_t)c->b * ntok * (size_t)(c->hkv * c->dv), 3)) ||
        (st = mem_alloc(env, &s->o, c->dtype, (size_t)c->b * ntok * (size_t)(c->hq * c->dv), 0))) {
        nb_teardown(s);
        return st;
    }
    s->tq = nb_tensor(&s->q, c, c->hq, c->d);
    s->tk = nb_tensor(&s->k, c, c->hkv, c->d);
    s->tv = nb_tensor(&s->v, c, c->hkv, c->dv);
    s->to = nb_tensor(&s->o, c, c->hq, c->dv);
    attn_neighborhood_params p = ATTN_NEIGHBORHOOD_PARAMS_INIT;
    p.ndim = c->nb_ndim;
    for (int a = 0; a < c->nb_ndim; a++)
        p.kernel_size[a] = c->nb_kernel[a];
    s->p = p;
    if (c->op == OP_NB_DENSE) {
        if (ntok > 65536) {
            nb_teardown(s);
            return ATTN_ERR_UNSUPPORTED;
        }
        if ((st = mem_alloc(env, &s->mask, ATTN_U8, ntok * ntok, 0)) ||
            (st = nb_mask_write(c, &s->mask, ntok))) {
            nb_teardown(s);
            return st;
        }
        s->tq = mem_tensor4(&s->q, c->dtype, c->b, c->sq, c->hq, c->d);
        s->tk = mem_tensor4(&s->k, c->dtype, c->b, c->sk, c->hkv, c->d);
        s->tv = mem_tensor4(&s->v, c->dtype, c->b, c->sk, c->hkv, c->dv);
        s->to = mem_tensor4(&s->o, c->dtype, c->b, c->sq, c->hq, c->dv);
        s->tmask = mem_tensor4(&s->mask, ATTN_U8, 1, 1, c->sq, c->sk);
        attn_sdpa_params sp = ATTN_SDPA_PARAMS_INIT;
        sp.mask = &s->tmask;
        s->sp = sp;
    }
    *state = s;
    return ATTN_OK;
}

static attn_status linear_run(bench_env *env, const bench_case *c, void *st)
{
    linear_state *s = st;
    const attn_tensor *opt[LIN_NT];
    for (int i = 0; i < LIN_NT; i++)
        opt[i] = s->t[i].ndim ? &s->t[i] : NULL;
    (void)c;
    return attn_linear(env->ctx, &s->p, opt[LIN_Q], opt[LIN_K], opt[LIN_V], opt[LIN_G],
                       opt[LIN_BETA], opt[LIN_STATE], opt[LIN_O], opt[LIN_STATE]);
}

static attn_status nb_run(bench_env *env, const bench_case *c, void *st)
{
    nb_state *s = st;
    if (c->op == OP_NB_DENSE)
        return attn_sdpa(env->ctx, &s->sp, &s->tq, &s->tk, &s->tv, &s->to, NULL);
    return attn_neighborhood(env->ctx, &s->p, &s->tq, &s->tk, &s->tv, &s->to, NULL);
}

static double nb_flops(const bench_case *c)
{
    double window = 1.0;
    for (int a = 0; a < c->nb_ndim; a++)
        window *= (double)c->nb_kernel[a];
    return 2.0 * (double)(c->d + c->dv) * (double)c->sq * window * (double)c->b * (double)c->hq;
}

static double nb_bytes(const bench_case *c)
{
    return sdpa_bytes(c);
}
/* ---- end neighborhood attention ----------------------------------------- */

static const op_runner op_table[] = {
    { OP_SDPA, "sdpa", sdpa_setup, sdpa_run, sdpa_teardown, sdpa_flops, sdpa_bytes,
      "sdpa flops = 2*(D+Dv) per visible (query,key) pair x B x Hq; pairs counted exactly "
      "from causal/window/sink (dense = 4*B*Hq*Sq*Sk*D when Dv = D)" },
    { OP_DECODE, "dec", decode_setup, decode_run, decode_teardown, sdpa_flops, decode_bytes,
      "decode flops as sdpa; GB/s = bytes of KV cache read (K+V, all heads, Q8/Q4 scales) per "
      "second, bw_fraction = GB/s / copy roof" },
    { OP_SPARSE, "bsp", sparse_setup, sparse_run, sparse_teardown, sparse_flops, sdpa_bytes,
      "block-sparse sdpa flops = sdpa flops of the kept 128x128 blocks only" },
    { OP_SELECT, "bsel", sparse_setup, sparse_run, sparse_teardown, select_flops, select_bytes,
      "attn_block_select flops = the XATTN antidiagonal GEMM (2*Sq*Sk*D/stride per head, half "
      "when causal); MoBA counted as 0" },
    { OP_LINEAR, "lin", linear_setup, linear_run, linear_teardown, linear_flops, linear_bytes,
      "linear flops per head and chunk of n tokens (C=32 or --chunk), causal pairs P=n(n+1)/2, "
      "strict p=n(n-1)/2: 2*P*(Dk+Dv) + 4*n*Dk*Dv (plain/decay/gla), 2*(P+p)*(Dk+Dv) + "
      "6*n*Dk*Dv (delta kinds); decode step 4*Dk*Dv (6 delta), "
      "GB/s = state read + written once (8*Dk*Dv bytes per head) vs the copy roof" },
    /* neighborhood attention (issue #6 part 1) */
    { OP_NEIGHBORHOOD, "nbhd", nb_setup, nb_run, nb_teardown, nb_flops, nb_bytes,
      "neighborhood flops = 2*(D+Dv) per (query, key in its window) pair x B x Hq: the FLOPs "
      "needed (4*tokens*prod(kernel)*D per head when Dv = D)" },
    { OP_NB_DENSE, "nbmsk", nb_setup, nb_run, nb_teardown, nb_flops, nb_bytes,
      "the neighborhood problem as dense attn_sdpa with the U8 window mask, counted with the "
      "neighborhood's needed flops (time ratio = speedup)" },
};

static const op_runner *runner_for(bench_op op)
{
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (op_table[i].op == op)
            return &op_table[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Shape sets                                                               */
/* ------------------------------------------------------------------------ */

/* A growable list of cases. */
typedef struct case_list {
    bench_case *v;
    int         n, cap;
} case_list;

static void list_push(case_list *l, const bench_case *c)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        bench_case *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            fprintf(stderr, "attn-bench: out of memory\n");
            exit(EXIT_LIBRARY);
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *c;
}

static bench_case sdpa_case(const char *set, int64_t hq, int64_t hkv, int64_t s, int64_t d,
                            int causal, attn_dtype t)
{
    bench_case c = { .op = OP_SDPA, .set = set, .b = 1, .hq = hq, .hkv = hkv, .sq = s, .sk = s,
                     .d = d, .dv = d, .causal = causal, .window_left = -1, .window_right = -1,
                     .dtype = t };
    return c;
}

static void push_sdpa(case_list *l, const char *set, int64_t hq, int64_t hkv, int64_t s, int64_t d,
                      int causal, attn_dtype t)
{
    bench_case c = sdpa_case(set, hq, hkv, s, d, causal, t);
    list_push(l, &c);
}

static void set_smoke(case_list *l)
{
    const attn_dtype dts[] = { ATTN_F32, ATTN_BF16, ATTN_F16 };
    for (int t = 0; t < 3; t++)
        for (int causal = 0; causal <= 1; causal++)
            push_sdpa(l, "smoke", 4, 2, 128, 64, causal, dts[t]);
    bench_case c = sdpa_case("smoke", 8, 8, 256, 128, 1, ATTN_BF16);
    c.window_left = 63;
    c.window_right = 0;
    list_push(l, &c);
    c = sdpa_case("smoke", 4, 4, 64, 64, 1, ATTN_F32);
    c.sk = 192;                                  /* Sq != Sk: bottom-right causal */
    list_push(l, &c);
}

/* The default prefill set: trimmed so that it finishes in a few minutes on a
 * 2-core machine with SIMD kernels. */
static void set_prefill(case_list *l)
{
    const int64_t ss[] = { 512, 1024, 2048, 4096 };
    const attn_dtype dts[] = { ATTN_F32, ATTN_BF16 };
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 4; i++)
            for (int causal = 0; causal <= 1; causal++)
                push_sdpa(l, "prefill", 16, 16, ss[i], 128, causal, dts[t]);
    for (int causal = 0; causal <= 1; causal++) {
        push_sdpa(l, "prefill", 16, 16, 2048, 128, causal, ATTN_F16);
        push_sdpa(l, "prefill", 32, 8, 2048, 128, causal, ATTN_F32);
        push_sdpa(l, "prefill", 32, 8, 2048, 128, causal, ATTN_BF16);
    }
    push_sdpa(l, "prefill", 16, 16, 2048, 64, 1, ATTN_BF16);
    push_sdpa(l, "prefill", 16, 16, 2048, 256, 1, ATTN_BF16);
    bench_case c = sdpa_case("prefill", 16, 16, 4096, 128, 1, ATTN_BF16);
    c.window_left = 1023;                        /* sliding window 1024 */
    c.window_right = 0;
    list_push(l, &c);
}

/* Everything: S 512..16384 x D 64/128/256 x causal/not x MHA 16/16, GQA 32/8
 * x f32/bf16/f16. Long: hours on a 2-core machine. */
static void set_full(case_list *l)
{
    const int64_t ss[] = { 512, 1024, 2048, 4096, 8192, 16384 };
    const int64_t ds[] = { 64, 128, 256 };
    const int64_t heads[][2] = { { 16, 16 }, { 32, 8 } };
    const attn_dtype dts[] = { ATTN_F32, ATTN_BF16, ATTN_F16 };
    for (int t = 0; t < 3; t++)
        for (int h = 0; h < 2; h++)
            for (int di = 0; di < 3; di++)
                for (int i = 0; i < 6; i++)
                    for (int causal = 0; causal <= 1; causal++)
                        push_sdpa(l, "full", heads[h][0], heads[h][1],
                                                              ss[i], ds[di], causal, dts[t]);
}

/* The headline numbers: f32 and bf16, S = 4096, D = 128, 16 heads, causal and not. */
static void set_headline(case_list *l)
{
    const attn_dtype dts[] = { ATTN_F32, ATTN_BF16 };
    for (int t = 0; t < 2; t++)
        for (int causal = 0; causal <= 1; causal++)
            push_sdpa(l, "headline", 16, 16, 4096, 128, causal, dts[t]);
}

typedef struct shape_set {
    const char *name;
    const char *desc;
    void (*build)(case_list *l);
} shape_set;

/* decode: L = 1K..128K, Hq 32 / Hkv 8, D 128, one query token, batch 1 and
 * 16, every storage type (caches past 6 GiB are skipped). */
static void set_decode(case_list *l)
{
    const int64_t ls[] = { 1024, 4096, 16384, 32768, 65536, 131072 }, bs[] = { 1, 16 };
    const attn_dtype dts[] = { ATTN_F16, ATTN_Q8, ATTN_Q4, ATTN_BF16, ATTN_F32 };
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 6; i++)
            for (int t = 0; t < 5; t++) {
                bench_case c = { .op = OP_DECODE, .set = "decode", .b = bs[b], .hq = 32, .hkv = 8,
                                 .sq = 1, .sk = ls[i], .d = 128, .dv = 128, .causal = 1,
                                 .window_left = -1, .window_right = -1, .dtype = dts[t] };
                list_push(l, &c);
            }
}

/* ---- block-sparse ---- */
/* Dense, block-sparse at 5/10/25/50% kept 128x128 blocks, and both block
 * selections, for each S: the summary after the table gives each time as a
 * fraction of the dense time of the same shape. */
static void push_sparse_family(case_list *l, const char *set, int64_t h, int64_t s, int causal)
{
    static const int dens[] = { 5, 10, 25, 50 };
    bench_case c = sdpa_case(set, h, h, s, 128, causal, ATTN_BF16);
    list_push(l, &c);
    c.op = OP_SPARSE;
    for (int i = 0; i < 4; i++) {
        c.density_pct = dens[i];
        list_push(l, &c);
    }
    c.op = OP_SELECT;
    c.density_pct = 0;
    c.select_method = ATTN_BLOCK_SELECT_XATTN;
    list_push(l, &c);
    c.select_method = ATTN_BLOCK_SELECT_MOBA;
    list_push(l, &c);
}

/* S 4096..16384, MHA 16 heads, D 128, bf16, causal and not (long on 2 cores). */
static void set_sparse(case_list *l)
{
    const int64_t ss[] = { 4096, 8192, 16384 };
    for (int i = 0; i < 3; i++)
        for (int causal = 0; causal <= 1; causal++)
            push_sparse_family(l, "sparse", 16, ss[i], causal);
}

/* The same at 2 heads, S 4096 and 16384, causal: minutes on 2 cores. */
static void set_sparse_small(case_list *l)
{
    push_sparse_family(l, "sparse-s", 2, 4096, 1);
    push_sparse_family(l, "sparse-s", 2, 16384, 0);
    push_sparse_family(l, "sparse-s", 2, 16384, 1);
}
/* ---- end block-sparse ---- */

static void push_linear(case_list *l, int64_t t, attn_linear_kind kind, attn_dtype dt, int step)
{
    bench_case c = { .op = OP_LINEAR, .set = "linear", .b = 1, .hq = 16, .hkv = 16, .sq = t, .sk = t,
                     .d = 128, .dv = 128, .causal = 1, .window_left = -1, .window_right = -1,
                     .dtype = dt, .lin_kind = kind, .lin_step = step };
    list_push(l, &c);
}

/* linear: every kind, chunkwise, T = 1K..32K, B 1, H 16, Dk = Dv = 128, f32
 * (and bf16 for GLA); each T starts with causal f32 sdpa at the same shape,
 * which the linear rows print beside them. T = 2K runs first: it is the
 * per-token reference of the other lengths. Then one recurrent decode step
 * (T = 1, state in/out) per kind. */
static void set_linear(case_list *l)
{
    const int64_t ts[] = { 2048, 1024, 4096, 8192, 16384, 32768 };
    for (int i = 0; i < 6; i++) {
        push_sdpa(l, "linear", 16, 16, ts[i], 128, 1, ATTN_F32);
        for (int k = ATTN_LINEAR_PLAIN; k <= ATTN_LINEAR_KDA; k++)
            push_linear(l, ts[i], (attn_linear_kind)k, ATTN_F32, 0);
        push_linear(l, ts[i], ATTN_LINEAR_GLA, ATTN_BF16, 0);
    }
    for (int k = ATTN_LINEAR_PLAIN; k <= ATTN_LINEAR_KDA; k++)
        push_linear(l, 1, (attn_linear_kind)k, ATTN_F32, 1);
}

/* ---- neighborhood attention (issue #6 part 1) ---------------------------- */
static void push_nb(case_list *l, bench_op op, int nd, const int64_t *grid, const int64_t *kern,
                    int64_t h, int64_t d, attn_dtype t)
{
    bench_case c = { .op = op, .set = "neighborhood", .b = 1, .hq = h, .hkv = h, .sq = 1, .sk = 1,
                     .d = d, .dv = d, .window_left = -1, .window_right = -1, .dtype = t,
                     .nb_ndim = nd, .nb_grid = { 1, 1, 1 }, .nb_kernel = { 1, 1, 1 } };
    for (int a = 0; a < nd; a++) {
        c.nb_grid[a] = grid[a];
        c.nb_kernel[a] = kern[a];
        c.sq *= grid[a];
    }
    c.sk = c.sq;
    list_push(l, &c);
}

/* 2-D: 56x56 and 128x128 grids, kernels 7 and 13, D 32/64, H 4..16; 3-D:
 * 16x32x32 with kernel 3x7x7; and the 128x128 kernel 13 D 64 problem as
 * dense masked attn_sdpa (H 4) for the speedup. f32. */
static void set_neighborhood(case_list *l)
{
    static const int64_t g56[2] = { 56, 56 }, g128[2] = { 128, 128 }, g3[3] = { 16, 32, 32 };
    static const int64_t k7[2] = { 7, 7 }, k13[2] = { 13, 13 }, k377[3] = { 3, 7, 7 };
    push_nb(l, OP_NEIGHBORHOOD, 2, g56, k7, 4, 32, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 2, g56, k7, 8, 64, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 2, g56, k13, 8, 64, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 2, g128, k7, 4, 32, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 2, g128, k7, 16, 64, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 2, g128, k13, 4, 32, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 2, g128, k13, 4, 64, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 2, g128, k13, 16, 64, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 2, g128, k13, 8, 64, ATTN_BF16);
    push_nb(l, OP_NEIGHBORHOOD, 3, g3, k377, 4, 32, ATTN_F32);
    push_nb(l, OP_NEIGHBORHOOD, 3, g3, k377, 8, 64, ATTN_F32);
    push_nb(l, OP_NB_DENSE, 2, g128, k13, 4, 64, ATTN_F32);
}
/* ---- end neighborhood attention ----------------------------------------- */

static const shape_set set_table[] = {
    { "smoke",   "tiny sdpa shapes, every dtype and mask kind; seconds", set_smoke },
    { "prefill", "sdpa prefill, trimmed: S 512-4096, D 128 (+64/256), MHA 16/16 and GQA 32/8, "
                 "f32/bf16 (+f16), causal and not, one sliding window (default set)", set_prefill },
    { "headline", "sdpa f32/bf16, S 4096, D 128, MHA 16/16, causal and not: the summary numbers",
                 set_headline },
    { "decode",  "attn_decode over a paged KV cache: L 1K-128K, Hq/Hkv 32/8, D 128, Sq 1, batch "
                 "1 and 16, f16/q8/q4/bf16/f32 storage; GB/s of cache read vs the copy roof", set_decode },
    { "linear",  "attn_linear, every kind, chunkwise: T 1K-32K, H 16, Dk=Dv 128, f32 (+bf16 GLA), "
                 "tokens/s, per-token time vs T=2K, causal sdpa f32 beside; one recurrent decode "
                 "step per kind (GB/s of state read+write vs the copy roof)", set_linear },
    { "full",    "sdpa prefill, everything: S 512-16384 x D 64/128/256 x MHA 16/16, GQA 32/8 "
                 "x f32/bf16/f16 x causal/not (hours on 2 cores)", set_full },
    { "sparse",  "block-sparse sdpa at 5/10/25/50% kept 128x128 blocks and attn_block_select "
                 "(xattn, moba) vs dense: S 4096-16384, MHA 16, D 128, bf16, causal and not; "
                 "fractions of dense time after the table", set_sparse },
    { "sparse-s", "the sparse set at 2 heads, S 4096 (causal) and 16384 (both): for 2-core "
                  "machines", set_sparse_small },
    { "neighborhood", "attn_neighborhood 2-D 56x56/128x128, kernel 7/13, D 32/64, H 4-16; 3-D "
                 "16x32x32 kernel 3x7x7; 128x128 k13 D64 H4 also as dense masked sdpa "
                 "(speedup)", set_neighborhood },
};

static const shape_set *set_for(const char *name)
{
    for (size_t i = 0; i < sizeof set_table / sizeof set_table[0]; i++)
        if (strcmp(set_table[i].name, name) == 0)
            return &set_table[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Timing and reporting                                                     */
/* ------------------------------------------------------------------------ */

typedef struct bench_opts {
    const char *sets;          /* comma list */
    int         have_shape;    /* a shape was given on the command line */
    bench_case  shape;
    int         threads;
    int         isa;           /* -1 = ATTN_ISA / best */
    int         device;        /* -1 = ATTN_DEVICE / cpu */
    int         reps;          /* at most this many timed repeats */
    int         warmup;
    double      min_time;      /* repeat until this many seconds... */
    const char *json;
    int         list, no_roof, roofs_only;
    int         solo;          /* --threads one-thread calls at once (time_case_solo) */
    int         hugepages;     /* --hugepages */
    double      roof_seconds;
    size_t      copy_mib;
} bench_opts;

typedef struct bench_result {
    double median_ms, min_ms, flops, bytes, gflops, gbs;
    double cpu_util;   /* process CPU time / (wall time x threads) over the timed repeats */
    double clock_ghz;  /* --solo: the threads' mean core clock after their timed calls */
    int    reps;
} bench_result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Warm-up, then timed repeats until `min_time` seconds or `reps` repeats. */
static attn_status time_case(bench_env *env, const bench_opts *o, const op_runner *r,
                             const bench_case *c, void *st, bench_result *res)
{
    attn_status s;
    for (int i = 0; i < o->warmup; i++)
        if ((s = r->run(env, c, st)) != ATTN_OK)
            return s;
    int cap = o->reps > 0 ? o->reps : 1;
    double *t = malloc((size_t)cap * sizeof *t);
    if (!t)
        return ATTN_ERR_OUT_OF_MEMORY;
    double total = 0.0, cpu0 = roof_process_cpu();
    int n = 0;
    while (n < cap) {
        double t0 = roof_now();
        s = r->run(env, c, st);
        double dt = roof_now() - t0;
        if (s != ATTN_OK) {
            free(t);
            return s;
        }
        t[n++] = dt;
        total += dt;
        if (total >= o->min_time)
            break;
    }
    res->cpu_util = (roof_process_cpu() - cpu0) / (total * (double)env->threads);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    res->reps = n;
    res->median_ms = med * 1e3;
    res->min_ms = t[0] * 1e3;
    res->flops = r->flops(c);
    res->bytes = r->bytes(c);
    res->gflops = res->flops / med * 1e-9;
    res->gbs = res->bytes / med * 1e-9;
    free(t);
    return ATTN_OK;
}

#ifdef _OPENMP
/* --solo: env->threads one-thread calls at once, each thread with a context
 * of its own (num_threads 1) and its own tensors, so nothing is shared but
 * the machine (L3, memory, power). Beside a normal run of the same thread
 * count it tells whether a drop of the per-thread rate comes from the
 * library's threading or from the machine. Every thread keeps calling until
 * all have timed --min-time seconds, so each timed call runs with all the
 * others busy; only its first calls (up to --min-time, at most --reps) are
 * timed. GFLOP/s is the sum of the threads' rates (each from its median). */
static attn_status time_case_solo(const bench_env *env, const bench_opts *o, const op_runner *r,
                                  const bench_case *c, bench_result *res)
{
    const int n = env->threads;
    double *med = calloc((size_t)n, sizeof *med), *tmin = calloc((size_t)n, sizeof *tmin);
    double *ghz = calloc((size_t)n, sizeof *ghz);
    int *reps = calloc((size_t)n, sizeof *reps);
    attn_status status = med && tmin && ghz && reps ? ATTN_OK : ATTN_ERR_OUT_OF_MEMORY;
    int done = 0, failed = status != ATTN_OK;   /* threads done timing; a call failed */
    int team = n;                               /* the threads OpenMP gave */
    double wall = 0.0, cpu0 = 0.0;
#pragma omp parallel num_threads(n)
    {
        const int me = omp_get_thread_num();
        bench_env mine = *env;
        attn_options opts = ATTN_OPTIONS_INIT;
        opts.num_threads = 1;
        opts.max_isa = o->isa;
        opts.device = 0;
        mine.threads = 1;
        mine.ctx = NULL;
        void *st = NULL;
        const int cap = o->reps > 0 ? o->reps : 1;
        double *t = malloc((size_t)cap * sizeof *t);
        attn_status s = t ? attn_context_create(&opts, &mine.ctx) : ATTN_ERR_OUT_OF_MEMORY;
        if (s == ATTN_OK && (s = r->setup(&mine, c, &st)) != ATTN_OK)
            st = NULL;
        for (int i = 0; s == ATTN_OK && i < o->warmup; i++)
            s = r->run(&mine, c, st);
        if (s != ATTN_OK) {
#pragma omp critical
            status = s;
#pragma omp atomic write
            failed = 1;
        }
#pragma omp master
        team = omp_get_num_threads();
#pragma omp barrier
        double w0 = roof_now();
#pragma omp master
        cpu0 = roof_process_cpu();
        int k = 0, counted = 0;
        double total = 0.0;
        for (;;) {
            int all, stop;
#pragma omp atomic read
            all = done;
#pragma omp atomic read
            stop = failed;
            if (all == team || stop)
                break;
            const double t0 = roof_now();
            if ((s = r->run(&mine, c, st)) != ATTN_OK) {
#pragma omp critical
                status = s;
#pragma omp atomic write
                failed = 1;
                break;
            }
            const double dt = roof_now() - t0;
            if (counted)
                continue;
            t[k++] = dt;
            total += dt;
            ghz[me] += roof_clock_ghz();
            if (total >= o->min_time || k == cap) {
                counted = 1;
#pragma omp atomic update
                done++;
            }
        }
        if (k > 0 && counted) {
            qsort(t, (size_t)k, sizeof *t, cmp_double);
            med[me] = k % 2 ? t[k / 2] : 0.5 * (t[k / 2 - 1] + t[k / 2]);
            tmin[me] = t[0];
            reps[me] = k;
            ghz[me] /= k;
        }
#pragma omp barrier
#pragma omp master
        {
            wall = roof_now() - w0;
            res->cpu_util = (roof_process_cpu() - cpu0) / (wall * (double)team);
        }
        if (st)
            r->teardown(st);
        attn_context_destroy(mine.ctx);
        free(t);
    }
    if (!failed) {
        double rate = 0.0, ms = 0.0, least = HUGE_VAL, clock = 0.0;
        int fewest = INT_MAX;
        for (int i = 0; i < team; i++) {
            rate += r->flops(c) / med[i];
            ms += med[i] / team;
            least = tmin[i] < least ? tmin[i] : least;
            fewest = reps[i] < fewest ? reps[i] : fewest;
            clock += ghz[i] / team;
        }
        res->clock_ghz = clock;
        res->reps = fewest;
        res->median_ms = ms * 1e3;
        res->min_ms = least * 1e3;
        res->flops = r->flops(c) * team;
        res->bytes = r->bytes(c) * team;
        res->gflops = rate * 1e-9;
        res->gbs = res->bytes / ms * 1e-9;
    }
    free(med);
    free(tmin);
    free(ghz);
    free(reps);
    return status;
}
#endif

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double x)
{
    if (isfinite(x) && x >= 0)
        fprintf(f, "%.6g", x);
    else
        fputs("null", f);
}

typedef struct roof_values {
    double fma_all, fma_one;         /* GFLOP/s per thread CPU-second; < 0 = unknown */
    double fma_all_wall;             /* the same over wall-clock time */
    double copy, copy_cpu;           /* GB/s wall-clock (the roof), per CPU-second */
} roof_values;

/* The FMA roof fraction per CPU-second: GFLOP/s over the CPU the process
 * got (cpu_util), against the per-CPU-second roof. %FMA divides a wall-clock
 * rate by that roof, so time the cores spend on other processes -- or, in a
 * VM, the hypervisor's other guests (steal time, which the guest's CPU
 * clocks leave out) -- lowers %FMA but not this. -1 without a roof. */
static double cpu_fraction(const bench_result *res, const roof_values *rv)
{
    if (rv->fma_all <= 0 || res->cpu_util <= 0)
        return -1;
    return res->gflops / res->cpu_util / rv->fma_all;
}

static const char *device_type_name(attn_device_type t)
{
    switch (t) {
    case ATTN_DEVICE_CPU:    return "cpu";
    case ATTN_DEVICE_OPENCL: return "opencl";
    case ATTN_DEVICE_VULKAN: return "vulkan";
    default:                 return "?";
    }
}

static const char *env_isa_name(const bench_env *env)
{
    return env->info.type == ATTN_DEVICE_CPU ? attn_isa_name(env->info.isa) : "-";
}

/* The medians timed so far in this run, so that a row can be put beside
 * earlier ones (linear: per-token time vs T = 2K, causal sdpa at the same T). */
typedef struct run_log {
    bench_case *c;
    double     *ms;
    int         n, cap;
} run_log;

static void run_log_add(run_log *l, const bench_case *c, double ms)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        bench_case *v = realloc(l->c, (size_t)cap * sizeof *v);
        double *m = v ? realloc(l->ms, (size_t)cap * sizeof *m) : NULL;
        if (v)
            l->c = v;
        if (!m)
            return;                               /* the log is an extra: drop the entry */
        l->ms = m;
        l->cap = cap;
    }
    l->c[l->n] = *c;
    l->ms[l->n++] = ms;
}

/* Median ms of the shape `want` (any set), or -1. */
static double run_log_find(const run_log *l, const bench_case *want)
{
    for (int i = 0; i < l->n; i++) {
        const bench_case *c = &l->c[i];
        if (c->op == want->op && c->b == want->b && c->hq == want->hq && c->hkv == want->hkv &&
            c->sq == want->sq && c->sk == want->sk && c->d == want->d && c->dv == want->dv &&
            c->causal == want->causal && c->window_left == want->window_left &&
            c->window_right == want->window_right && c->sink_tokens == want->sink_tokens &&
            c->dtype == want->dtype && c->lin_kind == want->lin_kind &&
            c->lin_step == want->lin_step && c->lin_chunk == want->lin_chunk &&
            c->lin_layout_heads == want->lin_layout_heads && c->bhsd == want->bhsd &&
            c->nb_ndim == want->nb_ndim &&
            !memcmp(c->nb_grid, want->nb_grid, sizeof c->nb_grid) &&
            !memcmp(c->nb_kernel, want->nb_kernel, sizeof c->nb_kernel))
            return l->ms[i];
    }
    return -1.0;
}

/* What a linear row prints beside its time. */
typedef struct linear_extras {
    double tokens_per_s;
    double per_token_vs_2k;   /* per-token time / that of T = 2K (same kind, dtype); -1: none */
    double sdpa_ms;           /* causal f32 sdpa, same B, H, T, D; -1: not timed */
} linear_extras;

static linear_extras linear_extras_of(const bench_case *c, const bench_result *res,
                                      const run_log *log)
{
    linear_extras x = { (double)c->b * (double)c->sq / (res->median_ms * 1e-3), -1.0, -1.0 };
    if (c->lin_step)
        return x;
    bench_case ref = *c;
    ref.sq = ref.sk = 2048;
    const double ms2k = run_log_find(log, &ref);
    if (ms2k > 0)
        x.per_token_vs_2k = (res->median_ms / (double)c->sq) / (ms2k / 2048.0);
    bench_case sd = *c;
    sd.op = OP_SDPA;
    sd.dtype = ATTN_F32;
    sd.lin_kind = ATTN_LINEAR_PLAIN;
    x.sdpa_ms = run_log_find(log, &sd);
    return x;
}

static void json_case(FILE *f, const bench_env *env, const bench_case *c, const op_runner *r,
                      const bench_result *res, const roof_values *rv, const run_log *log,
                      const char *status)
{
    fputs("{\"op\":", f);
    json_string(f, r->name);
    fputs(",\"set\":", f);
    json_string(f, c->set);
    fprintf(f, ",\"device\":%d,\"device_type\":", env->device);
    json_string(f, device_type_name(env->info.type));
    fputs(",\"device_name\":", f);
    json_string(f, env->info.name);
    fputs(",\"isa\":", f);
    json_string(f, env_isa_name(env));
    fprintf(f, ",\"threads\":%d,\"b\":%" PRId64 ",\"hq\":%" PRId64 ",\"hkv\":%" PRId64
            ",\"sq\":%" PRId64 ",\"sk\":%" PRId64 ",\"d\":%" PRId64 ",\"dv\":%" PRId64,
            env->threads, c->b, c->hq, c->hkv, c->sq, c->sk, c->d, c->dv);
    fputs(",\"dtype\":", f);
    json_string(f, dtype_name(c->dtype));
    fprintf(f, ",\"causal\":%s,\"window\":[%" PRId64 ",%" PRId64 "],\"sink_tokens\":%" PRId64,
            c->causal ? "true" : "false", c->window_left, c->window_right, c->sink_tokens);
    if (c->bhsd)
        fputs(",\"layout\":\"bhsd\"", f);
    if (c->op == OP_SPARSE)
        fprintf(f, ",\"density_pct\":%d,\"block\":%d", c->density_pct, SPARSE_BLOCK);
    if (c->op == OP_SELECT)
        fprintf(f, ",\"select_method\":\"%s\",\"block\":%d",
                c->select_method == ATTN_BLOCK_SELECT_XATTN ? "xattn" : "moba", SPARSE_BLOCK);
    if (c->nb_ndim > 0) {   /* neighborhood attention */
        fputs(",\"grid\":[", f);
        for (int a = 0; a < c->nb_ndim; a++)
            fprintf(f, "%s%" PRId64, a ? "," : "", c->nb_grid[a]);
        fputs("],\"kernel\":[", f);
        for (int a = 0; a < c->nb_ndim; a++)
            fprintf(f, "%s%" PRId64, a ? "," : "", c->nb_kernel[a]);
        fputs("]", f);
    }
    fputs(",\"status\":", f);
    json_string(f, status);
    if (res) {
        fprintf(f, ",\"reps\":%d,\"median_ms\":", res->reps);
        json_number(f, res->median_ms);
        fputs(",\"min_ms\":", f);
        json_number(f, res->min_ms);
        fputs(",\"flops\":", f);
        json_number(f, res->flops);
        fputs(",\"gflops\":", f);
        json_number(f, res->gflops);
        fputs(",\"roof_gflops\":", f);
        json_number(f, rv->fma_all);
        fputs(",\"roof_gflops_wall\":", f);
        json_number(f, rv->fma_all_wall);
        fputs(",\"roof_gflops_1thread\":", f);
        json_number(f, rv->fma_one);
        fputs(",\"roof_fraction\":", f);
        json_number(f, rv->fma_all > 0 ? res->gflops / rv->fma_all : -1);
        fputs(",\"bytes\":", f);
        json_number(f, res->bytes);
        fputs(",\"gbs\":", f);
        json_number(f, res->gbs);
        fputs(",\"bw_roof_gbs\":", f);
        json_number(f, rv->copy);
        fputs(",\"bw_roof_gbs_cpu\":", f);
        json_number(f, rv->copy_cpu);
        fputs(",\"bw_fraction\":", f);
        json_number(f, rv->copy > 0 ? res->gbs / rv->copy : -1);
        fputs(",\"cpu_util\":", f);
        json_number(f, res->cpu_util);
        fputs(",\"roof_fraction_cpu\":", f);
        json_number(f, cpu_fraction(res, rv));
        if (c->op == OP_LINEAR) {
            const linear_extras x = linear_extras_of(c, res, log);
            fputs(",\"tokens_per_s\":", f);
            json_number(f, x.tokens_per_s);
            fputs(",\"per_token_vs_2k\":", f);
            json_number(f, x.per_token_vs_2k);
            fputs(",\"sdpa_causal_ms\":", f);
            json_number(f, x.sdpa_ms);
        }
    }
    if (c->op == OP_LINEAR) {
        fputs(",\"kind\":", f);
        json_string(f, linear_kind_name(c->lin_kind));
        fprintf(f, ",\"algo\":\"%s\"", c->lin_step ? "recurrent" : "chunkwise");
        if (!c->lin_step)
            fprintf(f, ",\"chunk\":%lld", (long long)linear_chunk(c));
        if (c->lin_layout_heads)
            fprintf(f, ",\"layout_heads\":%lld", (long long)c->lin_layout_heads);
    }
    fputs(",\"flop_rule\":", f);
    json_string(f, r->flop_rule);
    fputs("}\n", f);
    fflush(f);
}

static void format_mask(const bench_case *c, char *buf, size_t n)
{
    if (c->op == OP_LINEAR) {
        snprintf(buf, n, "%s %s", linear_kind_name(c->lin_kind), c->lin_step ? "step" : "chunk");
        return;
    }
    if (c->nb_ndim > 0) {   /* neighborhood attention: grid and kernel */
        if (c->nb_ndim == 2)
            snprintf(buf, n, "%" PRId64 "x%" PRId64 " k%" PRId64 "x%" PRId64, c->nb_grid[0],
                     c->nb_grid[1], c->nb_kernel[0], c->nb_kernel[1]);
        else if (c->nb_ndim == 3)
            snprintf(buf, n, "%" PRId64 "x%" PRId64 "x%" PRId64 " k%" PRId64 "x%" PRId64 "x%"
                     PRId64, c->nb_grid[0], c->nb_grid[1], c->nb_grid[2], c->nb_kernel[0],
                     c->nb_kernel[1], c->nb_kernel[2]);
        else
            snprintf(buf, n, "%" PRId64 " k%" PRId64, c->nb_grid[0], c->nb_kernel[0]);
        return;
    }
    int k = snprintf(buf, n, "%s", c->causal ? "causal" : "full");
    if (c->op == OP_SPARSE && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " %d%%", c->density_pct);
    if (c->op == OP_SELECT && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " %s",
                      c->select_method == ATTN_BLOCK_SELECT_XATTN ? "xattn" : "moba");
    if ((c->window_left >= 0 || c->window_right >= 0) && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " w%" PRId64 ",%" PRId64, c->window_left, c->window_right);
    if (c->sink_tokens > 0 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " sink%" PRId64, c->sink_tokens);
    if (c->bhsd && k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " bhsd");
}

static void print_header(void)
{
    tprintf("%-8s %-5s %-4s %4s %-7s %6s %6s %-7s %-14s %10s %5s %9s %7s %8s %5s %8s\n", "set", "op",
           "dtyp", "B", "Hq/Hkv", "Sq", "Sk", "D/Dv", "mask", "median_ms", "reps", "GFLOP/s", "%FMA",
           "GB/s", "cpu%", "%FMA/cpu");
}

/* After a linear row's common columns: tokens/s, the per-token time vs
 * T = 2K and causal sdpa at the same T (time and linear's speed-up over it);
 * for a decode step, the state traffic as a fraction of the copy roof. */
static void print_linear_extras(const bench_case *c, const bench_result *res,
                                const roof_values *rv, const run_log *log)
{
    const linear_extras x = linear_extras_of(c, res, log);
    tprintf("  %.3g tok/s", x.tokens_per_s);
    if (c->lin_step && rv->copy > 0)
        tprintf("  state r+w %.0f%% of copy", 100.0 * res->gbs / rv->copy);
    if (x.per_token_vs_2k > 0)
        tprintf("  per-token x%.2f vs 2K", x.per_token_vs_2k);
    if (x.sdpa_ms > 0)
        tprintf("  sdpa %.1f ms (lin %.1fx faster)", x.sdpa_ms, x.sdpa_ms / res->median_ms);
}

static void print_row(const bench_case *c, const op_runner *r, const bench_result *res,
                      const roof_values *rv, const run_log *log, const char *status)
{
    char heads[32], dims[32], mask[48];
    snprintf(heads, sizeof heads, "%" PRId64 "/%" PRId64, c->hq, c->hkv);
    snprintf(dims, sizeof dims, "%" PRId64 "/%" PRId64, c->d, c->dv);
    format_mask(c, mask, sizeof mask);
    tprintf("%-8s %-5s %-4s %4" PRId64 " %-7s %6" PRId64 " %6" PRId64 " %-7s %-14s ", c->set, r->name,
           dtype_name(c->dtype), c->b, heads, c->sq, c->sk, dims, mask);
    if (!res) {
        tprintf("%s\n", status);
    } else {
        char frac[16], frac_cpu[16];
        const double per_cpu = cpu_fraction(res, rv);
        if (rv->fma_all > 0)
            snprintf(frac, sizeof frac, "%6.1f%%", 100.0 * res->gflops / rv->fma_all);
        else
            snprintf(frac, sizeof frac, "%7s", "-");
        if (per_cpu > 0)
            snprintf(frac_cpu, sizeof frac_cpu, "%7.1f%%", 100.0 * per_cpu);
        else
            snprintf(frac_cpu, sizeof frac_cpu, "%8s", "-");
        tprintf("%10.3f %5d %9.1f %7s %8.1f %4.0f%% %8s", res->median_ms, res->reps, res->gflops,
                frac, res->gbs, 100.0 * res->cpu_util, frac_cpu);
        if (c->op == OP_LINEAR)
            print_linear_extras(c, res, rv, log);
        tprintf("\n");
    }
    fflush(tab);
}

/* ---- block-sparse ---- */
/* For every block-sparse or block-selection case, its median time as a
 * fraction of the dense sdpa case of the same shape in this run. */
static void print_sparse_summary(const case_list *cases, const double *median_ms)
{
    int header = 0;
    for (int i = 0; i < cases->n; i++) {
        const bench_case *c = &cases->v[i];
        if ((c->op != OP_SPARSE && c->op != OP_SELECT) || median_ms[i] <= 0)
            continue;
        for (int j = 0; j < cases->n; j++) {
            const bench_case *d = &cases->v[j];
            if (d->op != OP_SDPA || median_ms[j] <= 0 || d->b != c->b || d->hq != c->hq ||
                d->hkv != c->hkv || d->sq != c->sq || d->sk != c->sk || d->d != c->d ||
                d->causal != c->causal || d->dtype != c->dtype || d->window_left >= 0 ||
                d->window_right >= 0)
                continue;
            if (!header++)
                tprintf("\nblock-sparse / block selection time as a fraction of dense sdpa "
                        "(same shape, this run):\n");
            char mask[48];
            format_mask(c, mask, sizeof mask);
            tprintf("  %-5s Hq %3" PRId64 " S %6" PRId64 " %-14s %9.3f ms / %9.3f ms = %6.3fx\n",
                    c->op == OP_SPARSE ? "bsp" : "bsel", c->hq, c->sq, mask, median_ms[i],
                    median_ms[j], median_ms[i] / median_ms[j]);
            break;
        }
    }
}
/* ---- end block-sparse ---- */

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs(
"usage: attn-bench [options]\n"
"\n"
"Measures the machine's roofs (FMA peak of the ISA in use, 1 thread and all\n"
"threads; memory copy bandwidth), then times a shape set or one shape and\n"
"reports median time, GFLOP/s and the fraction of the measured FMA peak.\n"
"\n"
"Shape sets:\n"
"  --set NAME[,NAME]   run these sets (default: prefill); --list shows them\n"
"  --list              print the sets and their shapes, then exit\n"
"\n"
"One shape (any of these selects a single sdpa shape instead of a set):\n"
"  --b N --hq N --hkv N --sq N --sk N --d N --dv N\n"
"                      defaults: b 1, hq 16, hkv = hq, sq 4096, sk = sq,\n"
"                      d 128, dv = d\n"
"  --causal            causal mask (bottom-right aligned when sq != sk)\n"
"  --window L,R        sliding window, -1 = unlimited on that side\n"
"  --sink-tokens N     first N keys always visible\n"
"  --dtype f32|bf16|f16\n"
"  --bhsd              q, k, v and out stored [B, H, S, D] (each head's rows\n"
"                      together, as PyTorch stores them) instead of [B, S, H, D]\n"
"  --nb GRID:KERNEL    an attn_neighborhood shape instead: GRID 1-3 axis lengths\n"
"                      (128x128, 16x32x32), KERNEL one size for every axis or one\n"
"                      per axis (13, 3x7x7); with --b, --hq, --hkv, --d, --dtype\n"
"  --linear KIND       an attn_linear shape instead (chunkwise; --sq = T, --hq =\n"
"                      H, --d = Dk, --dv): plain|decay|gla|delta|gdelta|kda;\n"
"                      KIND,step: one recurrent decode step with state in/out\n"
"  --chunk C           --linear chunk size (params.chunk_size, 1..256; default\n"
"                      the library's, ATTN_LINEAR_DEFAULT_CHUNK)\n"
"  --layout-heads N    --linear tensors hold N >= --hq heads per token row; the\n"
"                      call gets the first --hq (e.g. --hq 2 --threads 2\n"
"                      --layout-heads 16: one head per thread at the token\n"
"                      stride of 16 heads, as 16 threads run --hq 16)\n"
"\n"
"Execution:\n"
"  --threads N         attn_options.num_threads (default 0 = all cores)\n"
"  --isa NAME          cap the CPU kernel set: scalar|avx2|avx512|neon\n"
"                      (attn_options.max_isa; default: ATTN_ISA or the best)\n"
"  --device N          device index (default: ATTN_DEVICE or 0 = CPU)\n"
"  --reps R            at most R timed repeats per shape (default 50); timing\n"
"                      stops once repeats add up to --min-time seconds\n"
"  --min-time SEC      (default 0.5)\n"
"  --warmup N          untimed calls before timing (default 1)\n"
"  --solo              run --threads one-thread calls at once instead of one\n"
"                      call on --threads threads: a context and tensors per\n"
"                      thread, nothing shared but the machine; GFLOP/s summed\n"
"                      over the threads (CPU only; compare with a normal run to\n"
"                      tell the library's threading from the machine's limits)\n"
"  --hugepages         host tensors of 2 MiB or more on 2 MiB pages (Linux:\n"
"                      madvise MADV_HUGEPAGE; needs transparent huge pages set\n"
"                      to madvise or always): shows what 4 KiB pages cost\n"
"\n"
"Output:\n"
"  --json FILE|-       also write one JSON object per shape (JSON lines)\n"
"  --roofs             measure and print the roofs, then exit\n"
"  --no-roof           skip the roof measurements (no %FMA)\n"
"  --roof-time SEC     seconds per FMA measurement (default 0.3, in 5 trials)\n"
"  --copy-mib N        size of each copy buffer in MiB (default 512; >= 4x LLC)\n"
"  --help              this text\n"
"\n"
"GFLOP/s counts 2*(D+Dv) flops per visible (query, key) pair per head, the\n"
"pairs counted exactly from causal / window / sink (so causal with Sq == Sk is\n"
"about half of dense 4*B*Hq*Sq*Sk*D). bf16/f16 inputs are compared against the\n"
"f32 FMA peak: the kernels accumulate in f32. GB/s is the minimum traffic\n"
"(q, k, v read once, out written once) over the median time.\n"
"The FMA roofs are rates per thread CPU-second summed over the threads (the\n"
"hardware's rate while it runs, unaffected by other processes), wall-clock\n"
"rates beside them; the copy roof is wall-clock (DRAM is shared by the\n"
"threads). cpu% = process CPU time / (wall time x threads) over the\n"
"timed repeats: well under 100% means the cores were shared with something else\n"
"(other processes; in a VM, other guests: steal time). %FMA/cpu = %FMA / cpu%,\n"
"the fraction of the roof per CPU-second the process got, like for like with\n"
"the per-CPU-second roof (spinning threads count as busy).\n"
"Exit status: 0, or 1 on a library error, 2 on a usage error.\n", f);
}

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("attn-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(attn-bench --help for the options)\n", stderr);
    exit(EXIT_USAGE);
}

static int64_t parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        die_usage("%s: '%s' is not an integer", opt, s);
    if (v < lo || v > hi)
        die_usage("%s: %lld is out of range [%" PRId64 ", %" PRId64 "]", opt, v, lo, hi);
    return (int64_t)v;
}

static double parse_double(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        die_usage("%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
    return v;
}

static int parse_isa(const char *s)
{
    static const attn_isa all[] = { ATTN_ISA_SCALAR, ATTN_ISA_AVX2, ATTN_ISA_AVX512, ATTN_ISA_NEON };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, attn_isa_name(all[i])) == 0)
            return (int)all[i];
    die_usage("--isa: '%s' is not one of scalar, avx2, avx512, neon", s);
    return -1;
}

static attn_dtype parse_dtype(const char *s)
{
    if (!strcmp(s, "f32") || !strcmp(s, "float32") || !strcmp(s, "fp32"))
        return ATTN_F32;
    if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16"))
        return ATTN_BF16;
    if (!strcmp(s, "f16") || !strcmp(s, "fp16") || !strcmp(s, "float16") || !strcmp(s, "half"))
        return ATTN_F16;
    die_usage("--dtype: '%s' is not one of f32, bf16, f16", s);
    return ATTN_F32;
}

/* "AxB[xC]" into up to 3 axis lengths (1 to 4096 each); returns how many,
 * or 0 if malformed. */
static int parse_axes(const char *s, int64_t out[3])
{
    int n = 0;
    while (n < 3) {
        char *end;
        const long long v = strtoll(s, &end, 10);
        if (end == s || v < 1 || v > 4096)
            return 0;
        out[n++] = v;
        if (*end == 0)
            return n;
        if (*end != 'x')
            return 0;
        s = end + 1;
    }
    return 0;
}

static void parse_args(int argc, char **argv, bench_opts *o)
{
    const int64_t BIG = INT64_C(1) << 40;
    int64_t b = -1, hq = -1, hkv = -1, sq = -1, sk = -1, d = -1, dv = -1, wl = -1, wr = -1, sinks = 0;
    int nb_nd = 0;
    int64_t nb_grid[3] = { 1, 1, 1 }, nb_kernel[3] = { 1, 1, 1 };
    int causal = 0, bhsd = 0, have_dtype = 0, have_window = 0, lin_kind = -1, lin_step = 0, lin_chunk = 0;
    int64_t layout_heads = 0;
    attn_dtype dt = ATTN_F32;
    memset(o, 0, sizeof *o);
    o->threads = 0;
    o->isa = -1;
    o->device = -1;
    o->reps = 50;
    o->warmup = 1;
    o->min_time = 0.5;
    o->roof_seconds = 0.3;
    o->copy_mib = 512;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        /* --opt=value or --opt value */
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            val = eq + 1;
            a = name;
        }
#define FLAG(s) (strcmp(a, s) == 0 && !val)
#define OPT(s) (strcmp(a, s) == 0 && (val || (i + 1 < argc ? (val = argv[++i], 1) \
                                                  : (die_usage("%s needs a value", s), 0))))
        if (FLAG("--help") || FLAG("-h")) {
            usage(stdout);
            exit(0);
        } else if (FLAG("--list")) {
            o->list = 1;
        } else if (FLAG("--causal")) {
            causal = 1;
        } else if (FLAG("--bhsd")) {
            bhsd = 1;
        } else if (OPT("--nb")) {
            char grid[64];
            const char *colon = strchr(val, ':');
            const size_t n = colon ? (size_t)(colon - val) : 0;
            int64_t k[3];
            int nk = 0;
            if (colon && n < sizeof grid) {
                memcpy(grid, val, n);
                grid[n] = 0;
                nb_nd = parse_axes(grid, nb_grid);
                nk = parse_axes(colon + 1, k);
            }
            if (!nb_nd || (nk != 1 && nk != nb_nd))
                die_usage("--nb: expected GRID:KERNEL as in 128x128:13 or 16x32x32:3x7x7, got '%s'",
                          val);
            for (int a = 0; a < nb_nd; a++)
                nb_kernel[a] = k[nk == 1 ? 0 : a];
        } else if (FLAG("--solo")) {
#ifndef _OPENMP
            die_usage("--solo needs a build with OpenMP");
#endif
            o->solo = 1;
        } else if (FLAG("--hugepages")) {
            o->hugepages = 1;
        } else if (FLAG("--no-roof")) {
            o->no_roof = 1;
        } else if (FLAG("--roofs")) {
            o->roofs_only = 1;
        } else if (OPT("--set")) {
            o->sets = val;
        } else if (OPT("--b")) {
            b = parse_i64(a, val, 1, BIG);
        } else if (OPT("--hq")) {
            hq = parse_i64(a, val, 1, BIG);
        } else if (OPT("--hkv")) {
            hkv = parse_i64(a, val, 1, BIG);
        } else if (OPT("--sq")) {
            sq = parse_i64(a, val, 1, BIG);
        } else if (OPT("--sk")) {
            sk = parse_i64(a, val, 1, BIG);
        } else if (OPT("--d")) {
            d = parse_i64(a, val, 1, 1 << 16);
        } else if (OPT("--dv")) {
            dv = parse_i64(a, val, 1, 1 << 16);
        } else if (OPT("--sink-tokens")) {
            sinks = parse_i64(a, val, 0, BIG);
            have_window = 1;
        } else if (OPT("--window")) {
            const char *comma = strchr(val, ',');
            if (!comma)
                die_usage("--window: expected L,R (e.g. 1023,0; -1 = unlimited), got '%s'", val);
            char left[64];
            size_t n = (size_t)(comma - val);
            if (n >= sizeof left)
                die_usage("--window: '%s' is too long", val);
            memcpy(left, val, n);
            left[n] = 0;
            wl = parse_i64("--window (left)", left, -1, BIG);
            wr = parse_i64("--window (right)", comma + 1, -1, BIG);
            have_window = 1;
        } else if (OPT("--linear")) {
            char kind[16];
            const char *comma = strchr(val, ',');
            const size_t n = comma ? (size_t)(comma - val) : strlen(val);
            if (n >= sizeof kind || (comma && strcmp(comma, ",step")))
                die_usage("--linear: expected KIND or KIND,step, got '%s'", val);
            memcpy(kind, val, n);
            kind[n] = 0;
            for (int k = ATTN_LINEAR_PLAIN; k <= ATTN_LINEAR_KDA; k++)
                if (!strcmp(kind, linear_kind_name((attn_linear_kind)k)))
                    lin_kind = k;
            if (lin_kind < 0)
                die_usage("--linear: no kind '%s' (plain|decay|gla|delta|gdelta|kda)", kind);
            lin_step = comma != NULL;
        } else if (OPT("--chunk")) {
            lin_chunk = (int)parse_i64(a, val, 1, 256);
        } else if (OPT("--layout-heads")) {
            layout_heads = parse_i64(a, val, 1, 1 << 20);
        } else if (OPT("--dtype")) {
            dt = parse_dtype(val);
            have_dtype = 1;
        } else if (OPT("--threads")) {
            o->threads = (int)parse_i64(a, val, 0, 4096);
        } else if (OPT("--isa")) {
            o->isa = parse_isa(val);
        } else if (OPT("--device")) {
            o->device = (int)parse_i64(a, val, 0, 1024);
        } else if (OPT("--reps")) {
            o->reps = (int)parse_i64(a, val, 1, 1000000);
        } else if (OPT("--warmup")) {
            o->warmup = (int)parse_i64(a, val, 0, 1000);
        } else if (OPT("--min-time")) {
            o->min_time = parse_double(a, val, 0.0, 3600.0);
        } else if (OPT("--json")) {
            o->json = val;
        } else if (OPT("--roof-time")) {
            o->roof_seconds = parse_double(a, val, 0.01, 60.0);
        } else if (OPT("--copy-mib")) {
            o->copy_mib = (size_t)parse_i64(a, val, 64, 1 << 20);
        } else {
            die_usage("unknown option '%s'", argv[i]);
        }
#undef FLAG
#undef OPT
    }

    if (layout_heads && lin_kind < 0)
        die_usage("--layout-heads goes with --linear");
    int shape_given = b >= 0 || hq >= 0 || hkv >= 0 || sq >= 0 || sk >= 0 || d >= 0 || dv >= 0 ||
                      causal || have_window || have_dtype || lin_kind >= 0 || bhsd || nb_nd;
    if (shape_given) {
        if (o->sets)
            die_usage("--set and a single shape (--b/--hq/--sq/... ) are exclusive");
        if (hq < 0)
            hq = 16;
        if (hkv < 0)
            hkv = hq;
        if (hq % hkv)
            die_usage("--hq %" PRId64 " is not a multiple of --hkv %" PRId64, hq, hkv);
        if (sq < 0)
            sq = 4096;
        if (sk < 0)
            sk = sq;
        if (d < 0)
            d = 128;
        if (dv < 0)
            dv = d;
        if (b < 0)
            b = 1;
        double elems = (double)b * (double)((sq > sk ? sq : sk)) *
                       (double)(layout_heads > hq ? layout_heads : hq) * (double)(d > dv ? d : dv);
        if (elems * 4.0 > 64.0 * 1024 * 1024 * 1024)
            die_usage("the shape needs more than 64 GiB per tensor");
        bench_case c = { .op = OP_SDPA, .set = "cli", .b = b, .hq = hq, .hkv = hkv, .sq = sq, .sk = sk,
                         .d = d, .dv = dv, .causal = causal, .window_left = wl, .window_right = wr,
                         .sink_tokens = sinks, .dtype = dt, .bhsd = bhsd };
        if (bhsd && lin_kind >= 0)
            die_usage("--bhsd goes with an sdpa shape, not --linear");
        if (nb_nd) {
            if (lin_kind >= 0 || bhsd || causal || have_window || sinks)
                die_usage("--nb takes --b, --hq, --hkv, --d and --dtype only");
            c.op = OP_NEIGHBORHOOD;
            c.dv = c.d;
            c.nb_ndim = nb_nd;
            c.sq = 1;
            for (int a = 0; a < 3; a++) {
                c.nb_grid[a] = nb_grid[a];
                c.nb_kernel[a] = nb_kernel[a];
                c.sq *= nb_grid[a];
            }
            c.sk = c.sq;
        }
        if (lin_kind >= 0) {
            c.op = OP_LINEAR;
            c.hkv = c.hq;
            c.sq = c.sk = lin_step ? 1 : sq;
            c.lin_kind = (attn_linear_kind)lin_kind;
            c.lin_step = lin_step;
            c.lin_chunk = lin_chunk;
            if (layout_heads && layout_heads < c.hq)
                die_usage("--layout-heads %" PRId64 " is less than --hq %" PRId64, layout_heads,
                          c.hq);
            c.lin_layout_heads = layout_heads;
        }
        o->shape = c;
        o->have_shape = 1;
    } else if (!o->sets) {
        o->sets = "prefill";
    }
}

static void build_cases(const char *sets, case_list *l)
{
    char *copy = strdup(sets);
    if (!copy) {
        fprintf(stderr, "attn-bench: out of memory\n");
        exit(EXIT_LIBRARY);
    }
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const shape_set *s = set_for(tok);
        if (!s) {
            fprintf(stderr, "attn-bench: --set: no set named '%s'; the sets are:", tok);
            for (size_t i = 0; i < sizeof set_table / sizeof set_table[0]; i++)
                fprintf(stderr, " %s", set_table[i].name);
            fputs("\n", stderr);
            free(copy);
            exit(EXIT_USAGE);
        }
        s->build(l);
    }
    free(copy);
}

static void list_sets(void)
{
    for (size_t i = 0; i < sizeof set_table / sizeof set_table[0]; i++) {
        case_list l = { 0 };
        set_table[i].build(&l);
        double gf = 0.0;
        for (int j = 0; j < l.n; j++)
            gf += runner_for(l.v[j].op)->flops(&l.v[j]) * 1e-9;
        tprintf("%-8s %4d shapes, %.0f GFLOP per pass: %s\n", set_table[i].name, l.n, gf,
               set_table[i].desc);
        for (int j = 0; j < l.n; j++) {
            const bench_case *c = &l.v[j];
            char mask[48];
            format_mask(c, mask, sizeof mask);
            tprintf("    %-5s %-4s b=%" PRId64 " hq=%" PRId64 " hkv=%" PRId64 " sq=%" PRId64
                   " sk=%" PRId64 " d=%" PRId64 " dv=%" PRId64 " %s\n",
                   runner_for(c->op)->name, dtype_name(c->dtype), c->b, c->hq, c->hkv, c->sq,
                   c->sk, c->d, c->dv, mask);
        }
        free(l.v);
    }
}

/* Whether the CPU (by the feature bits the library reports) can run the FMA
 * loop of an ISA: used by --roofs to show every roof the machine has, also
 * those above the kernel set this build or context uses. */
static int cpu_can_run(uint64_t f, attn_isa isa)
{
    switch (isa) {
    case ATTN_ISA_SCALAR: return 1;
    case ATTN_ISA_AVX2:   return (f & ATTN_CPU_AVX2) && (f & ATTN_CPU_FMA);
    case ATTN_ISA_AVX512: return (f & ATTN_CPU_AVX512F) && (f & ATTN_CPU_FMA);
    case ATTN_ISA_NEON:   return (f & ATTN_CPU_ASIMD) != 0;
    default:              return 0;
    }
}

static int report_lib_error(const char *what, attn_status s)
{
    const char *detail = attn_last_error();
    fprintf(stderr, "attn-bench: %s: %s%s%s\n", what, attn_status_string(s),
            detail && *detail ? ": " : "", detail ? detail : "");
    return EXIT_LIBRARY;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    bench_opts o;
    parse_args(argc, argv, &o);
    if (o.list) {
        list_sets();
        return 0;
    }

    case_list cases = { 0 };
    if (o.have_shape)
        list_push(&cases, &o.shape);
    else if (!o.roofs_only)
        build_cases(o.sets, &cases);

    FILE *json = NULL;
    if (o.json) {
        json = strcmp(o.json, "-") == 0 ? stdout : fopen(o.json, "w");
        if (!json) {
            fprintf(stderr, "attn-bench: --json: cannot open '%s': %s\n", o.json, strerror(errno));
            return EXIT_USAGE;
        }
    }
    /* With --json -, the table goes to stderr so stdout stays JSON lines. */
    if (json == stdout)
        tab = stderr;
    bench_env env;
    memset(&env, 0, sizeof env);
    attn_options opts = ATTN_OPTIONS_INIT;
    opts.num_threads = o.threads;
    opts.max_isa = o.isa;
    opts.device = o.device;
    attn_status s = attn_context_create(&opts, &env.ctx);
    if (s != ATTN_OK)
        return report_lib_error("attn_context_create", s);
    env.device = attn_context_device(env.ctx);
    env.hugepages = o.hugepages;
    if (o.solo && env.device != 0) {
        attn_context_destroy(env.ctx);
        die_usage("--solo runs one-thread CPU calls: it needs device 0");
    }
    attn_device_info info = ATTN_DEVICE_INFO_INIT;
    if ((s = attn_device_get_info(env.ctx, env.device, &info)) != ATTN_OK) {
        attn_context_destroy(env.ctx);
        return report_lib_error("attn_device_get_info", s);
    }
    env.info = info;
    /* The CPU thread count the context uses (device 0's compute units). */
    attn_device_info cpu = ATTN_DEVICE_INFO_INIT;
    if (attn_device_get_info(env.ctx, 0, &cpu) == ATTN_OK)
        env.threads = cpu.compute_units > 0 ? cpu.compute_units : 1;
    else
        env.threads = 1;
    if (o.isa >= 0 && info.type == ATTN_DEVICE_CPU && (int)info.isa != o.isa)
        fprintf(stderr, "attn-bench: note: --isa %s asked, but the context runs the %s kernels "
                "(best on this machine: %s)\n", attn_isa_name((attn_isa)o.isa),
                attn_isa_name(info.isa), attn_isa_name(info.best_isa));

    char feats[512];
    attn_cpu_features_string(cpu.cpu_features, feats, sizeof feats);
    tprintf("libattn %s  device %d (%s): %s%s\n", attn_version(), env.device,
           device_type_name(info.type), info.name, info.is_software ? " [software]" : "");
    if (info.type == ATTN_DEVICE_CPU)
        tprintf("isa %s (best %s), %d thread%s; cpu features: %s\n", attn_isa_name(info.isa),
               attn_isa_name(info.best_isa), env.threads, env.threads == 1 ? "" : "s", feats);
    if (env.hugepages)
        tprintf("host tensors: 2 MiB pages asked for (--hugepages; granted only with transparent "
                "huge pages in madvise or always mode)\n");

    /* Roofs, once per run. The roof is the rate per thread CPU-second (what
     * the hardware does while the loop runs); the wall-clock rate is shown
     * beside it, and a gap means other processes were using the cores. */
    roof_values rv = { -1, -1, -1, -1, -1 };
    roof_cache rc;
    roof_cache_init(&rc, o.roof_seconds, o.copy_mib << 20, 0);
    if (!o.no_roof) {
        if (info.type == ATTN_DEVICE_CPU) {
            int busy = 0;
            static const attn_isa all[] = { ATTN_ISA_SCALAR, ATTN_ISA_AVX2, ATTN_ISA_AVX512, ATTN_ISA_NEON };
            for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
                    /* pass 0: the ISA in use; pass 1 (--roofs): the others the machine can run */
                    if ((pass == 0) != (all[i] == info.isa))
                        continue;
                    if (pass == 1 && (!o.roofs_only || !roof_fma_kernel_for(all[i]) ||
                                      !cpu_can_run(cpu.cpu_features, all[i])))
                        continue;
                    roof_measure g1 = roof_cache_fma(&rc, all[i], 1);
                    roof_measure gn = env.threads == 1 ? g1 : roof_cache_fma(&rc, all[i], env.threads);
                    if (g1.cpu <= 0) {
                        tprintf("roof: fma %s: no loop for this ISA in this build\n", attn_isa_name(all[i]));
                        continue;
                    }
                    if (pass == 0) {
                        rv.fma_one = g1.cpu;
                        rv.fma_all = gn.cpu;
                        rv.fma_all_wall = gn.wall;
                    }
                    busy |= gn.wall < 0.9 * gn.cpu || g1.wall < 0.9 * g1.cpu;
                    tprintf("roof: fma %-6s %8.1f GFLOP/s 1 thread, %8.1f GFLOP/s %d threads "
                            "(wall-clock %.1f / %.1f; f32, %s)%s\n", attn_isa_name(all[i]), g1.cpu,
                            gn.cpu, env.threads, g1.wall, gn.wall, roof_fma_kernel_for(all[i])->what,
                            pass && all[i] > info.isa && all[i] != ATTN_ISA_NEON
                                ? " [above the kernel set in use]" : "");
                }
            roof_measure cp = roof_cache_copy(&rc, env.threads);
            /* DRAM is shared by the threads: the wall-clock rate is the roof. */
            rv.copy = cp.wall;
            rv.copy_cpu = cp.cpu;
            if (cp.cpu > 0) {
                busy |= cp.wall < 0.9 * cp.cpu;
                tprintf("roof: copy   %8.1f GB/s, %d threads, wall-clock (per-CPU-second sum %.1f, an "
                        "upper bound; memcpy %zu MiB -> %zu MiB, read + write counted)\n", cp.wall,
                        env.threads, cp.cpu, rc.copy_bytes >> 20, rc.copy_bytes >> 20);
            }
            if (busy)
                tprintf("roof: WARNING: the wall-clock rates are more than 10%% below the per-CPU-second "
                        "rates: other processes (or, in a VM, the hypervisor) are taking the cores; "
                        "timings below will be low and noisy (see the cpu%% column)\n");
        } else {
            tprintf("roof: not measured for device type %s (the FMA and copy roofs are CPU loops)\n",
                   device_type_name(info.type));
        }
    }
    if (o.roofs_only) {
        attn_context_destroy(env.ctx);
        if (json && json != stdout)
            fclose(json);
        return 0;
    }

    tprintf("timing: %d warm-up, then repeats until %.2f s or %d reps; median reported\n",
           o.warmup, o.min_time, o.reps);
    if (o.solo)
        tprintf("solo: %d one-thread calls at once (a context and tensors each); GFLOP/s and GB/s "
                "summed over them, median_ms their mean median, reps the fewest, tok/s per call\n", env.threads);
    for (size_t k = 0; k < sizeof op_table / sizeof op_table[0]; k++)
        for (int i = 0; i < cases.n; i++)
            if (cases.v[i].op == op_table[k].op) {
                tprintf("%s\n", op_table[k].flop_rule);
                break;
            }
    tprintf("\n");
    print_header();

    int rc_exit = 0;
    double *median_ms = calloc((size_t)cases.n + 1, sizeof *median_ms);
    run_log log = { 0 };
    for (int i = 0; i < cases.n; i++) {
        const bench_case *c = &cases.v[i];
        const op_runner *r = runner_for(c->op);
        void *st = NULL;
        bench_result res;
        memset(&res, 0, sizeof res);
#ifdef _OPENMP
        if (o.solo) {
            s = time_case_solo(&env, &o, r, c, &res);
        } else
#endif
        if ((s = r->setup(&env, c, &st)) == ATTN_OK) {
            s = time_case(&env, &o, r, c, st, &res);
            r->teardown(st);
        }
        if (s == ATTN_OK) {
            if (median_ms)
                median_ms[i] = res.median_ms;
            print_row(c, r, &res, &rv, &log, "ok");
            if (o.solo && res.clock_ghz > 0)
                tprintf("    core clock right after each timed call: %.2f GHz (mean over the "
                        "threads; compare --solo --threads 1)\n", res.clock_ghz);
            if (json)
                json_case(json, &env, c, r, &res, &rv, &log, "ok");
            run_log_add(&log, c, res.median_ms);
            /* neighborhood attention: the dense masked sdpa row gets the
             * speedup over the same problem's attn_neighborhood row */
            if (c->op == OP_NB_DENSE) {
                bench_case nb = *c;
                nb.op = OP_NEIGHBORHOOD;
                const double nb_ms = run_log_find(&log, &nb);
                if (nb_ms > 0)
                    tprintf("    attn_neighborhood: %.1fx faster than this dense masked attn_sdpa "
                            "(median times)\n", res.median_ms / nb_ms);
            }
        } else if (s == ATTN_ERR_UNSUPPORTED || s == ATTN_ERR_OUT_OF_MEMORY) {
            char msg[512];
            const char *e = attn_last_error();
            snprintf(msg, sizeof msg, "skipped: %s%s%s", attn_status_string(s), e && *e ? ": " : "",
                     e ? e : "");
            print_row(c, r, NULL, &rv, &log, msg);
            if (json)
                json_case(json, &env, c, r, NULL, &rv, &log, msg);
        } else {
            char what[64];
            snprintf(what, sizeof what, "%s (shape %d of %d)", r->name, i + 1, cases.n);
            rc_exit = report_lib_error(what, s);
            print_row(c, r, NULL, &rv, &log, "library error (see stderr)");
            if (json)
                json_case(json, &env, c, r, NULL, &rv, &log, attn_status_string(s));
        }
    }

    if (median_ms)
        print_sparse_summary(&cases, median_ms);
    free(median_ms);
    free(cases.v);
    free(log.c);
    free(log.ms);
    attn_context_destroy(env.ctx);
    if (json && json != stdout)
        fclose(json);
    return rc_exit;
}
