/*
 * libattn: libFuzzer target over attn_sdpa, attn_merge, attn_linear,
 * attn_neighborhood, attn_block_select and the KV cache with attn_decode.
 *
 * Build and run (libFuzzer + ASan + UBSan), from the source root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DATTN_FUZZ_LIBFUZZER \
 *         -Iinclude -Isrc -I<dir with config.h> tests/fuzz_api.c \
 *         src/[a-z]*.c src/cpu/[a-z]*.c -lm -o /tmp/fuzz
 *   /tmp/fuzz -max_total_time=60 [corpus_dir]
 * or `./configure CC=clang --enable-fuzz && make tests/fuzz_api`.
 * Reproduce a finding: /tmp/fuzz crash-<hash>.
 *
 * Without -fsanitize=fuzzer the file has its own main (also defined weakly,
 * so libFuzzer's main wins even when ATTN_FUZZ_LIBFUZZER is not defined):
 *   gcc -g -O1 -fsanitize=address,undefined -fopenmp -Iinclude ... tests/fuzz_api.c ...
 *   ./fuzz_api            runs ATTN_FUZZ_RUNS (default 20000) inputs from a seeded PRNG
 *   ./fuzz_api FILE...    runs the given input files (e.g. a libFuzzer crash file)
 * ATTN_FUZZ_SEED sets the seed; ATTN_FUZZ_VERBOSE=1 prints each input's status;
 * ATTN_FUZZ_SAVE=FILE writes each input to FILE before running it (the last one
 * left there after a crash reproduces it).
 *
 * What an input decodes to: every attn_sdpa_params field (size, garbage enum
 * values, negative / huge windows and block sizes, NaN / inf floats, ALiBi
 * and sink arrays, varlen cu_seqlens with valid or broken contents), the
 * tensors q, k, v, out and the optional lse, mask, gate and block_mask: their
 * ndim, dtype, shape and strides (dims mostly 0..9, sometimes negative or
 * 2^31..2^62), data NULL or a real allocation, buffer-backed with an offset,
 * and outputs aliasing inputs. Of 16 inputs, 10 are attn_sdpa calls, one an
 * attn_merge, two attn_linear (every kind, g/beta/state present or not,
 * varlen), two attn_neighborhood (1-3 axes, kernel, dilation, causal
 * flags), one attn_block_select (both methods) and one a KV cache (a
 * fuzzed description, then appends, truncations, forks, removals, reads
 * and attn_decode calls on it).
 *
 * The harness lies about memory only in ways the library can check:
 *   - a host tensor gets an allocation of exactly the byte extent its shape,
 *     strides and dtype imply (computed here, with overflow checks), unless
 *     its description is invalid by contract (negative shape or stride, ndim
 *     not 4/3, a dtype the op does not take), which the library must reject;
 *   - a tensor whose extent is over FUZZ_MAX_BYTES (or overflows) is given a
 *     small attn_buffer instead: buffers have a known size, so the library
 *     must reject it rather than touch memory past the buffer;
 *   - alibi_slopes / sink_logits hold max(Hq, 1) floats (NULL if Hq > 2^20)
 *     and cu_seqlens hold num_seqs + 1 entries (num_seqs is kept small):
 *     arrays the library cannot bound-check are as long as the contract says;
 *   - calls that could legitimately do more than FUZZ_MAX_WORK
 *     multiply-adds (e.g. Sk = 2^40 with zero strides on k and v) are skipped.
 * So any ASan or UBSan report is a library bug.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"

#define FUZZ_MAX_BYTES ((uint64_t)256 << 10)
#define FUZZ_MAX_WORK  ((uint64_t)1 << 16)
#define MAXT 16

/* ---- input reader --------------------------------------------------------- */

typedef struct rd { const uint8_t *p; size_t n; } rd;

static uint8_t u8(rd *r)
{
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static uint64_t u64(rd *r)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x = x << 8 | u8(r);
    return x;
}

static uint32_t u32(rd *r)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) x = x << 8 | u8(r);
    return x;
}

/* A dimension: mostly 0..9, sometimes negative or huge. */
static int64_t dim(rd *r)
{
    uint8_t b = u8(r);
    if (b < 200) return b % 10;
    switch (b % 12) {
    case 0: return -1;
    case 1: return INT64_MIN;
    case 2: return INT64_C(1) << 31;
    case 3: return INT64_C(1) << 40;
    case 4: return INT64_C(1) << 62;
    case 5: return INT64_MAX;
    case 6: return 4096 + u8(r);      /* around the head-dim limit */
    case 7: return 16 + u8(r) % 64;
    case 8: return (int64_t)u64(r);
    case 9: return INT32_MAX;
    default: return b % 10;
    }
}

static int64_t scalar64(rd *r)
{
    uint8_t b = u8(r);
    if (b < 160) return (int64_t)(b % 12) - 1;   /* -1 .. 10 */
    switch (b % 8) {
    case 0: return -2;
    case 1: return INT64_MAX;
    case 2: return INT64_MIN;
    case 3: return INT64_MAX - 1;
    case 4: return (int64_t)u64(r);
    case 5: return INT64_C(1) << 40;
    case 6: return -(INT64_C(1) << 40);
    default: return u8(r);
    }
}

static float fval(rd *r, float dflt)
{
    uint8_t b = u8(r);
    if (b < 128) return dflt;
    switch (b % 12) {
    case 0: return NAN;
    case 1: return INFINITY;
    case 2: return -INFINITY;
    case 3: return -1.0f;
    case 4: return 0.5f;
    case 5: return 3.4028235e38f;
    case 6: return 1e-38f;
    case 7: return 1e-45f;
    case 8: { uint32_t u = u32(r); float f; memcpy(&f, &u, 4); return f; }
    case 9: return 30.0f;
    case 10: return -0.0f;
    default: return 2.0f;
    }
}

/* ---- tensors with honest memory -------------------------------------------------- */

typedef struct fz {
    attn_context *ctx;
    void *allocs[64];
    int nallocs;
    attn_buffer *bufs[MAXT];
    int nbufs;
} fz;

static void *fz_alloc(fz *f, size_t n)
{
    if (f->nallocs >= 64) return NULL;
    void *p = malloc(n ? n : 1);
    if (!p) return NULL;
    f->allocs[f->nallocs++] = p;
    return p;
}

static int mul_ovf(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_mul_overflow(a, b, r); }
static int add_ovf(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_add_overflow(a, b, r); }

/* Byte extent the tensor description implies; -1 when it is invalid by
 * contract (the library must reject it) and -2 when it overflows. */
static int64_t extent(const attn_tensor *t)
{
    if (t->ndim < 0 || t->ndim > ATTN_MAX_DIMS) return -1;
    size_t es = attn_dtype_size(t->dtype);
    if (es == 0) return -1;
    int allzero = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || t->stride[i] < 0) return -1;
        if (t->stride[i]) allzero = 0;
    }
    uint64_t numel = 1, span = 1;
    for (int i = 0; i < t->ndim; i++)
        if (mul_ovf(numel, (uint64_t)t->shape[i], &numel)) return -2;
    if (numel == 0) return 0;
    if (allzero) {
        span = numel;
    } else {
        for (int i = 0; i < t->ndim; i++) {
            uint64_t step;
            if (mul_ovf((uint64_t)t->shape[i] - 1, (uint64_t)t->stride[i], &step) ||
                add_ovf(span, step, &span))
                return -2;
        }
    }
    uint64_t bytes;
    if (mul_ovf(span, es, &bytes) || bytes > (uint64_t)INT64_MAX) return -2;
    return (int64_t)bytes;
}

/* Decodes ndim/dtype/shape/strides (starting from a consistent suggestion)
 * and gives the tensor memory. Returns the tensor's allocation size in bytes
 * (host or buffer), or 0. */
static size_t make_tensor(fz *f, rd *r, attn_tensor *t, int ndim, attn_dtype dt,
                          const int64_t *shape, int *honest)
{
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    t->dtype = dt;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    uint8_t m = u8(r);
    if (m >= 240) {                         /* mutate the description */
        switch (m % 6) {
        case 0: t->ndim = (int)(u8(r) % 9) - 1; break;          /* -1 .. 7 */
        case 1: t->dtype = (attn_dtype)(u8(r) % 7); break;      /* incl. 6 = invalid */
        case 2: t->shape[u8(r) % 4] = dim(r); break;
        case 3: t->dtype = (attn_dtype)(int)(int8_t)u8(r); break;
        default: t->shape[u8(r) % 4] = dim(r); t->shape[u8(r) % 4] = dim(r); break;
        }
    }
    uint8_t sm = u8(r);
    if (sm >= 200 && t->ndim >= 1 && t->ndim <= ATTN_MAX_DIMS) {
        /* explicit strides */
        int64_t s = 1;
        for (int i = t->ndim - 1; i >= 0; i--) {
            t->stride[i] = s;
            s *= (t->shape[i] > 0 && t->shape[i] < 64) ? t->shape[i] : 1;
        }
        switch (sm % 6) {
        case 0:                               /* [B,H,S,D] storage seen as [B,S,H,D] */
            if (t->ndim == 4 && t->shape[1] >= 0 && t->shape[1] < 4096 && t->shape[2] >= 0 &&
                t->shape[2] < 4096 && t->shape[3] >= 0 && t->shape[3] < 65536) {
                int64_t d1 = t->shape[1] ? t->shape[1] : 1, d2 = t->shape[2] ? t->shape[2] : 1;
                int64_t d3 = t->shape[3] ? t->shape[3] : 1;
                t->stride[3] = 1;
                t->stride[1] = d3;
                t->stride[2] = d1 * d3;
                t->stride[0] = d1 * d2 * d3;
            }
            break;
        case 1: t->stride[u8(r) % t->ndim] = 0; break;               /* broadcast / overlap */
        case 2: t->stride[u8(r) % t->ndim] = u8(r) % 20; break;
        case 3: t->stride[u8(r) % t->ndim] = dim(r); break;          /* negative / huge */
        case 4: t->stride[0] += u8(r) % 5; break;                    /* padding */
        default: for (int i = 0; i < t->ndim; i++) t->stride[i] = u8(r) % 12; break;
        }
    }
    int64_t ext = extent(t);
    uint8_t mem = u8(r);
    if (ext == -1) {
        /* invalid by contract: some small memory (or NULL) */
        *honest = 0;
        t->data = (mem & 1) ? NULL : fz_alloc(f, 64);
        return 64;
    }
    if (ext == -2 || (uint64_t)ext > FUZZ_MAX_BYTES || mem >= 224) {
        /* a buffer: the library knows its size and must check the extent */
        size_t bytes = 64 + (size_t)(mem % 4) * 256;
        if (ext >= 0 && (uint64_t)ext <= FUZZ_MAX_BYTES && mem % 2)
            bytes = (size_t)ext + (mem % 3) * 4;          /* exact fit or a bit over */
        if (bytes == 0) bytes = 4;
        attn_buffer *b = NULL;
        if (f->nbufs < MAXT && attn_buffer_create(f->ctx, 0, bytes, &b) == ATTN_OK) {
            f->bufs[f->nbufs++] = b;
            memset(attn_buffer_host_ptr(b), 0x3c, bytes);
            t->buffer = b;
            uint8_t o = u8(r);
            t->offset = o < 200 ? (size_t)(o % 4) * attn_dtype_size(t->dtype)
                                : (o % 2 ? SIZE_MAX - o : (size_t)o);
            if (ext < 0 || (uint64_t)ext + t->offset > bytes || t->offset > bytes)
                *honest = 0;   /* must be rejected */
            return bytes;
        }
        *honest = 0;
        t->data = NULL;
        return 0;
    }
    if (mem >= 216 && ext > 0) {
        *honest = 0;            /* NULL data with a nonzero size: must be rejected */
        t->data = NULL;
        return 0;
    }
    unsigned char *p = fz_alloc(f, (size_t)ext);
    if (!p) { *honest = 0; return 0; }
    /* contents: small values, with occasional inf/NaN */
    memset(p, 0x3c, (size_t)ext);     /* f32 0.0115, f16 1.06, bf16 0.0115, u8 nonzero */
    if (ext >= 8) memset(p + ext / 2, 0xbc, 2);
    if ((mem & 0x30) == 0x30 && ext >= 4) { float x = NAN; memcpy(p, &x, 4); }
    t->data = p;
    return (size_t)ext;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    uint64_t r;
    return mul_ovf(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t clamp_dim(int64_t x) { return x < 0 ? 0 : (uint64_t)x; }

/* ---- attn_sdpa ----------------------------------------------------------------------- */

static void fuzz_sdpa(fz *f, rd *r)
{
    struct { attn_sdpa_params p; unsigned char pad[32]; } pw;
    memset(&pw, 0, sizeof pw);
    attn_sdpa_params def = ATTN_SDPA_PARAMS_INIT;
    attn_sdpa_params *p = &pw.p;
    *p = def;
    uint8_t sz = u8(r);
    if (sz >= 250) {
        static const size_t sizes[] = { 0, 1, offsetof(attn_sdpa_params, num_seqs),
                                        sizeof(attn_sdpa_params) + 8, SIZE_MAX, 8 };
        p->size = sizes[sz % 6];
    }
    p->scale = fval(r, 0.0f);
    uint8_t sc = u8(r);
    p->score = sc < 200 ? (attn_score)(sc % 2) : (attn_score)(int32_t)u32(r);
    p->sigmoid_bias = fval(r, 0.0f);
    p->causal = u8(r) % 2 ? (u8(r) % 2 ? 1 : (int)u32(r)) : 0;
    p->window_left = u8(r) < 128 ? -1 : scalar64(r);
    p->window_right = u8(r) < 128 ? -1 : scalar64(r);
    p->sink_tokens = u8(r) < 160 ? 0 : scalar64(r);
    p->softcap = u8(r) < 160 ? 0.0f : fval(r, 5.0f);

    /* the problem */
    int64_t B = dim(r), Sq = dim(r), Sk = dim(r), Hkv = dim(r), grp = 1 + u8(r) % 3;
    int64_t D = dim(r), Dv = u8(r) < 200 ? D : dim(r);
    int64_t Hq = Hkv;
    if (Hkv >= 0 && Hkv < (INT64_C(1) << 40)) Hq = Hkv * grp;
    if (u8(r) >= 240) Hq = dim(r);
    const attn_dtype dts[3] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    attn_dtype dt = dts[u8(r) % 3], odt = dts[u8(r) % 3];

    /* varlen: honest arrays of num_seqs + 1 entries */
    int32_t cu_q[10], cu_k[10];
    uint8_t vl = u8(r);
    int varlen = vl >= 216;
    if (varlen) {
        int64_t ns = (int64_t)(u8(r) % 10) - 1;     /* -1 .. 8 */
        int32_t aq = 0, ak = 0;
        cu_q[0] = cu_k[0] = 0;
        for (int i = 1; i < 10; i++) {
            aq += u8(r) % 5;
            ak += u8(r) % 6;
            cu_q[i] = aq;
            cu_k[i] = ak;
        }
        if (u8(r) >= 200) {   /* break it */
            int32_t *c = u8(r) % 2 ? cu_q : cu_k;
            c[u8(r) % 10] = (int32_t)u32(r);
        }
        p->num_seqs = ns;
        int which = vl % 4;
        p->cu_seqlens_q = which != 1 ? cu_q : NULL;
        p->cu_seqlens_k = which != 2 ? cu_k : NULL;
        if (ns >= 1 && u8(r) < 230) {
            B = 1;
            Sq = cu_q[ns] + u8(r) % 2;
            Sk = cu_k[ns] + u8(r) % 2;
        }
    } else if (u8(r) >= 250) {
        p->num_seqs = scalar64(r);                  /* ignored without cu_seqlens */
    }

    int honest = 1;
    attn_tensor q, k, v, out, lse, mask, gate, bm;
    int64_t qs[4] = { B, Sq, Hq, D }, ks[4] = { B, Sk, Hkv, D }, vs[4] = { B, Sk, Hkv, Dv };
    int64_t os[4] = { B, Sq, Hq, Dv }, ls[3] = { B, Hq, Sq };
    size_t qn = make_tensor(f, r, &q, 4, dt, qs, &honest);
    make_tensor(f, r, &k, 4, dt, ks, &honest);
    make_tensor(f, r, &v, 4, dt, vs, &honest);
    make_tensor(f, r, &out, 4, odt, os, &honest);
    int has_lse = u8(r) % 3 == 0;
    if (has_lse) make_tensor(f, r, &lse, 3, ATTN_F32, ls, &honest);

    /* mask / block_mask: [nseq|1, Hq|1, maxq, maxk] */
    int64_t nseq = B, mq = Sq, mk = Sk;
    if (varlen && p->num_seqs >= 1 && p->num_seqs <= 9) {
        nseq = p->num_seqs;
        mq = mk = 0;
        for (int64_t i = 0; i < nseq; i++) {
            /* in int64: garbage cu_seqlens (INT32_MIN...) must not overflow here */
            const int64_t lq = (int64_t)cu_q[i + 1] - cu_q[i], lk = (int64_t)cu_k[i + 1] - cu_k[i];
            if (lq > mq) mq = lq;
            if (lk > mk) mk = lk;
        }
    }
    uint8_t opt = u8(r);
    if (opt & 1) {
        static const attn_dtype mdts[] = { ATTN_F32, ATTN_F16, ATTN_U8, ATTN_U8 };
        int64_t ms[4] = { u8(r) % 2 ? nseq : 1, u8(r) % 2 ? Hq : 1, mq, mk };
        make_tensor(f, r, &mask, 4, mdts[u8(r) % 4], ms, &honest);
        p->mask = &mask;
    }
    if (opt & 2) {
        make_tensor(f, r, &gate, 4, dts[u8(r) % 3], os, &honest);
        p->gate = &gate;
    }
    if (opt & 4) {
        p->block_q = u8(r) < 200 ? 1 + u8(r) % 8 : scalar64(r);
        p->block_k = u8(r) < 200 ? 1 + u8(r) % 8 : scalar64(r);
        int64_t nbq = p->block_q > 0 && mq >= 0 ? (mq ? (mq - 1) / p->block_q + 1 : 0) : 1;
        int64_t nbk = p->block_k > 0 && mk >= 0 ? (mk ? (mk - 1) / p->block_k + 1 : 0) : 1;
        int64_t bs[4] = { u8(r) % 2 ? nseq : 1, u8(r) % 2 ? Hq : 1, nbq, nbk };
        make_tensor(f, r, &bm, 4, ATTN_U8, bs, &honest);
        p->block_mask = &bm;
    }
    /* per-head arrays: max(Hq, 1) entries; left NULL when Hq is too large to
     * allocate (there is no bound the library could check them against) */
    float *slopes = NULL, *sinks = NULL;
    int64_t hq_arr = q.ndim == 4 ? q.shape[2] : Hq;
    if (hq_arr >= 0 && hq_arr <= (INT64_C(1) << 20)) {
        size_t nh = (size_t)(hq_arr > 0 ? hq_arr : 1);
        if (opt & 8) {
            slopes = fz_alloc(f, nh * sizeof(float));
            float val = fval(r, 0.25f);
            for (size_t i = 0; slopes && i < nh; i++) slopes[i] = val;
            p->alibi_slopes = slopes;
        }
        if (opt & 16) {
            sinks = fz_alloc(f, nh * sizeof(float));
            float val = fval(r, 1.0f);
            for (size_t i = 0; sinks && i < nh; i++) sinks[i] = val;
            p->sink_logits = sinks;
        }
    }

    /* aliasing: out (or lse) placed on an input's memory, if it fits there */
    uint8_t al = u8(r);
    if (al >= 224 && out.buffer == NULL && q.buffer == NULL && q.data) {
        int64_t oe = extent(&out);
        if (oe >= 0 && (size_t)oe <= qn) {
            out.data = q.data;
            honest = 0;
        }
    } else if (al >= 208 && al < 224 && has_lse && lse.buffer == NULL && out.data) {
        int64_t le = extent(&lse), oe = extent(&out);
        if (le >= 0 && oe >= 0 && le <= oe && out.buffer == NULL) {
            lse.data = out.data;
            honest = 0;
        }
    }

    /* cap the work of calls that could legitimately run */
    if (honest) {
        /* from the shapes as passed (a mutated dim may differ from B, Sq, ...) */
        if (q.ndim == 4 && k.ndim == 4 && v.ndim == 4) {
            uint64_t w = sat_mul(sat_mul(clamp_dim(q.shape[0]), clamp_dim(q.shape[1])),
                                 sat_mul(clamp_dim(k.shape[1]), clamp_dim(q.shape[2])));
            w = sat_mul(w, clamp_dim(q.shape[3]) + clamp_dim(v.shape[3]) + 1);
            if (w > FUZZ_MAX_WORK)
                return;
        }
    }

    if (getenv("ATTN_FUZZ_VERBOSE"))
        fprintf(stderr, "sdpa: q [%lld,%lld,%lld,%lld] nd %d dt %d, k [%lld,%lld,%lld,%lld], "
                "v [..,%lld], Hq arrays %lld, honest %d, score %d sinks %p\n",
                (long long)q.shape[0], (long long)q.shape[1], (long long)q.shape[2],
                (long long)q.shape[3], q.ndim, (int)q.dtype, (long long)k.shape[0],
                (long long)k.shape[1], (long long)k.shape[2], (long long)k.shape[3],
                (long long)v.shape[3], (long long)hq_arr, honest, (int)p->score,
                (const void *)p->sink_logits);
    attn_status s = attn_sdpa(f->ctx, p, &q, &k, &v, &out, has_lse ? &lse : NULL);
    const char *msg = attn_last_error();
    if (s == ATTN_OK && msg[0]) {
        fprintf(stderr, "fuzz_api: attn_sdpa succeeded but attn_last_error() = \"%s\"\n", msg);
        abort();
    }
    if (s != ATTN_OK && !msg[0]) {
        fprintf(stderr, "fuzz_api: attn_sdpa failed (%d) with an empty attn_last_error()\n", (int)s);
        abort();
    }
    if (s == ATTN_ERR_INTERNAL) {
        fprintf(stderr, "fuzz_api: attn_sdpa returned ATTN_ERR_INTERNAL: %s\n", msg);
        abort();
    }
    if (getenv("ATTN_FUZZ_VERBOSE"))
        fprintf(stderr, "sdpa -> %d %s\n", (int)s, msg);
}

/* ---- attn_merge -------------------------------------------------------------- */

static void fuzz_merge(fz *f, rd *r)
{
    int n = (int)(u8(r) % 6) - 1;    /* -1 .. 4 */
    int64_t B = dim(r), S = dim(r), H = dim(r), Dv = dim(r);
    const attn_dtype dts[3] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    attn_tensor outs[4], lses[4], out, lse;
    int honest = 1;
    int64_t os[4] = { B, S, H, Dv }, ls[3] = { B, H, S };
    for (int i = 0; i < 4; i++) {
        make_tensor(f, r, &outs[i], 4, dts[u8(r) % 3], os, &honest);
        make_tensor(f, r, &lses[i], 3, ATTN_F32, ls, &honest);
    }
    make_tensor(f, r, &out, 4, dts[u8(r) % 3], os, &honest);
    int has_lse = u8(r) % 2;
    if (has_lse) make_tensor(f, r, &lse, 3, ATTN_F32, ls, &honest);
    uint8_t m = u8(r);
    const attn_tensor *po = m == 255 ? NULL : outs, *pl = m == 254 ? NULL : lses;
    if (m >= 240 && m < 248 && out.buffer == NULL && outs[0].buffer == NULL) {
        int64_t e0 = extent(&outs[0]), eo = extent(&out);
        if (e0 >= 0 && eo >= 0 && eo <= e0 && outs[0].data) { out.data = outs[0].data; honest = 0; }
    }
    if (honest) {
        if (out.ndim == 4) {
            uint64_t w = sat_mul(sat_mul(clamp_dim(out.shape[0]), clamp_dim(out.shape[1])),
                                 sat_mul(clamp_dim(out.shape[2]), clamp_dim(out.shape[3]) + 1));
            if (sat_mul(w, 4) > FUZZ_MAX_WORK) return;
        }
    }
    attn_status s = attn_merge(f->ctx, po, pl, n, &out, has_lse ? &lse : NULL);
    const char *msg = attn_last_error();
    if ((s == ATTN_OK) != (msg[0] == '\0') || s == ATTN_ERR_INTERNAL) {
        fprintf(stderr, "fuzz_api: attn_merge status %d with message \"%s\"\n", (int)s, msg);
        abort();
    }
    if (getenv("ATTN_FUZZ_VERBOSE"))
        fprintf(stderr, "merge -> %d %s\n", (int)s, msg);
}


/* Checks the contract every op shares: a message exactly when it fails, and
 * never ATTN_ERR_INTERNAL. */
static void check_status(const char *op, attn_status s)
{
    const char *msg = attn_last_error();
    if ((s == ATTN_OK) != (msg[0] == '\0') || s == ATTN_ERR_INTERNAL) {
        fprintf(stderr, "fuzz_api: %s status %d with message \"%s\"\n", op, (int)s, msg);
        abort();
    }
    if (getenv("ATTN_FUZZ_VERBOSE"))
        fprintf(stderr, "%s -> %d %s\n", op, (int)s, msg);
}

/* The product of n shape entries of t, saturated (0 for a negative one). */
static uint64_t shape_work(const attn_tensor *t, int n)
{
    uint64_t w = 1;
    for (int i = 0; i < n && i < t->ndim; i++)
        w = sat_mul(w, clamp_dim(t->shape[i]));
    return w;
}

/* The op's params with their defaults in a struct with 32 spare bytes (a
 * fuzzed size may claim more than sizeof), now and then with a wrong size. */
#define FUZZ_PARAMS(T, INIT, pw, p)                                        \
    struct { T p; unsigned char pad[32]; } pw;                             \
    memset(&pw, 0, sizeof pw);                                             \
    {                                                                      \
        T def_ = INIT;                                                     \
        pw.p = def_;                                                       \
    }                                                                      \
    T *p = &pw.p;                                                          \
    if (u8(r) >= 250) {                                                    \
        static const size_t sizes_[] = { 0, 1, sizeof(T) + 8, SIZE_MAX };  \
        p->size = sizes_[u8(r) % 4];                                       \
    }

/* ---- attn_linear --------------------------------------------------------------- */

static void fuzz_linear(fz *f, rd *r)
{
    FUZZ_PARAMS(attn_linear_params, ATTN_LINEAR_PARAMS_INIT, pw, p)
    uint8_t kd = u8(r);
    p->kind = kd < 240 ? (attn_linear_kind)(kd % 6) : (attn_linear_kind)(int32_t)u32(r);
    p->scale = fval(r, 0.0f);
    uint8_t al = u8(r);
    p->algo = al < 240 ? (attn_linear_algo)(al % 3) : (attn_linear_algo)(int32_t)u32(r);
    p->chunk_size = u8(r) < 160 ? 0 : (u8(r) < 200 ? 1 + u8(r) % 70 : (int)u32(r));
    uint8_t ft = u8(r);
    p->feature = ft < 240 ? (attn_linear_feature)(ft % 3) : (attn_linear_feature)(int32_t)u32(r);
    p->normalize = u8(r) % 4 == 0;
    p->norm_eps = fval(r, 1e-6f);
    p->l2norm_qk = u8(r) % 3 == 0;

    int64_t B = dim(r), S = dim(r), H = dim(r), Dk = dim(r), Dv = u8(r) < 200 ? Dk : dim(r);
    const attn_dtype dts[3] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    attn_dtype dt = dts[u8(r) % 3];

    int32_t cu[10];
    int64_t N = B;
    if (u8(r) >= 216) {
        int64_t ns = (int64_t)(u8(r) % 10) - 1;     /* -1 .. 8 */
        int32_t a = 0;
        cu[0] = 0;
        for (int i = 1; i < 10; i++) {
            a += u8(r) % 6;
            cu[i] = a;
        }
        if (u8(r) >= 200)
            cu[u8(r) % 10] = (int32_t)u32(r);      /* broken */
        p->cu_seqlens = cu;
        p->num_seqs = ns;
        if (ns >= 1 && u8(r) < 230) {
            B = 1;
            S = cu[ns] + u8(r) % 2;
        }
        N = ns;
    }

    int honest = 1;
    attn_tensor q, k, v, g, beta, sin, out, sout, zin, zout;
    int64_t qs[4] = { B, S, H, Dk }, vs[4] = { B, S, H, Dv }, gs[4] = { B, S, H, Dk };
    int64_t ss[4] = { N, H, Dk, Dv }, zs[3] = { N, H, Dk };
    make_tensor(f, r, &q, 4, dt, qs, &honest);
    make_tensor(f, r, &k, 4, dt, qs, &honest);
    make_tensor(f, r, &v, 4, dt, vs, &honest);
    make_tensor(f, r, &out, 4, dts[u8(r) % 3], vs, &honest);
    /* g and beta: what the kind wants most of the time, anything else sometimes */
    const attn_tensor *pg = NULL, *pb = NULL, *psi = NULL, *pso = NULL;
    uint8_t gm = u8(r);
    int per_channel = p->kind == ATTN_LINEAR_GLA || p->kind == ATTN_LINEAR_KDA;
    int scalar_gate = p->kind == ATTN_LINEAR_DECAY || p->kind == ATTN_LINEAR_GATED_DELTA;
    if ((gm < 200 && (per_channel || scalar_gate)) || gm >= 240) {
        int nd = (gm >= 240 ? gm % 2 : per_channel) ? 4 : 3;
        make_tensor(f, r, &g, nd, dts[u8(r) % 3], gs, &honest);
        pg = &g;
    }
    if (p->kind == ATTN_LINEAR_DECAY && u8(r) >= 128) {
        /* the per-head constant instead of g (or as well, which must fail) */
        /* H entries, as the contract says; NULL where H is too large to allocate */
        int64_t nh = H > 0 ? H : 1;
        float *d = nh <= 4096 ? fz_alloc(f, (size_t)nh * sizeof(float)) : NULL;
        float val = fval(r, 0.9f);
        for (int64_t i = 0; d && i < nh; i++) d[i] = val;
        p->decay = d;
        if (u8(r) < 200) pg = NULL;
    }
    uint8_t bm = u8(r);
    if ((bm < 200 && (p->kind == ATTN_LINEAR_DELTA || p->kind == ATTN_LINEAR_GATED_DELTA ||
                       p->kind == ATTN_LINEAR_KDA)) || bm >= 240) {
        make_tensor(f, r, &beta, 3, dts[u8(r) % 3], gs, &honest);
        pb = &beta;
    }
    if (u8(r) % 2) {
        make_tensor(f, r, &sin, 4, ATTN_F32, ss, &honest);
        psi = &sin;
    }
    uint8_t so = u8(r);
    if (so % 3 == 0 && psi) {
        pso = psi;                                   /* in place */
    } else if (so % 3 == 1) {
        make_tensor(f, r, &sout, 4, ATTN_F32, ss, &honest);
        pso = &sout;
    }
    if (p->normalize) {
        if (u8(r) % 2) { make_tensor(f, r, &zin, 3, ATTN_F32, zs, &honest); p->z_in = &zin; }
        if (u8(r) % 2) { make_tensor(f, r, &zout, 3, ATTN_F32, zs, &honest); p->z_out = &zout; }
    }
    if (honest) {
        uint64_t w = sat_mul(shape_work(&q, 3), sat_mul(clamp_dim(q.shape[3]) + 1,
                                                         clamp_dim(v.shape[3]) + 1));
        if (psi || pso)
            w = sat_mul(w, 2);
        if (sat_mul(w, 4) > FUZZ_MAX_WORK)
            return;
    }
    if (getenv("ATTN_FUZZ_VERBOSE"))
        fprintf(stderr, "linear: kind %d algo %d q [%lld,%lld,%lld,%lld] v [..,%lld] varlen %lld "
                "g %d beta %d state %d/%d honest %d\n", (int)p->kind, (int)p->algo,
                (long long)q.shape[0], (long long)q.shape[1], (long long)q.shape[2],
                (long long)q.shape[3], (long long)v.shape[3],
                (long long)(p->cu_seqlens ? p->num_seqs : -1), pg != NULL, pb != NULL,
                psi != NULL, pso != NULL, honest);
    check_status("attn_linear", attn_linear(f->ctx, p, &q, &k, &v, pg, pb, psi, &out, pso));
}

/* ---- attn_neighborhood ----------------------------------------------------------- */

static void fuzz_neighborhood(fz *f, rd *r)
{
    FUZZ_PARAMS(attn_neighborhood_params, ATTN_NEIGHBORHOOD_PARAMS_INIT, pw, p)
    uint8_t nd = u8(r);
    p->ndim = nd < 240 ? 1 + nd % 3 : (int)(int8_t)u8(r);
    int ax = p->ndim >= 1 && p->ndim <= 3 ? p->ndim : 3;
    int64_t grid[3];
    for (int a = 0; a < 3; a++) {
        grid[a] = u8(r) < 230 ? 1 + u8(r) % 9 : dim(r);
        uint8_t ks = u8(r);
        p->kernel_size[a] = ks < 200 ? 1 + 2 * (ks % 5) : (ks < 230 ? ks % 12 : scalar64(r));
        uint8_t dl = u8(r);
        p->dilation[a] = dl < 200 ? 1 + dl % 3 : scalar64(r);
        p->is_causal[a] = u8(r) % 4 == 0;
    }
    p->scale = fval(r, 0.0f);
    int64_t B = dim(r), Hkv = dim(r), grp = 1 + u8(r) % 3, D = dim(r);
    int64_t Dv = u8(r) < 200 ? D : dim(r), Hq = Hkv;
    if (Hkv >= 0 && Hkv < (INT64_C(1) << 40)) Hq = Hkv * grp;
    const attn_dtype dts[3] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    attn_dtype dt = dts[u8(r) % 3];

    int64_t qs[6], ks[6], vs[6], os[6], ls[5];
    qs[0] = ks[0] = vs[0] = os[0] = ls[0] = B;
    for (int a = 0; a < ax; a++)
        qs[1 + a] = ks[1 + a] = vs[1 + a] = os[1 + a] = ls[1 + a] = grid[a];
    qs[ax + 1] = os[ax + 1] = ls[ax + 1] = Hq;
    ks[ax + 1] = vs[ax + 1] = Hkv;
    qs[ax + 2] = ks[ax + 2] = D;
    vs[ax + 2] = os[ax + 2] = Dv;
    int honest = 1;
    attn_tensor q, k, v, out, lse;
    make_tensor(f, r, &q, ax + 3, dt, qs, &honest);
    make_tensor(f, r, &k, ax + 3, dt, ks, &honest);
    make_tensor(f, r, &v, ax + 3, dt, vs, &honest);
    make_tensor(f, r, &out, ax + 3, dts[u8(r) % 3], os, &honest);
    int has_lse = u8(r) % 3 == 0;
    if (has_lse) make_tensor(f, r, &lse, ax + 2, ATTN_F32, ls, &honest);
    if (honest && q.ndim == ax + 3 && v.ndim == ax + 3) {
        uint64_t w = sat_mul(shape_work(&q, ax + 2), clamp_dim(q.shape[ax + 2]) +
                                                      clamp_dim(v.shape[ax + 2]) + 1);
        for (int a = 0; a < ax; a++)
            w = sat_mul(w, clamp_dim(p->kernel_size[a]));
        if (w > FUZZ_MAX_WORK)
            return;
    }
    check_status("attn_neighborhood",
                 attn_neighborhood(f->ctx, p, &q, &k, &v, &out, has_lse ? &lse : NULL));
}

/* ---- attn_block_select ------------------------------------------------------------ */

static void fuzz_block_select(fz *f, rd *r)
{
    FUZZ_PARAMS(attn_block_select_params, ATTN_BLOCK_SELECT_PARAMS_INIT, pw, p)
    uint8_t m = u8(r);
    p->method = m < 240 ? (attn_block_select_method)(m % 2)
                        : (attn_block_select_method)(int32_t)u32(r);
    p->stride = u8(r) < 200 ? 1 + u8(r) % 4 : scalar64(r);
    const int64_t unit = p->stride >= 1 && p->stride <= 64 ? p->stride : 1;
    p->block_q = u8(r) < 200 ? unit * (1 + u8(r) % 3) : scalar64(r);
    p->block_k = u8(r) < 200 ? unit * (1 + u8(r) % 3) : scalar64(r);
    p->threshold = fval(r, 0.9f);
    p->top_k = u8(r) < 200 ? 1 + u8(r) % 4 : scalar64(r);
    p->causal = u8(r) % 2;
    p->scale = fval(r, 0.0f);
    int64_t B = dim(r), Sq = dim(r), Sk = dim(r), Hkv = dim(r), grp = 1 + u8(r) % 3, D = dim(r);
    int64_t Hq = Hkv;
    if (Hkv >= 0 && Hkv < (INT64_C(1) << 40)) Hq = Hkv * grp;
    const attn_dtype dts[3] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    attn_dtype dt = dts[u8(r) % 3];
    /* ceil(S / block) without overflow; 1 where the block is not valid */
    int64_t nbq = p->block_q > 0 && Sq >= 0 ? Sq / p->block_q + (Sq % p->block_q != 0) : 1;
    int64_t nbk = p->block_k > 0 && Sk >= 0 ? Sk / p->block_k + (Sk % p->block_k != 0) : 1;
    int64_t qs[4] = { B, Sq, Hq, D }, ks[4] = { B, Sk, Hkv, D }, ms[4] = { B, Hq, nbq, nbk };
    int honest = 1;
    attn_tensor q, k, bm;
    make_tensor(f, r, &q, 4, dt, qs, &honest);
    make_tensor(f, r, &k, 4, dt, ks, &honest);
    make_tensor(f, r, &bm, 4, ATTN_U8, ms, &honest);
    if (honest && q.ndim == 4 && k.ndim == 4) {
        uint64_t w = sat_mul(sat_mul(shape_work(&q, 3), clamp_dim(k.shape[1]) + 1),
                             clamp_dim(q.shape[3]) + 1);
        if (w > FUZZ_MAX_WORK)
            return;
    }
    check_status("attn_block_select", attn_block_select(f->ctx, p, &q, &k, &bm));
}


/* ---- attn_kv_cache and attn_decode ------------------------------------------------ */

/* A sequence id: mostly a valid one, sometimes anything. */
static int32_t seq_id(rd *r, int32_t max_seqs)
{
    uint8_t b = u8(r);
    if (b < 220) return max_seqs > 0 ? (int32_t)(b % (uint32_t)max_seqs) : 0;
    return b % 2 ? -1 - (int32_t)(b % 3) : (int32_t)u32(r);
}

/* n tokens of keys [n, H, D] and values [n, H, Dv] for append or read;
 * returns 0 when an honest pair is over the work cap (skip the call). */
static int kv_tokens(fz *f, rd *r, attn_tensor *k, attn_tensor *v, int64_t n, int64_t H,
                     int64_t D, int64_t Dv)
{
    static const attn_dtype dts[3] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    int honest = 1;
    int64_t ks[3] = { n, H, D }, vs[3] = { n, H, Dv };
    make_tensor(f, r, k, 3, dts[u8(r) % 3], ks, &honest);
    make_tensor(f, r, v, 3, dts[u8(r) % 3], vs, &honest);
    return !honest || sat_mul(shape_work(k, 3), 2) <= FUZZ_MAX_WORK;
}

/* A cache from a fuzzed description (a pool of at most a few hundred KB
 * when the description is valid), then a few operations on it: append,
 * truncate, fork, remove, read, decode. */
static void fuzz_kv(fz *f, rd *r)
{
    attn_kv_cache_desc d = ATTN_KV_CACHE_DESC_INIT;
    static const attn_dtype sdts[5] = { ATTN_F32, ATTN_F16, ATTN_BF16, ATTN_Q8, ATTN_Q4 };
    uint8_t b = u8(r);
    d.dtype = b < 240 ? sdts[b % 5] : (attn_dtype)(int8_t)u8(r);
    d.num_kv_heads = u8(r) < 240 ? 1 + u8(r) % 3 : (int32_t)u32(r);
    uint8_t hd = u8(r);
    d.head_dim = hd < 200 ? 32 * (1 + hd % 2) : (hd < 230 ? 1 + hd % 40 : (int32_t)u32(r));
    d.head_dim_v = u8(r) < 200 ? 0 : (int32_t)(u8(r) % 70) - 1;
    d.page_size = u8(r) < 230 ? 1 + u8(r) % 9 : (int32_t)u32(r);
    d.max_pages = u8(r) < 230 ? 1 + u8(r) % 12 : scalar64(r);
    d.max_seqs = u8(r) < 230 ? 1 + u8(r) % 4 : (int32_t)u32(r);
    if (u8(r) >= 200) {
        d.stream_window = u8(r) < 200 ? 1 + u8(r) % 9 : scalar64(r);
        d.stream_sink = u8(r) < 200 ? u8(r) % 4 : scalar64(r);
    }
    if (u8(r) >= 250) {
        static const size_t sizes[] = { 0, 1, offsetof(attn_kv_cache_desc, device),
                                        sizeof(attn_kv_cache_desc) + 8, SIZE_MAX };
        d.size = sizes[u8(r) % 5];
    }
    if (u8(r) >= 250)
        d.device = (int32_t)u32(r);
    /* keep a valid-looking pool and sequence table small: the harness's
     * memory, not a contract */
    if (d.max_seqs > 4096)
        return;
    if (d.head_dim > 0 && d.page_size > 0 && d.max_pages > 0 && d.num_kv_heads > 0) {
        uint64_t tok = sat_mul((uint64_t)d.num_kv_heads,
                               (uint64_t)d.head_dim + (uint64_t)(d.head_dim_v > 0 ? d.head_dim_v
                                                                              : d.head_dim));
        if (sat_mul(sat_mul(tok, 4), sat_mul((uint64_t)d.page_size, (uint64_t)d.max_pages)) >
            FUZZ_MAX_BYTES)
            return;
    }
    attn_kv_cache *c = NULL;
    attn_status s = attn_kv_cache_create(f->ctx, &d, &c);
    check_status("attn_kv_cache_create", s);
    if (s != ATTN_OK)
        return;
    const int64_t H = d.num_kv_heads, D = d.head_dim, Dv = d.head_dim_v ? d.head_dim_v : D;
    const attn_dtype dts[3] = { ATTN_F32, ATTN_F16, ATTN_BF16 };
    for (int op = 0; op < 6 && r->n; op++) {
        int honest = 1;
        int32_t seq = seq_id(r, d.max_seqs);
        switch (u8(r) % 8) {
        case 0: case 1: case 2: {                               /* append */
            attn_tensor k, v;
            if (kv_tokens(f, r, &k, &v, u8(r) < 230 ? u8(r) % 12 : dim(r), H, D, Dv))
                check_status("attn_kv_cache_append", attn_kv_cache_append(c, seq, &k, &v));
            break;
        }
        case 3: {
            int64_t len = u8(r) < 200 ? u8(r) % 20 : scalar64(r);
            check_status("attn_kv_cache_truncate", attn_kv_cache_truncate(c, seq, len));
            break;
        }
        case 4: {
            int32_t dst = seq_id(r, d.max_seqs);
            int64_t len = u8(r) < 200 ? u8(r) % 20 : scalar64(r);
            check_status("attn_kv_cache_fork", attn_kv_cache_fork(c, seq, dst, len));
            break;
        }
        case 5: {
            if (u8(r) % 2) {
                check_status("attn_kv_cache_remove", attn_kv_cache_remove(c, seq));
            } else {
                int64_t start = u8(r) < 200 ? u8(r) % 12 : scalar64(r);
                attn_tensor k, v;
                if (!kv_tokens(f, r, &k, &v, u8(r) < 200 ? u8(r) % 12 : dim(r), H, D, Dv))
                    break;
                uint8_t w = u8(r);
                check_status("attn_kv_cache_read",
                             attn_kv_cache_read(c, seq, start, w == 255 ? NULL : &k,
                                                w == 254 ? NULL : &v));
            }
            break;
        }
        default: {                                              /* decode */
            attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
            p.causal = u8(r) % 2;
            p.window_left = u8(r) < 160 ? -1 : scalar64(r);
            p.sink_tokens = u8(r) < 200 ? 0 : scalar64(r);
            p.softcap = u8(r) < 200 ? 0.0f : fval(r, 5.0f);
            p.score = u8(r) < 220 ? ATTN_SCORE_SOFTMAX : (attn_score)(u8(r) % 3);
            int64_t B = u8(r) < 230 ? 1 + u8(r) % 3 : dim(r);
            int64_t Sq = u8(r) < 230 ? 1 + u8(r) % 3 : dim(r);
            int64_t Hq = H * (1 + u8(r) % 2);
            if (u8(r) >= 240) Hq = dim(r);
            int32_t seqs[8];
            for (int i = 0; i < 8; i++)
                seqs[i] = seq_id(r, d.max_seqs);
            attn_tensor q, out, lse;
            int64_t qs[4] = { B, Sq, Hq, D }, os[4] = { B, Sq, Hq, Dv }, ls[3] = { B, Hq, Sq };
            make_tensor(f, r, &q, 4, dts[u8(r) % 3], qs, &honest);
            make_tensor(f, r, &out, 4, dts[u8(r) % 3], os, &honest);
            int has_lse = u8(r) % 3 == 0;
            if (has_lse) make_tensor(f, r, &lse, 3, ATTN_F32, ls, &honest);
            /* seqs holds B ids (the contract); a larger B gets NULL */
            const int32_t *ps = q.ndim == 4 && q.shape[0] >= 0 && q.shape[0] <= 8 ? seqs : NULL;
            if (honest && q.ndim == 4 &&
                sat_mul(shape_work(&q, 4), sat_mul((uint64_t)d.max_pages,
                                                   (uint64_t)d.page_size)) > 16 * FUZZ_MAX_WORK)
                break;
            check_status("attn_decode", attn_decode(f->ctx, &p, &q, c, ps, &out,
                                                    has_lse ? &lse : NULL));
            break;
        }
        }
    }
    attn_kv_cache_destroy(c);
}

static attn_context *g_ctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ctx) {
        attn_options o = ATTN_OPTIONS_INIT;
        o.num_threads = 1;   /* fast, deterministic runs */
        if (attn_context_create(&o, &g_ctx) != ATTN_OK) {
            fprintf(stderr, "fuzz_api: attn_context_create: %s\n", attn_last_error());
            abort();
        }
    }
    fz f;
    memset(&f, 0, sizeof f);
    f.ctx = g_ctx;
    rd r = { data, size };
    switch (u8(&r) % 16) {
    case 15: fuzz_merge(&f, &r); break;
    case 14: case 13: fuzz_linear(&f, &r); break;
    case 12: case 11: fuzz_neighborhood(&f, &r); break;
    case 10: fuzz_block_select(&f, &r); break;
    case 9: fuzz_kv(&f, &r); break;
    default: fuzz_sdpa(&f, &r); break;
    }
    for (int i = 0; i < f.nallocs; i++) free(f.allocs[i]);
    for (int i = 0; i < f.nbufs; i++) attn_buffer_destroy(f.bufs[i]);
    return 0;
}

#ifndef ATTN_FUZZ_LIBFUZZER
/* Standalone driver: weak, so that libFuzzer's own main wins if linked. */
int main(int argc, char **argv) __attribute__((weak));
int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int a = 1; a < argc; a++) {
            FILE *fp = fopen(argv[a], "rb");
            if (!fp) { perror(argv[a]); return 2; }
            static uint8_t buf[1 << 16];
            size_t n = fread(buf, 1, sizeof buf, fp);
            fclose(fp);
            fprintf(stderr, "fuzz_api: running %s (%zu bytes)\n", argv[a], n);
            LLVMFuzzerTestOneInput(buf, n);
        }
        return 0;
    }
    const char *e = getenv("ATTN_FUZZ_RUNS");
    long runs = e ? atol(e) : 20000;
    const char *q = getenv("ATTN_TEST_QUICK");
    if (!e && q && *q && strcmp(q, "0") != 0) runs = 3000;
    const char *se = getenv("ATTN_FUZZ_SEED");
    uint64_t s = se ? strtoull(se, NULL, 0) : 0x5eed5eedULL;
    const char *save = getenv("ATTN_FUZZ_SAVE");
    uint8_t buf[512];
    for (long i = 0; i < runs; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        size_t n = (size_t)(s % sizeof buf);
        for (size_t j = 0; j < n; j++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            /* bias towards the decoder's "ordinary" branches most of the time */
            buf[j] = (uint8_t)((s >> 11) % 4 ? (s >> 24) % 160 : (s >> 32));
        }
        if (save) {   /* the input about to run, for reproducing a crash */
            FILE *fp = fopen(save, "wb");
            if (fp) { fwrite(buf, 1, n, fp); fclose(fp); }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    attn_context_destroy(g_ctx);
    printf("fuzz_api: %ld inputs, no crash\n", runs);
    return 0;
}
#endif
