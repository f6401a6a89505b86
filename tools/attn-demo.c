/*
 * attn-demo: the end-to-end check of libattn on this machine.
 *
 * Probes every device (as attn-info does) and, on each device and, for the
 * CPU, on each kernel set the machine and the build can run (contexts with
 * max_isa = scalar, avx2, avx512, neon; a set whose context reports another
 * ISA is skipped), runs a handful of representative attn_sdpa problems:
 *   - causal GQA f32 (S = 512, D = 128), with lse
 *   - bf16 causal sliding window (several batches)
 *   - f16 MQA with logit soft-capping and per-head sink logits, Sq != Sk
 *   - packed variable-length sequences, causal, f32, with lse
 *   - bf16 ALiBi + output gate, Dv != D
 * checks each against the double-precision reference (tests/ref.h): PASS
 * when max |out - ref| / rms(ref) is below a tolerance set by the dtype plus
 * twice the error of storing the exact result in that dtype (and, where lse
 * is asked for, max |lse - ref| <= 1e-3), then times it and prints GFLOP/s
 * as a table. Uses the public API only; exits 1 if a check
 * fails, 2 on a usage error.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "attn.h"
#include "ref.h"

/* ------------------------------------------------------------------------ */
/* Problems                                                                 */
/* ------------------------------------------------------------------------ */

#define MAX_SEQS 8

typedef struct demo_problem {
    const char *name;
    attn_dtype  dtype;
    int64_t     b, hq, hkv, sq, sk, d, dv;
    int         causal;
    int64_t     window_left, window_right;
    float       softcap;
    int         sink_logits;     /* per-head sink logits */
    int         alibi;           /* per-head ALiBi slopes */
    int         gate;            /* output gate [B,Sq,Hq,Dv] */
    int         want_lse;
    int         nseq;            /* varlen: > 0 = packed sequences */
    int32_t     lens_q[MAX_SEQS], lens_k[MAX_SEQS];
} demo_problem;

static const demo_problem problems[] = {
    { "causal GQA f32 S512 D128", ATTN_F32, 1, 8, 2, 512, 512, 128, 128, 1, -1, -1,
      0.0f, 0, 0, 0, 1, 0, { 0 }, { 0 } },
    { "bf16 sliding window 256", ATTN_BF16, 2, 8, 8, 1024, 1024, 64, 64, 1, 255, 0,
      0.0f, 0, 0, 0, 0, 0, { 0 }, { 0 } },
    { "f16 MQA softcap+sinks", ATTN_F16, 1, 4, 1, 200, 333, 96, 96, 0, -1, -1,
      30.0f, 1, 0, 0, 1, 0, { 0 }, { 0 } },
    { "varlen causal f32", ATTN_F32, 1, 6, 2, 0, 0, 64, 64, 1, -1, -1,
      0.0f, 0, 0, 0, 1, 4, { 37, 128, 300, 1 }, { 37, 160, 300, 65 } },
    { "bf16 alibi+gate Dv!=D", ATTN_BF16, 1, 4, 2, 256, 256, 80, 48, 1, -1, -1,
      0.0f, 0, 1, 1, 0, 0, { 0 }, { 0 } },
};
#define NPROB ((int)(sizeof problems / sizeof problems[0]))

static const char *dtype_name(attn_dtype t)
{
    switch (t) {
    case ATTN_F32:  return "f32";
    case ATTN_F16:  return "f16";
    case ATTN_BF16: return "bf16";
    default:        return "?";
    }
}

/* Tolerance on max |out - ref| / rms(ref). The output is stored in the input
 * dtype, so a correct kernel is off by up to one ulp of each element (twice
 * the storage floor: an f32 result just across a rounding boundary from the
 * exact one rounds the other way), plus f32 accumulation error, allowed for
 * by a base that grows with the coarseness of the input dtype. */
static double tolerance(attn_dtype t, double floor_err)
{
    double base = t == ATTN_F32 ? 1e-4 : t == ATTN_F16 ? 1e-3 : 8e-3;
    return base + 2.0 * floor_err;
}

/* Visible (query, key) pairs of one sequence and head (see attn-bench). */
static double visible_pairs(int64_t sq, int64_t sk, int causal, int64_t wl, int64_t wr)
{
    double pairs = 0.0;
    for (int64_t i = 0; i < sq; i++) {
        int64_t diag = i + sk - sq, hi = sk - 1, lo = 0;
        if (causal && diag < hi)
            hi = diag;
        if (wr >= 0 && diag + wr < hi)
            hi = diag + wr;
        if (wl >= 0 && diag - wl > lo)
            lo = diag - wl;
        if (hi >= lo)
            pairs += (double)(hi - lo + 1);
    }
    return pairs;
}

static double problem_flops(const demo_problem *p)
{
    double pairs = 0.0;
    if (p->nseq > 0) {
        for (int s = 0; s < p->nseq; s++)
            pairs += visible_pairs(p->lens_q[s], p->lens_k[s], p->causal, p->window_left,
                                   p->window_right);
    } else {
        pairs = (double)p->b * visible_pairs(p->sq, p->sk, p->causal, p->window_left, p->window_right);
    }
    return 2.0 * (double)(p->d + p->dv) * (double)p->hq * pairs;
}

/* ------------------------------------------------------------------------ */
/* Inputs, built once per problem, shared by every device and ISA           */
/* ------------------------------------------------------------------------ */

typedef struct demo_data {
    const demo_problem *p;
    int64_t     b, sq, sk;               /* tensor dims (varlen: 1, total_q, total_k) */
    int32_t     cu_q[MAX_SEQS + 1], cu_k[MAX_SEQS + 1];
    void       *q, *k, *v, *gate;
    size_t      q_bytes, k_bytes, v_bytes, gate_bytes, out_elems, lse_elems;
    float       slopes[64], sinks[64];
    attn_tensor tq, tk, tv, tgate;
    attn_sdpa_params params;
    double     *ref_out, *ref_lse;
    double      ref_rms;
    double      ref_floor;           /* max |round_to(dtype, ref) - ref| / rms: storage error */
    double      flops;
} demo_data;

static uint64_t rng_state = UINT64_C(0x243F6A8885A308D3);

static double rnd(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static void *alloc64(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? (bytes + 63) & ~(size_t)63 : 64))
        return NULL;
    return p;
}

/* n random values in [-amp, amp) stored as dtype t. */
static void *random_array(attn_dtype t, size_t n, double amp, size_t *bytes)
{
    size_t es = attn_dtype_size(t);
    *bytes = n * es;
    void *a = alloc64(*bytes);
    if (!a)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        float f = (float)((2.0 * rnd() - 1.0) * amp);
        if (t == ATTN_F32)
            ((float *)a)[i] = f;
        else if (t == ATTN_F16)
            ((uint16_t *)a)[i] = ref_f32_to_f16(f);
        else
            ((uint16_t *)a)[i] = ref_f32_to_bf16(f);
    }
    return a;
}

static void data_free(demo_data *x)
{
    free(x->q);
    free(x->k);
    free(x->v);
    free(x->gate);
    free(x->ref_out);
    free(x->ref_lse);
    memset(x, 0, sizeof *x);
}

static int data_build(const demo_problem *p, demo_data *x)
{
    memset(x, 0, sizeof *x);
    x->p = p;
    x->b = p->b;
    x->sq = p->sq;
    x->sk = p->sk;
    attn_sdpa_params prm = ATTN_SDPA_PARAMS_INIT;
    if (p->nseq > 0) {
        x->b = 1;
        x->cu_q[0] = x->cu_k[0] = 0;
        for (int s = 0; s < p->nseq; s++) {
            x->cu_q[s + 1] = x->cu_q[s] + p->lens_q[s];
            x->cu_k[s + 1] = x->cu_k[s] + p->lens_k[s];
        }
        x->sq = x->cu_q[p->nseq];
        x->sk = x->cu_k[p->nseq];
        prm.cu_seqlens_q = x->cu_q;
        prm.cu_seqlens_k = x->cu_k;
        prm.num_seqs = p->nseq;
    }
    size_t nq = (size_t)(x->b * x->sq * p->hq * p->d), nk = (size_t)(x->b * x->sk * p->hkv * p->d);
    size_t nv = (size_t)(x->b * x->sk * p->hkv * p->dv);
    x->out_elems = (size_t)(x->b * x->sq * p->hq * p->dv);
    x->lse_elems = (size_t)(x->b * p->hq * x->sq);
    /* q scaled up a little so that the softmax is not nearly uniform. */
    if (!(x->q = random_array(p->dtype, nq, 2.0, &x->q_bytes)) ||
        !(x->k = random_array(p->dtype, nk, 1.0, &x->k_bytes)) ||
        !(x->v = random_array(p->dtype, nv, 1.0, &x->v_bytes)))
        return -1;
    x->tq = attn_tensor_4d(x->q, p->dtype, x->b, x->sq, p->hq, p->d);
    x->tk = attn_tensor_4d(x->k, p->dtype, x->b, x->sk, p->hkv, p->d);
    x->tv = attn_tensor_4d(x->v, p->dtype, x->b, x->sk, p->hkv, p->dv);
    prm.causal = p->causal;
    prm.window_left = p->window_left;
    prm.window_right = p->window_right;
    prm.softcap = p->softcap;
    for (int h = 0; h < p->hq && h < 64; h++) {
        x->slopes[h] = (float)pow(2.0, -8.0 * (h + 1) / (double)p->hq);
        x->sinks[h] = (float)(2.0 * rnd() - 0.5);
    }
    if (p->alibi)
        prm.alibi_slopes = x->slopes;
    if (p->sink_logits)
        prm.sink_logits = x->sinks;
    if (p->gate) {
        if (!(x->gate = random_array(p->dtype, x->out_elems, 3.0, &x->gate_bytes)))
            return -1;
        x->tgate = attn_tensor_4d(x->gate, p->dtype, x->b, x->sq, p->hq, p->dv);
        prm.gate = &x->tgate;
    }
    x->params = prm;
    x->flops = problem_flops(p);

    x->ref_out = malloc(x->out_elems * sizeof(double));
    x->ref_lse = malloc(x->lse_elems * sizeof(double));
    if (!x->ref_out || !x->ref_lse)
        return -1;
    if (ref_sdpa(&x->params, &x->tq, &x->tk, &x->tv, x->ref_out, p->want_lse ? x->ref_lse : NULL))
        return -1;
    double ss = 0.0;
    for (size_t i = 0; i < x->out_elems; i++)
        ss += x->ref_out[i] * x->ref_out[i];
    x->ref_rms = sqrt(ss / (double)(x->out_elems ? x->out_elems : 1));
    double fl = 0.0;
    for (size_t i = 0; i < x->out_elems; i++) {
        double e = fabs(ref_round_to(p->dtype, x->ref_out[i]) - x->ref_out[i]);
        if (e > fl)
            fl = e;
    }
    x->ref_floor = fl / (x->ref_rms > 0 ? x->ref_rms : 1.0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Running one problem on one context / device                              */
/* ------------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct demo_result {
    int    ran;          /* 0 = not run (unsupported), 1 = ran */
    int    pass;
    double err, lse_err, gflops, ms;
    char   note[160];
} demo_result;

/* A device copy of a host array (device > 0), or NULL + the host pointer. */
typedef struct dev_arr {
    attn_buffer *buf;
} dev_arr;

static attn_status to_device(attn_context *ctx, int device, void *host, size_t bytes,
                             attn_tensor *t, dev_arr *a)
{
    a->buf = NULL;
    if (device == 0)
        return ATTN_OK;
    attn_status s = attn_buffer_create(ctx, device, bytes ? bytes : 1, &a->buf);
    if (s == ATTN_OK && host)
        s = attn_buffer_write(a->buf, 0, host, bytes);
    if (s != ATTN_OK) {
        attn_buffer_destroy(a->buf);
        a->buf = NULL;
        return s;
    }
    t->data = NULL;
    t->buffer = a->buf;
    t->offset = 0;
    return ATTN_OK;
}

static void run_problem(attn_context *ctx, int device, demo_data *x, double min_time,
                        demo_result *r)
{
    const demo_problem *p = x->p;
    memset(r, 0, sizeof *r);
    size_t out_bytes = x->out_elems * attn_dtype_size(p->dtype);
    size_t lse_bytes = x->lse_elems * sizeof(float);
    void *out = alloc64(out_bytes), *lse = alloc64(lse_bytes);
    dev_arr aq = { 0 }, ak = { 0 }, av = { 0 }, ag = { 0 }, ao = { 0 }, al = { 0 };
    attn_tensor tq = x->tq, tk = x->tk, tv = x->tv, tg = x->tgate;
    attn_tensor to = attn_tensor_4d(out, p->dtype, x->b, x->sq, p->hq, p->dv);
    attn_tensor tl = { 0 };
    tl.data = lse;
    tl.dtype = ATTN_F32;
    tl.ndim = 3;
    tl.shape[0] = x->b;
    tl.shape[1] = p->hq;
    tl.shape[2] = x->sq;
    attn_sdpa_params prm = x->params;
    attn_status s = ATTN_OK;
    if (!out || !lse) {
        snprintf(r->note, sizeof r->note, "out of host memory");
        goto done;
    }
    /* NaN-fill the outputs so that anything not written shows up. */
    memset(out, 0xff, out_bytes);
    memset(lse, 0xff, lse_bytes);
    if ((s = to_device(ctx, device, x->q, x->q_bytes, &tq, &aq)) ||
        (s = to_device(ctx, device, x->k, x->k_bytes, &tk, &ak)) ||
        (s = to_device(ctx, device, x->v, x->v_bytes, &tv, &av)) ||
        (s = to_device(ctx, device, out, out_bytes, &to, &ao)) ||
        (p->want_lse && (s = to_device(ctx, device, lse, lse_bytes, &tl, &al))) ||
        (p->gate && (s = to_device(ctx, device, x->gate, x->gate_bytes, &tg, &ag))))
        goto lib_error;
    if (p->gate)
        prm.gate = &tg;
    const attn_tensor *lsep = p->want_lse ? &tl : NULL;

    s = attn_sdpa(ctx, &prm, &tq, &tk, &tv, &to, lsep);
    if (s != ATTN_OK)
        goto lib_error;
    if (ao.buf && (s = attn_buffer_read(ao.buf, 0, out, out_bytes)) != ATTN_OK)
        goto lib_error;
    if (al.buf && (s = attn_buffer_read(al.buf, 0, lse, lse_bytes)) != ATTN_OK)
        goto lib_error;
    r->ran = 1;

    /* Correctness. */
    attn_tensor ho = attn_tensor_4d(out, p->dtype, x->b, x->sq, p->hq, p->dv);
    double maxerr = 0.0;
    int bad = 0;
    size_t i = 0;
    for (int64_t b = 0; b < x->b; b++)
        for (int64_t sq = 0; sq < x->sq; sq++)
            for (int64_t h = 0; h < p->hq; h++)
                for (int64_t c = 0; c < p->dv; c++, i++) {
                    int64_t idx[4] = { b, sq, h, c };
                    double got = ref_get(&ho, idx), e = fabs(got - x->ref_out[i]);
                    if (!isfinite(got))
                        bad = 1;
                    else if (e > maxerr)
                        maxerr = e;
                }
    r->err = bad ? INFINITY : maxerr / (x->ref_rms > 0 ? x->ref_rms : 1.0);
    r->pass = r->err <= tolerance(p->dtype, x->ref_floor);
    if (p->want_lse) {
        double le = 0.0;
        const float *lf = lse;
        for (size_t j = 0; j < x->lse_elems; j++) {
            double want = x->ref_lse[j], got = lf[j];
            double e = (isinf(want) && want < 0) ? (isinf(got) && got < 0 ? 0.0 : INFINITY)
                                                 : fabs(got - want);
            if (isnan(got) || e > le)
                le = isnan(got) ? INFINITY : e;
        }
        r->lse_err = le;
        if (!(le <= 1e-3))
            r->pass = 0;
    }

    /* Throughput: median of repeats adding up to about min_time. */
    {
        double t[64];
        int n = 0;
        double total = 0.0;
        while (n < 64) {
            double t0 = now();
            s = attn_sdpa(ctx, &prm, &tq, &tk, &tv, &to, lsep);
            t[n] = now() - t0;
            if (s != ATTN_OK)
                goto lib_error;
            total += t[n++];
            if (total >= min_time && n >= 3)
                break;
        }
        for (int a = 1; a < n; a++)           /* insertion sort */
            for (int c = a; c > 0 && t[c - 1] > t[c]; c--) {
                double tmp = t[c];
                t[c] = t[c - 1];
                t[c - 1] = tmp;
            }
        double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
        r->ms = med * 1e3;
        r->gflops = x->flops / med * 1e-9;
    }
    goto done;

lib_error:
    r->ran = s == ATTN_ERR_UNSUPPORTED ? 0 : 1;
    r->pass = s == ATTN_ERR_UNSUPPORTED;
    snprintf(r->note, sizeof r->note, "%s: %s", attn_status_string(s), attn_last_error());
done:
    attn_buffer_destroy(aq.buf);
    attn_buffer_destroy(ak.buf);
    attn_buffer_destroy(av.buf);
    attn_buffer_destroy(ag.buf);
    attn_buffer_destroy(ao.buf);
    attn_buffer_destroy(al.buf);
    free(out);
    free(lse);
}

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */
/* ------------------------------------------------------------------------ */

static const char *device_type_name(attn_device_type t)
{
    switch (t) {
    case ATTN_DEVICE_CPU:    return "cpu";
    case ATTN_DEVICE_OPENCL: return "opencl";
    case ATTN_DEVICE_VULKAN: return "vulkan";
    }
    return "unknown";
}

static void print_device(int d, const attn_device_info *in)
{
    printf("device %d: %s %s%s\n", d, device_type_name(in->type), in->name[0] ? in->name : "(unknown)",
           in->is_software ? " (software)" : "");
    if (in->vendor[0])
        printf("    vendor %s%s%s\n", in->vendor, in->driver[0] ? ", driver " : "", in->driver);
    printf("    compute units %d", in->compute_units);
    if (in->global_mem_bytes)
        printf(", memory %.1f GiB", (double)in->global_mem_bytes / (1024.0 * 1024 * 1024));
    if (in->type != ATTN_DEVICE_CPU)
        printf(", fp16 %s", in->fp16 ? "yes" : "no");
    printf("\n");
    if (in->type == ATTN_DEVICE_CPU) {
        char feats[512];
        attn_cpu_features_string(in->cpu_features, feats, sizeof feats);
        printf("    cpu features: %s\n", feats[0] ? feats : "(none)");
        printf("    kernel set %s, best %s\n", attn_isa_name(in->isa), attn_isa_name(in->best_isa));
    }
}

/* One column of the results: a device, or the CPU with one kernel set. */
typedef struct demo_target {
    char        label[48];
    int         device;
    int         isa;          /* CPU: max_isa for the context, else -1 */
    demo_result res[NPROB];
} demo_target;

static void usage(FILE *f)
{
    fputs("usage: attn-demo [--threads N] [--isa NAME] [--device N] [--time SEC] [--help]\n"
          "Probes every device, then runs a handful of attn_sdpa problems on each device and,\n"
          "on the CPU, on each kernel set the machine can run (scalar, avx2, avx512, neon),\n"
          "checks them against the double-precision reference and prints GFLOP/s.\n"
          "  --threads N   CPU threads (default: all cores / OMP_NUM_THREADS)\n"
          "  --isa NAME    only this CPU kernel set\n"
          "  --device N    only this device\n"
          "  --time SEC    timing per problem and target (default 0.2)\n"
          "Error = max |out - ref| / rms(ref). store/rms = max |round_to_dtype(ref) - ref|\n"
          "/ rms(ref), the error of storing the exact result in the output dtype (a floor).\n"
          "PASS when err/rms <= base + 2 * store/rms, base f32 1e-4, f16 1e-3, bf16 8e-3,\n"
          "where lse is requested, also max |lse - ref| <= 1e-3.\n"
          "Exit status: 0 all PASS, 1 a check or the library failed, 2 usage.\n", f);
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "attn-demo: %s: '%s' is not an integer in [%ld, %ld]\n", opt, s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    int threads = 0, only_isa = -1, only_device = -1;
    double min_time = 0.2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "attn-demo: %s: %s\n", a,
                    strncmp(a, "--", 2) ? "unexpected argument" : "unknown option or missing value");
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--threads")) {
            threads = (int)parse_long(a, v, 0, 4096);
        } else if (!strcmp(a, "--device")) {
            only_device = (int)parse_long(a, v, 0, 1024);
        } else if (!strcmp(a, "--time")) {
            char *end;
            min_time = strtod(v, &end);
            if (end == v || *end || !(min_time >= 0.0 && min_time <= 60.0)) {
                fprintf(stderr, "attn-demo: --time: '%s' is not a number in [0, 60]\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--isa")) {
            static const attn_isa all[] = { ATTN_ISA_SCALAR, ATTN_ISA_AVX2, ATTN_ISA_AVX512, ATTN_ISA_NEON };
            for (size_t j = 0; j < 4; j++)
                if (!strcmp(v, attn_isa_name(all[j])))
                    only_isa = (int)all[j];
            if (only_isa < 0) {
                fprintf(stderr, "attn-demo: --isa: '%s' is not one of scalar, avx2, avx512, neon\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "attn-demo: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    printf("libattn %s\n", attn_version());
    attn_options opts = ATTN_OPTIONS_INIT;
    opts.num_threads = threads;
    attn_context *ctx = NULL;
    attn_status s = attn_context_create(&opts, &ctx);
    if (s != ATTN_OK) {
        fprintf(stderr, "attn-demo: attn_context_create: %s: %s\n", attn_status_string(s), attn_last_error());
        return 1;
    }
    int ndev = attn_device_count(ctx);
    attn_device_info infos[16];
    if (ndev > 16)
        ndev = 16;
    printf("devices: %d\n", ndev);
    for (int d = 0; d < ndev; d++) {
        attn_device_info in = ATTN_DEVICE_INFO_INIT;
        if ((s = attn_device_get_info(ctx, d, &in)) != ATTN_OK) {
            fprintf(stderr, "attn-demo: attn_device_get_info(%d): %s: %s\n", d,
                    attn_status_string(s), attn_last_error());
            attn_context_destroy(ctx);
            return 1;
        }
        infos[d] = in;
        print_device(d, &in);
    }
    attn_context_destroy(ctx);
    if (only_device >= ndev) {
        fprintf(stderr, "attn-demo: --device %d: there are %d devices\n", only_device, ndev);
        return 2;
    }

    /* Inputs and references, once per problem. */
    printf("\nreference (double precision, tests/ref.c) for %d problems...", NPROB);
    fflush(stdout);
    double t0 = now();
    static demo_data data[NPROB];
    for (int pi = 0; pi < NPROB; pi++)
        if (data_build(&problems[pi], &data[pi])) {
            fprintf(stderr, "\nattn-demo: could not build problem '%s' (out of memory or reference "
                    "rejected it)\n", problems[pi].name);
            return 1;
        }
    printf(" %.1f s\n", now() - t0);

    /* Targets: CPU x ISA, then each other device. */
    static demo_target targets[32];
    int nt = 0, failures = 0, liberr = 0;
    static const attn_isa isas[] = { ATTN_ISA_SCALAR, ATTN_ISA_AVX2, ATTN_ISA_AVX512, ATTN_ISA_NEON };
    for (int d = 0; d < ndev && nt < 32; d++) {
        if (only_device >= 0 && d != only_device)
            continue;
        int nisa = infos[d].type == ATTN_DEVICE_CPU ? 4 : 1;
        for (int ii = 0; ii < nisa && nt < 32; ii++) {
            demo_target *tg = &targets[nt];
            memset(tg, 0, sizeof *tg);
            tg->device = d;
            tg->isa = infos[d].type == ATTN_DEVICE_CPU ? (int)isas[ii] : -1;
            if (tg->isa >= 0 && only_isa >= 0 && tg->isa != only_isa)
                continue;
            attn_options o = ATTN_OPTIONS_INIT;
            o.num_threads = threads;
            o.max_isa = tg->isa >= 0 ? tg->isa : -1;
            o.device = d;
            attn_context *c = NULL;
            if ((s = attn_context_create(&o, &c)) != ATTN_OK) {
                fprintf(stderr, "attn-demo: attn_context_create (device %d%s%s): %s: %s\n", d,
                        tg->isa >= 0 ? ", isa " : "", tg->isa >= 0 ? attn_isa_name((attn_isa)tg->isa) : "",
                        attn_status_string(s), attn_last_error());
                liberr = 1;
                continue;
            }
            attn_device_info in = ATTN_DEVICE_INFO_INIT;
            if ((s = attn_device_get_info(c, d, &in)) != ATTN_OK) {
                fprintf(stderr, "attn-demo: attn_device_get_info: %s: %s\n", attn_status_string(s),
                        attn_last_error());
                liberr = 1;
                attn_context_destroy(c);
                continue;
            }
            if (tg->isa >= 0 && (int)in.isa != tg->isa) {
                printf("\n[cpu/%s] skipped: this machine or build runs %s instead\n",
                       attn_isa_name((attn_isa)tg->isa), attn_isa_name(in.isa));
                attn_context_destroy(c);
                continue;
            }
            if (tg->isa >= 0)
                snprintf(tg->label, sizeof tg->label, "cpu/%s x%d", attn_isa_name(in.isa), in.compute_units);
            else
                snprintf(tg->label, sizeof tg->label, "%d:%s", d, device_type_name(in.type));
            printf("\n[%s] %s\n", tg->label, in.name);
            printf("  %-26s %-5s %10s %10s %10s %-5s %10s %9s\n", "problem", "dtype", "err/rms",
                   "store/rms", "lse err", "check", "median ms", "GFLOP/s");
            for (int pi = 0; pi < NPROB; pi++) {
                demo_result *r = &tg->res[pi];
                run_problem(c, d, &data[pi], min_time, r);
                char lse[16];
                if (problems[pi].want_lse && r->ran && !r->note[0])
                    snprintf(lse, sizeof lse, "%10.2e", r->lse_err);
                else
                    snprintf(lse, sizeof lse, "%10s", "-");
                if (r->note[0]) {
                    printf("  %-26s %-5s %s\n", problems[pi].name, dtype_name(problems[pi].dtype),
                           r->ran ? r->note : "skipped (unsupported)");
                    if (r->ran) {
                        failures++;
                        liberr = 1;
                    }
                } else {
                    printf("  %-26s %-5s %10.2e %10.2e %s %-5s %10.3f %9.2f\n", problems[pi].name,
                           dtype_name(problems[pi].dtype), r->err, data[pi].ref_floor, lse,
                           r->pass ? "PASS" : "FAIL", r->ms, r->gflops);
                    if (!r->pass)
                        failures++;
                }
                fflush(stdout);
            }
            attn_context_destroy(c);
            nt++;
        }
    }

    /* Throughput table. */
    printf("\nthroughput, GFLOP/s (2*(D+Dv) flops per visible query-key pair and head)\n");
    printf("  %-26s", "problem");
    for (int t = 0; t < nt; t++)
        printf(" %14s", targets[t].label);
    printf("\n");
    for (int pi = 0; pi < NPROB; pi++) {
        printf("  %-26s", problems[pi].name);
        for (int t = 0; t < nt; t++) {
            const demo_result *r = &targets[t].res[pi];
            if (r->ran && !r->note[0])
                printf(" %13.2f%s", r->gflops, r->pass ? " " : "!");
            else
                printf(" %14s", r->ran ? "error" : "-");
        }
        printf("\n");
    }
    for (int pi = 0; pi < NPROB; pi++)
        data_free(&data[pi]);
    printf("\n%s: %d failed check%s over %d target%s (! = FAIL)\n", failures ? "FAIL" : "PASS",
           failures, failures == 1 ? "" : "s", nt, nt == 1 ? "" : "s");
    return failures || liberr ? 1 : 0;
}
