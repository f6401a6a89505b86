/*
 * attn_block_select on every GPU device of the context (OpenCL, Vulkan):
 * the case table of tests/bs_check.c (both methods, every option, every
 * dtype, strided views, odd sizes, GQA) against the double-precision
 * reference with q, k and the mask in device buffers; ties to the lower
 * index; NaN input (the mask still fully written); the mask feeding attn_sdpa on the same device straight from its
 * buffer; and tensors on two devices rejected (ATTN_ERR_INVALID_ARGUMENT
 * naming the stray tensor). Exit 77 (skip) without a GPU device.
 * ATTN_TEST_GPU_DEVICE=N restricts the run to device index N.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "attn.h"
#include "bs_check.h"
#include "devtest.h"
#include "ref.h"

/* q, k, mask of case c in device buffers (host copies in .h). */
static int upload_case(const bs_case *c, double qscale, dtensor *q, dtensor *k, dtensor *m)
{
    memset(q, 0, sizeof *q);
    memset(k, 0, sizeof *k);
    memset(m, 0, sizeof *m);
    return bs_make_inputs(c, qscale, &q->h, &k->h, &m->h) || upload(q) || upload(k) || upload(m);
}

static void run_case(const bs_case *c, const char *devname)
{
    dtensor q, k, m;
    char name[240];
    bs_case_name(c, devname, name, sizeof name);
    if (upload_case(c, 2.0, &q, &k, &m)) {
        CHECK(0, "%s: device tensors: %s", name, attn_last_error());
    } else {
        attn_status s = attn_block_select(ctx, &c->p, &q.d, &k.d, &m.d);
        CHECK(s == ATTN_OK, "%s: %s", name, attn_last_error());
        CHECK(download(&m) == 0, "%s: read back: %s", name, attn_last_error());
        bs_check(c, &q.h, &k.h, &m.h, name);
    }
    dfree(&q);
    dfree(&k);
    dfree(&m);
}

/* Identical keys make every score and share equal: ties go to lower indices
 * (the ranking on the device must be the CPU's). */
static void ties(const char *devname)
{
    for (int method = 0; method < 2; method++) {
        bs_case c = bs_ties_case(method);
        dtensor q, k, m;
        memset(&q, 0, sizeof q); memset(&k, 0, sizeof k); memset(&m, 0, sizeof m);
        if (bs_make_inputs(&c, 1.0, &q.h, &k.h, &m.h) == 0) {
            for (int64_t j = 0; j < c.Sk; j++)
                for (int64_t e = 0; e < c.D; e++) {
                    int64_t idx[4] = { 0, j, 0, e };
                    ref_set(&k.h.t, idx, 0.25 * (double)(e % 5) - 0.5);
                }
        }
        if (upload(&q) || upload(&k) || upload(&m)) {
            CHECK(0, "%s ties: device tensors: %s", devname, attn_last_error());
        } else {
            CHECK_OK(attn_block_select(ctx, &c.p, &q.d, &k.d, &m.d));
            CHECK(download(&m) == 0, "%s ties: read back", devname);
            /* as in test_block_select.c: xattn keeps 0, the diagonal I + 4 and
             * the lowest until half; moba the diagonal and the two lowest */
            for (int64_t I = 0; I < 4; I++) {
                int ok = 1;
                for (int64_t J = 0; J < 8; J++) {
                    const int diag = J == I + 4;
                    const int want = method ? (diag || J < 2) : (diag || J < 3);
                    ok &= bs_mask_at(&m.h, 0, 0, I, J) == want;
                }
                CHECK(ok, "%s ties %s: block row %lld not the lowest indices", devname,
                      method ? "moba" : "xattn", (long long)I);
            }
        }
        dfree(&q); dfree(&k); dfree(&m);
    }
}

/* NaN in q: the call still succeeds and writes every mask element. */
static void nan_input(const char *devname)
{
    for (int method = 0; method < 2; method++) {
        bs_case c = bs_nan_case(method);
        dtensor q, k, m;
        memset(&q, 0, sizeof q); memset(&k, 0, sizeof k); memset(&m, 0, sizeof m);
        if (bs_make_inputs(&c, 1.0, &q.h, &k.h, &m.h) == 0) {
            int64_t idx[4] = { 0, 17, 0, 3 };
            ref_set(&q.h.t, idx, NAN);
        }
        if (upload(&q) || upload(&k) || upload(&m)) {
            CHECK(0, "%s nan: device tensors: %s", devname, attn_last_error());
        } else {
            CHECK_OK(attn_block_select(ctx, &c.p, &q.d, &k.d, &m.d));
            char msg[200] = "read back failed";
            CHECK(download(&m) == 0 && tu_check_written(&m.h, msg, sizeof msg) == 0,
                  "%s nan %s: %s", devname, method ? "moba" : "xattn", msg);
        }
        dfree(&q); dfree(&k); dfree(&m);
    }
}

/* The mask stays in its device buffer and drives attn_sdpa on the device:
 * the output equals the reference attention with that block mask. */
static void feeds_sdpa(const char *devname)
{
    bs_case c;
    memset(&c, 0, sizeof c);
    c.p = (attn_block_select_params)ATTN_BLOCK_SELECT_PARAMS_INIT;
    c.p.block_q = 32; c.p.block_k = 64; c.p.stride = 8; c.p.threshold = 0.8f; c.p.causal = 1;
    c.B = 2; c.Hq = 4; c.Hkv = 2; c.D = 32; c.Sq = 150; c.Sk = 200; c.dt = ATTN_F32;
    dtensor q, k, m, v, o;
    const int64_t os[4] = { c.B, c.Sq, c.Hq, c.D }, vs[4] = { c.B, c.Sk, c.Hkv, c.D };
    int bad = upload_case(&c, 1.0, &q, &k, &m) || mk(&v, ATTN_F32, 4, vs, TU_CONTIG) ||
              mk(&o, ATTN_F32, 4, os, TU_CONTIG);
    if (!bad) {
        tu_fill_normal(&v.h, 0.0, 1.0);
        tu_poison(&o.h);
        bad = upload(&v) || upload(&o);
    }
    if (bad) {
        CHECK(0, "%s feeds_sdpa: device tensors: %s", devname, attn_last_error());
    } else {
        CHECK_OK(attn_block_select(ctx, &c.p, &q.d, &k.d, &m.d));
        attn_sdpa_params sp = ATTN_SDPA_PARAMS_INIT;
        sp.causal = 1;
        sp.block_mask = &m.d;
        sp.block_q = c.p.block_q;
        sp.block_k = c.p.block_k;
        CHECK_OK(attn_sdpa(ctx, &sp, &q.d, &k.d, &v.d, &o.d, NULL));
        CHECK(download(&m) == 0 && download(&o) == 0, "%s feeds_sdpa: read back", devname);
        sp.block_mask = &m.h.t;
        double *ref = malloc(sizeof(double) * (size_t)(c.B * c.Sq * c.Hq * c.D));
        CHECK(ref && ref_sdpa(&sp, &q.h.t, &k.h.t, &v.h.t, ref, NULL) == 0,
              "feeds_sdpa: reference");
        const double err = ref ? tu_rel_err(&o.h, ref, NULL, NULL) : INFINITY;
        CHECK(err < 1e-4, "%s feeds_sdpa: error %.3g", devname, err);
        free(ref);
    }
    dfree(&q); dfree(&k); dfree(&m); dfree(&v); dfree(&o);
}

/* q on the device with k, or the mask, on the host: rejected, naming it,
 * the mask untouched. */
static void mixed_devices(const char *devname)
{
    bs_case c;
    memset(&c, 0, sizeof c);
    c.p = (attn_block_select_params)ATTN_BLOCK_SELECT_PARAMS_INIT;
    c.p.block_q = c.p.block_k = 16;
    c.p.stride = 4;
    c.B = 1; c.Hq = c.Hkv = 1; c.D = 16; c.Sq = 40; c.Sk = 50; c.dt = ATTN_F32;
    dtensor q, k, m;
    if (upload_case(&c, 1.0, &q, &k, &m)) {
        CHECK(0, "%s mixed: device tensors: %s", devname, attn_last_error());
    } else {
        unsigned char *snap = malloc(m.h.total);
        if (snap)
            memcpy(snap, m.h.mem, m.h.total);
        attn_status s = attn_block_select(ctx, &c.p, &q.d, &k.h.t, &m.d);
        CHECK(s == ATTN_ERR_INVALID_ARGUMENT && strstr(attn_last_error(), "k:"),
              "%s mixed: host k: %s (%s)", devname, attn_status_string(s), attn_last_error());
        s = attn_block_select(ctx, &c.p, &q.d, &k.d, &m.h.t);
        CHECK(s == ATTN_ERR_INVALID_ARGUMENT && strstr(attn_last_error(), "block_mask"),
              "%s mixed: host mask: %s (%s)", devname, attn_status_string(s), attn_last_error());
        /* U8 holds no NaN poison: compare with a snapshot */
        CHECK(snap && memcmp(snap, m.h.mem, m.h.total) == 0, "%s mixed: host mask was written",
              devname);
        CHECK(download(&m) == 0 && snap && memcmp(snap, m.h.mem, m.h.total) == 0,
              "%s mixed: device mask was written", devname);
        free(snap);
    }
    dfree(&q); dfree(&k); dfree(&m);
}

static void per_device(const attn_device_info *info)
{
    char devname[96];
    snprintf(devname, sizeof devname, "%s:%d", info->type == ATTN_DEVICE_OPENCL ? "opencl" :
             "vulkan", dev);
    printf("device %d: %s (%s)\n", dev, info->name, devname);
    for (int i = 0; i < bs_ncases(); i++) {
        bs_case c;
        bs_table_case(i, &c);
        run_case(&c, devname);
    }
    ties(devname);
    nan_input(devname);
    feeds_sdpa(devname);
    mixed_devices(devname);
}

int main(void)
{
    return devtest_main("test_block_select_gpu", DEVTEST_OPENCL | DEVTEST_VULKAN,
                        "ATTN_TEST_GPU_DEVICE", per_device, NULL);
}
