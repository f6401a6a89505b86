/*
 * libattn: libFuzzer target over attn_sdpa and attn_merge.
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
 * and outputs aliasing inputs. One input in eight is an attn_merge call.
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
    if (u8(&r) % 8 == 7)
        fuzz_merge(&f, &r);
    else
        fuzz_sdpa(&f, &r);
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
