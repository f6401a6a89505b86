/* attn-ab: two builds of libattn side by side in one process, their
 * attn_neighborhood calls alternated call by call on the same tensors.
 *
 * Why: a shared or virtual machine's speed drifts by several percent over
 * minutes (the 2-core development VM: 4%), so two attn-bench runs one after
 * the other cannot tell a 1% change from the drift. Here every call of build
 * A has a call of build B next to it (A B, then B A, ...), and the ratio of
 * the two is taken pair by pair: the drift cancels, and the quartiles of the
 * ratios say how far to trust the median.
 *
 * Each build is loaded with dlopen(RTLD_LOCAL) from its own path (a copy of
 * libattn.so.0 per build: same soname, different files), with its own
 * context and so its own kept workspace; they share the OpenMP runtime.
 *
 *   attn-ab [options] LIB_A LIB_B [LIB_C ...]
 *     --nb GRID:K  grid of 1-3 axes and kernel, one size or one per axis
 *                  (default 128x128:13; 16x32x32:3x7x7)
 *     --hq H       heads (default 4), --hkv H (default hq)
 *     --d D        head size (default 64)
 *     --threads T  threads per context (default 0: all)
 *     --calls N    calls per build (default 100)
 *     --before self   each timed call right after an untimed call of the
 *                     same build, so that it finds the caches as that build
 *                     leaves them (what attn-bench's repeated calls see);
 *                     the default lets each call follow the other build's
 *     --before flush  each timed call after 64 MiB of other data was
 *                     written, so that no call finds the tensors in cache
 *     --offset B   the tensors start B bytes past a 64-byte boundary
 *                  (default 0; malloc's blocks start 16 bytes past one)
 *
 * Which one matters: a change to the order in which tasks walk the grid
 * changes which tensor rows the call leaves in the L3 for the next one,
 * and the default alternation then measures how well each build uses the
 * other's leftovers (the neighborhood by-heads schedule: 0.955 there,
 * 0.974-0.981 with self, 0.952-0.954 with flush). Kernel changes that keep
 * the order measure about alike. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "attn.h"

#define MAX_LIBS 8

typedef attn_status (*context_create_fn)(const attn_options *, attn_context **);
typedef void (*context_destroy_fn)(attn_context *);
typedef attn_status (*neighborhood_fn)(attn_context *, const attn_neighborhood_params *,
                                       const attn_tensor *, const attn_tensor *,
                                       const attn_tensor *, const attn_tensor *,
                                       const attn_tensor *);
typedef const char *(*last_error_fn)(void);

typedef struct build {
    const char *path;
    void *dl;
    attn_context *ctx;
    context_destroy_fn destroy;
    neighborhood_fn nb;
    last_error_fn err;
    double *ms;            /* [calls] */
} build;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* Uniform in [-1, 1), the same sequence for every run. */
static void fill(float *x, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(*s >> 40) * (2.0 / 16777216.0) - 1.0);
    }
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median and quartiles of v[0..n) (sorted in place). */
static void quartiles(double *v, int n, double q[3])
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    q[0] = v[n / 4];
    q[1] = v[n / 2];
    q[2] = v[(3 * n) / 4];
}

static int load(build *b, int threads, int calls)
{
    b->dl = dlopen(b->path, RTLD_NOW | RTLD_LOCAL);
    if (!b->dl) {
        fprintf(stderr, "attn-ab: %s\n", dlerror());
        return -1;
    }
    context_create_fn create = (context_create_fn)dlsym(b->dl, "attn_context_create");
    b->destroy = (context_destroy_fn)dlsym(b->dl, "attn_context_destroy");
    b->nb = (neighborhood_fn)dlsym(b->dl, "attn_neighborhood");
    b->err = (last_error_fn)dlsym(b->dl, "attn_last_error");
    if (!create || !b->destroy || !b->nb || !b->err) {
        fprintf(stderr, "attn-ab: %s is not a libattn with attn_neighborhood\n", b->path);
        return -1;
    }
    attn_options o = ATTN_OPTIONS_INIT;
    o.num_threads = threads;
    if (create(&o, &b->ctx) != ATTN_OK) {
        fprintf(stderr, "attn-ab: %s: %s\n", b->path, b->err());
        return -1;
    }
    b->ms = calloc((size_t)calls, sizeof *b->ms);
    return b->ms ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: attn-ab [--nb GRID:K] [--hq H] [--hkv H] [--d D] [--threads T] "
                    "[--calls N] [--before self|flush] [--offset B] LIB_A LIB_B [LIB_C ...]\n");
}

/* "AxBxC" up to ':' or the end into n[0..2]: the number of values (1-3),
 * or -1 if it is not such a list of positive numbers. */
static int axis_list(const char *s, int64_t n[3])
{
    int k = 0;
    for (;;) {
        char *end;
        const long long x = strtoll(s, &end, 10);
        if (end == s || x < 1 || k == 3)
            return -1;
        n[k++] = x;
        if (*end != 'x')
            return *end == ':' || *end == '\0' ? k : -1;
        s = end + 1;
    }
}

/* n floats from `offset` bytes past a 64-byte boundary (free the result). */
static float *aligned_floats(size_t n, int offset)
{
    void *p = NULL;
    return posix_memalign(&p, 64, n * sizeof(float) + (size_t)offset) ? NULL : (float *)p;
}

int main(int argc, char **argv)
{
    int64_t grid[3] = { 128, 128, 1 }, kern[3] = { 13, 13, 13 }, hq = 4, hkv = 0, d = 64;
    int naxes = 2;
    const char *shape_name = "128x128:13";
    int threads = 0, calls = 100, nlib = 0, before = 0;   /* 0 other build, 1 self, 2 flush */
    int offset = 0;
    build libs[MAX_LIBS];
    memset(libs, 0, sizeof libs);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--nb") && v) {
            const char *colon = strchr(v, ':');
            int nk;
            if (!colon || (naxes = axis_list(v, grid)) < 1 ||
                (nk = axis_list(colon + 1, kern)) < 1 || (nk != 1 && nk != naxes))
                return usage(), 2;
            for (int x = nk; x < 3; x++)
                kern[x] = kern[0];
            shape_name = v;
            i++;
        } else if (!strcmp(a, "--hq") && v) {
            hq = atoll(v), i++;
        } else if (!strcmp(a, "--hkv") && v) {
            hkv = atoll(v), i++;
        } else if (!strcmp(a, "--d") && v) {
            d = atoll(v), i++;
        } else if (!strcmp(a, "--threads") && v) {
            threads = atoi(v), i++;
        } else if (!strcmp(a, "--calls") && v) {
            calls = atoi(v), i++;
        } else if (!strcmp(a, "--offset") && v) {
            offset = atoi(v), i++;
        } else if (!strcmp(a, "--before") && v && (!strcmp(v, "self") || !strcmp(v, "flush"))) {
            before = !strcmp(v, "self") ? 1 : 2, i++;
        } else if (a[0] == '-' || nlib == MAX_LIBS) {
            return usage(), 2;
        } else {
            libs[nlib++].path = a;
        }
    }
    if (!hkv)
        hkv = hq;
    if (nlib < 2 || calls < 4 || hq < 1 || hkv < 1 || d < 1 || offset < 0 ||
        offset >= 64 || offset % 4)
        return usage(), 2;

    /* q, k, v in [-1, 1), the same for every build */
    int64_t tokens = 1, window = 1;
    for (int x = 0; x < naxes; x++)
        tokens *= grid[x], window *= kern[x];
    const size_t nq = (size_t)(tokens * hq * d), nkv = (size_t)(tokens * hkv * d);
    /* 64-byte aligned as attn-bench's tensors, or offset past that */
    float *qm = aligned_floats(nq, offset), *km = aligned_floats(nkv, offset);
    float *vm = aligned_floats(nkv, offset), *om = aligned_floats(nq, offset);
    if (!qm || !km || !vm || !om)
        return fprintf(stderr, "attn-ab: out of memory\n"), 1;
    float *q = (float *)((char *)qm + offset), *k = (float *)((char *)km + offset);
    float *v = (float *)((char *)vm + offset), *o = (float *)((char *)om + offset);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    fill(q, nq, &seed);
    fill(k, nkv, &seed);
    fill(v, nkv, &seed);
    attn_tensor tq = { 0 }, tk, tv, to;
    tq.dtype = ATTN_F32;
    tq.ndim = naxes + 3;
    tq.shape[0] = 1;
    for (int x = 0; x < naxes; x++)
        tq.shape[1 + x] = grid[x];
    tq.shape[naxes + 1] = hq;
    tq.shape[naxes + 2] = d;
    tk = tv = to = tq;
    tk.shape[naxes + 1] = tv.shape[naxes + 1] = hkv;
    tq.data = q, tk.data = k, tv.data = v, to.data = o;
    attn_neighborhood_params p = ATTN_NEIGHBORHOOD_PARAMS_INIT;
    p.ndim = naxes;
    for (int x = 0; x < 3; x++)
        p.kernel_size[x] = kern[x];

    int rc = 0;
    for (int l = 0; l < nlib && !rc; l++)
        rc = load(&libs[l], threads, calls);
    /* a few warm-up calls each: workspaces allocated, pages touched */
    for (int l = 0; l < nlib && !rc; l++)
        for (int w = 0; w < 3 && !rc; w++)
            if (libs[l].nb(libs[l].ctx, &p, &tq, &tk, &tv, &to, NULL) != ATTN_OK) {
                fprintf(stderr, "attn-ab: %s: %s\n", libs[l].path, libs[l].err());
                rc = 1;
            }
    const size_t flush_n = before == 2 ? ((size_t)64 << 20) / sizeof(float) : 0;
    float *flush = flush_n ? calloc(flush_n, sizeof *flush) : NULL;
    if (flush_n && !flush)
        return fprintf(stderr, "attn-ab: out of memory\n"), 1;
    for (int c = 0; c < calls && !rc; c++)
        for (int j = 0; j < nlib && !rc; j++) {
            build *b = &libs[c % 2 ? nlib - 1 - j : j];   /* A B ..., then ... B A */
            if (before == 1 && b->nb(b->ctx, &p, &tq, &tk, &tv, &to, NULL) != ATTN_OK) {
                fprintf(stderr, "attn-ab: %s: %s\n", b->path, b->err());
                rc = 1;
                break;
            }
            for (size_t x = 0; x < flush_n; x += 16)
                flush[x] += 1.0f;
            const double t0 = now_ms();
            const attn_status st = b->nb(b->ctx, &p, &tq, &tk, &tv, &to, NULL);
            b->ms[c] = now_ms() - t0;
            if (st != ATTN_OK) {
                fprintf(stderr, "attn-ab: %s: %s\n", b->path, b->err());
                rc = 1;
            }
        }
    double *ratio = rc ? NULL : malloc((size_t)calls * sizeof *ratio);
    if (!rc && !ratio) {
        fprintf(stderr, "attn-ab: out of memory\n");
        rc = 1;
    }
    if (!rc) {
        const double flops = 4.0 * (double)(tokens * hq * d) * (double)window;
        static const char *const after[] = { "the other build's", "its own", "a 64 MiB flush" };
        printf("attn_neighborhood %s, H %lld/%lld, D %lld, f32, %d calls each, alternated, "
               "each after %s\n", shape_name, (long long)hq, (long long)hkv, (long long)d, calls,
               after[before]);
        for (int l = 0; l < nlib; l++) {
            double t[3], r[3];
            for (int c = 0; c < calls; c++)
                ratio[c] = libs[l].ms[c] / libs[0].ms[c];
            quartiles(ratio, calls, r);
            memcpy(ratio, libs[l].ms, (size_t)calls * sizeof *ratio);
            quartiles(ratio, calls, t);
            printf("%c %-40s median %8.3f ms [%.3f, %.3f]  %7.1f GFLOP/s  / A: %.4f "
                   "[%.4f, %.4f]\n", 'A' + l, libs[l].path, t[1], t[0], t[2],
                   flops / t[1] * 1e-6, r[1], r[0], r[2]);
        }
    }
    free(ratio);
    for (int l = 0; l < nlib; l++) {
        if (libs[l].ctx)
            libs[l].destroy(libs[l].ctx);
        free(libs[l].ms);
    }
    free(qm), free(km), free(vm), free(om), free(flush);
    return rc;
}
