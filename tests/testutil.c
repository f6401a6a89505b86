/* Test harness for libattn; see testutil.h. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ref.h"
#include "testutil.h"

long tu_passed, tu_failed;
int tu_quick, tu_verbose;
size_t tu_align;
uint64_t tu_seed;

static uint64_t rs[4];

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tu_rand_u64(void)
{
    uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;
    rs[2] ^= rs[0]; rs[3] ^= rs[1]; rs[1] ^= rs[2]; rs[0] ^= rs[3];
    rs[2] ^= t; rs[3] = rotl(rs[3], 45);
    return r;
}

double tu_uniform(void) { return (double)(tu_rand_u64() >> 11) * (1.0 / 9007199254740992.0); }

double tu_normal(void)
{
    double u1 = tu_uniform(), u2 = tu_uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int tu_randint(int lo, int hi) { return lo + (int)(tu_uniform() * (hi - lo + 1)); }

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int env_flag(const char *n)
{
    const char *e = getenv(n);
    return e && *e && strcmp(e, "0") != 0;
}

void tu_init(const char *name)
{
    const char *s = getenv("ATTN_TEST_SEED");
    if (s && *s)
        tu_seed = strtoull(s, NULL, 0);
    else
        tu_seed = (uint64_t)time(NULL) ^ ((uint64_t)(tu_now() * 1e6) << 20);
    uint64_t x = tu_seed;
    for (int i = 0; i < 4; i++)
        rs[i] = splitmix(&x);
    tu_quick = env_flag("ATTN_TEST_QUICK");
    tu_verbose = env_flag("ATTN_TEST_VERBOSE");
    printf("%s: libattn %s, seed %llu (ATTN_TEST_SEED=%llu to repeat)%s\n", name,
           attn_version(), (unsigned long long)tu_seed, (unsigned long long)tu_seed,
           tu_quick ? ", quick" : "");
    fflush(stdout);
}

int tu_finish(void)
{
    printf("%ld passed, %ld failed\n", tu_passed, tu_failed);
    fflush(stdout);
    return tu_failed ? 1 : 0;
}

const char *tu_dtype_name(attn_dtype dt)
{
    switch (dt) {
    case ATTN_F32: return "f32";
    case ATTN_F16: return "f16";
    case ATTN_BF16: return "bf16";
    case ATTN_U8: return "u8";
    case ATTN_Q8: return "q8";
    case ATTN_Q4: return "q4";
    }
    return "?";
}

const char *tu_layout_name(int l)
{
    static const char *n[] = { "contig", "explicit", "swap12", "padded", "swap12+pad", "inner2" };
    return l >= 0 && l < TU_NLAYOUTS ? n[l] : "?";
}

/* ---- tensors ------------------------------------------------------------ */

#define GUARD_BYTES 256
#define SENTINEL(i) ((unsigned char)(0xA5 ^ ((i) * 29)))

/* Visits every index of a view in row-major order. */
static int next_index(const attn_tensor *t, int64_t *idx)
{
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (++idx[d] < t->shape[d])
            return 1;
        idx[d] = 0;
    }
    return 0;
}

#define FOR_EACH_INDEX(t, idx)                                                   \
    for (int64_t idx[ATTN_MAX_DIMS] = { 0 }, go_ = ref_numel(t) > 0; go_;        \
         go_ = next_index(t, idx))

int tu_tensor_alloc(tu_tensor *x, attn_dtype dt, int ndim, const int64_t *shape, int layout)
{
    memset(x, 0, sizeof *x);
    x->t.dtype = dt;
    x->t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        x->t.shape[i] = shape[i];
    /* storage order: outermost first */
    int order[ATTN_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        order[i] = i;
    if ((layout == TU_SWAP12 || layout == TU_SWAP12_PADDED) && ndim >= 3) {
        order[1] = 2;
        order[2] = 1;
    }
    const int pad = (layout == TU_PADDED || layout == TU_SWAP12_PADDED || layout == TU_INNER2) ? 3 : 0;
    int64_t st = layout == TU_INNER2 ? 2 : 1;
    for (int i = ndim - 1; i >= 0; i--) {
        int d = order[i];
        x->t.stride[d] = st;
        st = st * shape[d] + pad;     /* gap after every row at every level */
    }
    /* span: largest offset + 1 */
    int64_t span = 1, numel = 1;
    for (int i = 0; i < ndim; i++) {
        numel *= shape[i];
        if (shape[i] > 0)
            span += (shape[i] - 1) * x->t.stride[i];
    }
    if (numel == 0)
        span = 0;
    const size_t es = ref_dtype_size(dt);
    x->storage = (size_t)span * es + (pad ? 3 * es : 0);   /* trailing gap too */
    x->total = x->storage + GUARD_BYTES;
    if (tu_align) {
        void *m = NULL;
        x->mem = posix_memalign(&m, tu_align, x->total) ? NULL : m;
    } else {
        x->mem = malloc(x->total);
    }
    x->cover = calloc(x->total, 1);
    if (!x->mem || !x->cover) {
        free(x->mem);
        free(x->cover);
        memset(x, 0, sizeof *x);
        return -1;
    }
    x->t.data = x->mem;
    /* Mark the bytes of view elements. */
    FOR_EACH_INDEX(&x->t, idx) {
        int64_t o = ref_elem_offset(&x->t, idx);
        memset(x->cover + o * es, 1, es);
    }
    if (layout == TU_CONTIG)
        for (int i = 0; i < ndim; i++)
            x->t.stride[i] = 0;
    for (size_t i = 0; i < x->total; i++)
        x->mem[i] = SENTINEL(i);
    return 0;
}

void tu_tensor_free(tu_tensor *x)
{
    free(x->mem);
    free(x->cover);
    memset(x, 0, sizeof *x);
}

attn_tensor tu_slice(const tu_tensor *x, int dim, int64_t start, int64_t len)
{
    attn_tensor t = x->t;
    int zero = 1;
    for (int i = 0; i < t.ndim; i++)
        if (t.stride[i])
            zero = 0;
    if (zero) {
        int64_t s = 1;
        for (int i = t.ndim - 1; i >= 0; i--) {
            t.stride[i] = s;
            s *= t.shape[i];
        }
    }
    t.data = (unsigned char *)t.data + (size_t)(start * t.stride[dim]) * ref_dtype_size(t.dtype);
    t.shape[dim] = len;
    return t;
}

void tu_broadcast_dim(tu_tensor *x, int dim, int64_t n)
{
    x->t = tu_slice(x, dim, 0, 1);      /* explicit strides */
    x->t.shape[dim] = n;
    x->t.stride[dim] = 0;
}

void tu_fill_normal(tu_tensor *x, double mean, double sd)
{
    FOR_EACH_INDEX(&x->t, idx)
        ref_set(&x->t, idx, mean + sd * tu_normal());
}

void tu_fill_uniform(tu_tensor *x, double lo, double hi)
{
    FOR_EACH_INDEX(&x->t, idx)
        ref_set(&x->t, idx, lo + (hi - lo) * tu_uniform());
}

void tu_poison(tu_tensor *x)
{
    for (size_t i = 0; i < x->total; i++)
        x->mem[i] = SENTINEL(i);
    FOR_EACH_INDEX(&x->t, idx)
        ref_set(&x->t, idx, NAN);
}

long tu_check_written(const tu_tensor *x, char *msg, size_t n)
{
    long bad = 0;
    if (n) msg[0] = '\0';
    FOR_EACH_INDEX(&x->t, idx) {
        double v = ref_get(&x->t, idx);
        if (isnan(v)) {
            if (!bad && n) {
                int64_t off = ref_elem_offset(&x->t, idx);
                snprintf(msg, n, "element [%lld,%lld,%lld,%lld] (offset %lld) not written (NaN)",
                         (long long)idx[0], (long long)idx[1], (long long)idx[2],
                         (long long)idx[3], (long long)off);
            }
            bad++;
        }
    }
    for (size_t i = 0; i < x->total; i++)
        if (!x->cover[i] && x->mem[i] != SENTINEL(i)) {
            if (!bad && n)
                snprintf(msg, n, "byte %zu %s the view's elements was written (storage %zu bytes)",
                         i, i >= x->storage ? "past" : "between", x->storage);
            bad++;
        }
    return bad;
}

long tu_check_untouched(const tu_tensor *x)
{
    long bad = 0;
    for (size_t i = 0; i < x->total; i++)
        if (!x->cover[i] && x->mem[i] != SENTINEL(i))
            bad++;
    FOR_EACH_INDEX(&x->t, idx)
        if (!isnan(ref_get(&x->t, idx)))
            bad++;
    return bad;
}

double tu_rel_err(const tu_tensor *x, const double *ref, double *refmax, int64_t *worst)
{
    double rmax = 0.0, emax = 0.0;
    int64_t p = 0, w = 0;
    FOR_EACH_INDEX(&x->t, idx) {
        double r = ref[p];
        if (fabs(r) > rmax)
            rmax = fabs(r);
        p++;
    }
    p = 0;
    const double den = rmax > 1e-30 ? rmax : 1e-30;
    FOR_EACH_INDEX(&x->t, idx) {
        double v = ref_get(&x->t, idx), e = fabs(v - ref[p]) / den;
        if (!(e <= emax)) {             /* NaN counts as worst */
            emax = isnan(e) ? INFINITY : e;
            w = p;
        }
        p++;
    }
    if (refmax) *refmax = rmax;
    if (worst) *worst = w;
    return emax;
}

double tu_lse_err(const tu_tensor *x, const double *ref, int64_t *worst)
{
    double emax = 0.0;
    int64_t p = 0, w = 0;
    FOR_EACH_INDEX(&x->t, idx) {
        double r = ref[p], v = ref_get(&x->t, idx), e;
        if (isnan(r)) {
            p++;
            continue;
        }
        if (isinf(r) || isinf(v) || isnan(v))
            e = (v == r) ? 0.0 : INFINITY;
        else
            e = fabs(v - r) / (fabs(r) > 1.0 ? fabs(r) : 1.0);
        if (e > emax) {
            emax = e;
            w = p;
        }
        p++;
    }
    if (worst) *worst = w;
    return emax;
}
