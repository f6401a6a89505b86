/*
 * attn_neighborhood on every OpenCL and Vulkan device (PoCL, lavapipe in
 * CI) against the double-precision reference (tests/ref_neighborhood.c):
 * 1-D/2-D/3-D grids of awkward lengths, kernels larger than the query tile,
 * dilations, causal axes, GQA/MQA, head dims that are not powers of two,
 * Dv != D, f32/f16/bf16 in and out, lse, strided layouts, buffer offsets.
 * Two cases again with the query tile set by ATTN_NB_TILE (8 x 8, 3 x 5).
 * Then: tensors on two devices are ATTN_ERR_INVALID_ARGUMENT naming the
 * stray tensor. Exit 77 (skip) without a GPU-backend device.
 *
 * Tolerances (max error relative to the largest reference output): f32 in
 * and out 1e-5; any f16/bf16 tensor 1e-2; lse 1e-5 absolute (|lse| < 1) or
 * relative. ATTN_TEST_NB_DEVICE=N restricts the run to device index N.
 * Vulkan runs with the Khronos validation layer where it is installed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"
#include "ref_neighborhood.h"

typedef struct gcase {
    nb_case c;
    int quick;          /* also in ATTN_TEST_QUICK runs */
} gcase;

#define F32 ATTN_F32
#define F16 ATTN_F16
#define BF16 ATTN_BF16

static const gcase cases[] = {
 /*  nd len          kern        dil        causal     b hq hkv  d  dv  in   out   lse layout    scale */
 { { 1, { 150 },     { 31 },     { 2 },     { 1 },     1, 4, 1, 40, 24, F32, F32,  1, TU_SWAP12, 0 }, 1 },
 { { 2, { 19, 30 },  { 13, 7 },  { 1, 2 },  { 0, 1 },  1, 2, 2, 32, 32, BF16, F32, 1, TU_CONTIG, 0.7f }, 1 },
 { { 2, { 17, 20 },  { 5, 9 },   { 3, 2 },  { 1, 0 },  1, 4, 2, 24, 16, F16, F16,  1, TU_PADDED, 0 }, 1 },
 { { 3, { 5, 6, 7 }, { 3, 5, 3 }, { 1, 1, 2 }, { 0, 0, 1 }, 2, 2, 1, 16, 16, F32, BF16, 1, TU_CONTIG, -0.3f }, 1 },
 { { 1, { 37 },      { 7 },      { 1 },     { 0 },     2, 4, 2, 32, 32, F32, F32,  1, TU_CONTIG, 0 }, 0 },
 { { 1, { 21 },      { 21 },     { 1 },     { 0 },     1, 3, 3,  5,  5, F16, F32,  0, TU_PADDED, 0 }, 0 },
 { { 2, { 5, 7 },    { 3, 5 },   { 1, 1 },  { 0, 0 },  2, 2, 1, 16, 16, F32, F32,  1, TU_CONTIG, 0 }, 0 },
 { { 2, { 11, 13 },  { 11, 13 }, { 1, 1 },  { 0, 0 },  1, 2, 2, 32, 32, BF16, BF16, 0, TU_INNER2, 0 }, 0 },
 { { 2, { 24, 24 },  { 7, 7 },   { 1, 1 },  { 0, 0 },  2, 4, 2, 64, 64, F32, F32,  1, TU_SWAP12, 0 }, 0 },
 { { 2, { 9, 6 },    { 3, 3 },   { 2, 1 },  { 1, 1 },  2, 2, 1,  8, 40, F32, BF16, 1, TU_EXPLICIT, 0.5f }, 0 },
 { { 3, { 4, 9, 10 }, { 3, 3, 5 }, { 1, 3, 1 }, { 1, 0, 0 }, 2, 2, 2, 24, 8, F16, F32, 1, TU_SWAP12_PADDED, 0 }, 0 },
 { { 3, { 8, 8, 8 }, { 3, 5, 7 }, { 2, 1, 1 }, { 0, 1, 0 }, 1, 1, 1, 80, 80, F32, F32, 0, TU_CONTIG, 0 }, 0 },
};

static void run_case(const nb_case *c)
{
    char name[256];
    nb_describe(c, name, sizeof name);
    const int64_t ntok = nb_tokens(c);
    const int tn = c->nd + 3;
    int64_t sq[6], sk[6], sv[6], so[6], sl[6];
    nb_shapes(c, sq, sk, sv, so, sl);
    dtensor q, k, v, out, lse;
    int err = mk(&q, c->in_dt, tn, sq, c->layout) | mk(&k, c->in_dt, tn, sk, c->layout) |
              mk(&v, c->in_dt, tn, sv, c->layout) | mk(&out, c->out_dt, tn, so, c->layout) |
              mk(&lse, ATTN_F32, tn - 1, sl, TU_CONTIG);
    double *ro = malloc((size_t)(c->b * ntok * c->hq * c->dv) * sizeof(double));
    double *rl = malloc((size_t)(c->b * ntok * c->hq) * sizeof(double));
    CHECK(err == 0 && ro && rl, "%s: allocation failed", name);
    if (err == 0 && ro && rl) {
        tu_fill_normal(&q.h, 0.0, 1.0);
        tu_fill_normal(&k.h, 0.0, 1.0);
        tu_fill_normal(&v.h, 0.0, 1.0);
        tu_poison(&out.h);
        tu_poison(&lse.h);
        CHECK(ref_neighborhood(c, &q.h, &k.h, &v.h, ro, rl) == 0, "%s: reference failed", name);
        err = upload(&q) | upload(&k) | upload(&v) | upload(&out) | upload(&lse);
        CHECK(err == 0, "%s: upload: %s", name, attn_last_error());
    }
    if (err == 0 && ro && rl) {
        const attn_neighborhood_params p = nb_params(c);
        const double t0 = tu_now();
        attn_status s = attn_neighborhood(ctx, &p, &q.d, &k.d, &v.d, &out.d,
                                          c->lse ? &lse.d : NULL);
        CHECK(s == ATTN_OK, "%s: %s: %s", name, attn_status_string(s), attn_last_error());
        if (s == ATTN_OK && download(&out) == 0 && download(&lse) == 0) {
            char msg[256];
            CHECK(tu_check_written(&out.h, msg, sizeof msg) == 0, "%s: out: %s", name, msg);
            const double e = tu_rel_err(&out.h, ro, NULL, NULL);
            const double tol = tol_for(c->in_dt, c->out_dt);
            CHECK(e <= tol, "%s: error %.3g > %.3g", name, e, tol);
            if (c->lse) {
                const double le = tu_lse_err(&lse.h, rl, NULL);
                CHECK(le <= 1e-5, "%s: lse error %.3g", name, le);
            }
            if (tu_verbose)
                printf("  %s: err %.2e (%.2f s)\n", name, e, tu_now() - t0);
        }
    }
    free(ro);
    free(rl);
    dfree(&q); dfree(&k); dfree(&v); dfree(&out); dfree(&lse);
}

/* k in host memory, the rest on the device: the op's device is q's, and
 * k is named as the tensor elsewhere; out stays untouched. */
static void test_mixed_devices(void)
{
    const int64_t sh[5] = { 1, 5, 6, 1, 8 };
    dtensor q, out;
    tu_tensor kh;
    int err = mk(&q, ATTN_F32, 5, sh, TU_CONTIG) | mk(&out, ATTN_F32, 5, sh, TU_CONTIG) |
              tu_tensor_alloc(&kh, ATTN_F32, 5, sh, TU_CONTIG);
    if (err == 0) {
        tu_fill_normal(&q.h, 0, 1);
        tu_fill_normal(&kh, 0, 1);
        tu_poison(&out.h);
        if (upload(&q) == 0 && upload(&out) == 0) {
            attn_neighborhood_params p = ATTN_NEIGHBORHOOD_PARAMS_INIT;
            p.kernel_size[0] = p.kernel_size[1] = 3;
            attn_status s = attn_neighborhood(ctx, &p, &q.d, &kh.t, &q.d, &out.d, NULL);
            const char *m = attn_last_error();
            CHECK(s == ATTN_ERR_INVALID_ARGUMENT && strstr(m, "k"),
                  "k on another device: %s: %s", attn_status_string(s), m);
            CHECK(download(&out) == 0 && tu_check_untouched(&out.h) == 0,
                  "k on another device: output was touched");
        }
    }
    dfree(&q);
    dfree(&out);
    tu_tensor_free(&kh);
}

static void per_device(const attn_device_info *info)
{
    printf("device %d: %s (%s)\n", dev, info->name,
           info->type == ATTN_DEVICE_OPENCL ? "OpenCL" : "Vulkan");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!tu_quick || cases[i].quick)
            run_case(&cases[i].c);
    /* Tiles the defaults may not pick on this device: 8 x 8 queries
     * (taken for large problems) and 3 x 5. */
    setenv("ATTN_NB_TILE", "8,8", 1);
    run_case(&cases[1].c);
    setenv("ATTN_NB_TILE", "3,5", 1);
    run_case(&cases[2].c);
    unsetenv("ATTN_NB_TILE");
    test_mixed_devices();
}

/* The Vulkan validation layer, where installed: a validation error aborts. */
int main(void)
{
    return devtest_main("test_neighborhood_gpu", DEVTEST_OPENCL | DEVTEST_VULKAN,
                        "ATTN_TEST_NB_DEVICE", per_device, NULL);
}
