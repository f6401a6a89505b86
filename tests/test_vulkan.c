/*
 * The Vulkan backend against the double-precision reference: attn_sdpa
 * over a covering subset of its feature matrix (every feature, every dtype,
 * odd sizes, GQA/MQA, varlen, strided views, buffer offsets) and attn_merge,
 * with every tensor in attn_buffers of each Vulkan device found (lavapipe
 * included: it is addressed by index, never chosen by default), once with
 * host-visible buffers where the device has them and once through staging
 * (ATTN_VULKAN_STAGING=1). Also: errors (impossible allocation, buffers of
 * another device). With the Khronos validation
 * layer installed the run enables it (ATTN_VULKAN_DEBUG=1): a validation
 * error aborts the test. Exit 77 (skip) without Vulkan devices.
 *
 * Tolerances (max error relative to the largest reference output):
 * f32 in and out 1e-5; any f16/bf16 tensor 1e-2.
 * ATTN_TEST_VULKAN_DEVICE=N restricts the run to device index N.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"
#include "ref.h"

/* Beyond the shared cases (tests/devtest.c): f16 inputs through every
 * path (the cooperative-matrix shader takes f16), D = 256, D != DV with
 * f16 output (the cooperative-matrix shader's paired stores), lengths
 * that are whole query blocks and key tiles of the cooperative-matrix-2
 * shader (128 and 64 rows, 64 keys: no partial tile); for the plain
 * shader's 4-element loads (unit innermost stride, head dims and row
 * offsets multiples of 4), bf16 through them and contiguous head dims that
 * are not multiples of 4 (element loads). */
static const scase vk_cases[] = {
 { "bf16-vec4-gqa",   2, 45,  77,  4, 2, 48, 32, ATTN_BF16, ATTN_F32,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 },
 { "d30-dv18-contig", 1, 37,  53,  2, 1, 30, 18, ATTN_F16,  ATTN_F32,  TU_CONTIG,    0, -1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0 },
 { "f16-everything",  2, 33,  97,  4, 4, 64, 64, ATTN_F16,  ATTN_F32,  TU_CONTIG,    1, 20, -1, 2, 1, 1, 0, 30, 0, 0, 0, 0, 1, 1 },
 { "f16-varlen-sigm", 1,  0,   0,  4, 2, 64, 64, ATTN_F16,  ATTN_F16,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 1, 0, 3, 2, 16, 1, 0, 1 },
 { "d256-f16",        1, 33,  80,  2, 1,256,256, ATTN_F16,  ATTN_F16,  TU_SWAP12,    1, -1, -1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0 },
 { "f16-d48-dv80",    2, 37,  53,  6, 3, 48, 80, ATTN_F16,  ATTN_F16,  TU_CONTIG,    0, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 },
 { "f16-whole-causal", 2,128, 192,  4, 2, 64, 64, ATTN_F16,  ATTN_F16,  TU_CONTIG,    1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 },
 { "f16-whole-window", 1, 64, 128,  2, 1, 64, 64, ATTN_F16,  ATTN_F32,  TU_SWAP12,    0, 40, 10, 2, 0, 0, 0, 0, 0, 0, 16, 0, 1, 0 },
};

/* ------------------------------------------------------------------------ */
/* Device errors                                                            */
/* ------------------------------------------------------------------------ */

static void test_errors(void)
{
    /* An allocation no device can make: ATTN_ERR_OUT_OF_MEMORY, with why. */
    attn_buffer *b = NULL;
    attn_status s = attn_buffer_create(ctx, dev, (size_t)1 << 62, &b);
    CHECK(s == ATTN_ERR_OUT_OF_MEMORY && b == NULL && strstr(attn_last_error(), "maxStorageBufferRange"),
          "impossible allocation: %s: %s", attn_status_string(s), attn_last_error());

    dtensor q, cpu_out;
    const int64_t sh[4] = { 1, 5, 1, 16 };
    memset(&cpu_out, 0, sizeof cpu_out);
    if (mk(&q, ATTN_F32, 4, sh, TU_CONTIG) == 0 && mk(&cpu_out, ATTN_F32, 4, sh, TU_CONTIG) == 0) {
        tu_fill_normal(&q.h, 0, 1);
        if (upload(&q) == 0) {
            /* An output in host memory with inputs on the device. */
            attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
            s = attn_sdpa(ctx, &p, &q.d, &q.d, &q.d, &cpu_out.h.t, NULL);
            CHECK(s == ATTN_ERR_INVALID_ARGUMENT, "mixed devices: %s: %s", attn_status_string(s),
                  attn_last_error());
        }
    }
    dfree(&q);
    tu_tensor_free(&cpu_out.h);
}

static int listed(const char *name, const char *const *only)
{
    for (; *only; only++)
        if (strcmp(*only, name) == 0)
            return 1;
    return 0;
}

/* The cases on the device under test: every one, or (only != NULL) those
 * named. Each new shape costs lavapipe a shader compile of seconds, hence
 * the short lists for the passes that repeat the first. */
static void run_cases(const scase *cases, size_t n, const char *const *only)
{
    const char *filter = getenv("ATTN_TEST_FILTER");
    for (size_t i = 0; i < n; i++)
        if ((!tu_quick || cases[i].quick) && (!filter || strstr(cases[i].name, filter)) &&
            (!only || listed(cases[i].name, only)))
            run_sdpa(&cases[i]);
}

static void run_all(const char *const *only)
{
    run_cases(devtest_cases, devtest_ncases, only);
    run_cases(vk_cases, sizeof vk_cases / sizeof vk_cases[0], only);
    if (only)
        return;
    run_merge_cases();
    test_errors();
}

/* Runs the cases on each Vulkan device of a context created with the
 * current environment; returns the number of devices tested. */
static int any_coopmat2;   /* a device has the workgroup-scope coopmat shader */

static int run_devices(const char *label, const char *const *only)
{
    if (attn_context_create(NULL, &ctx) != ATTN_OK) {
        fprintf(stderr, "attn_context_create: %s\n", attn_last_error());
        exit(1);
    }
    int found = 0;
    for (dev = 0; dev < attn_device_count(ctx); dev++) {
        attn_device_info info;
        if (!device_under_test(dev, DEVTEST_VULKAN, "ATTN_TEST_VULKAN_DEVICE", &info))
            continue;
        found++;
        any_coopmat2 |= strstr(info.features, "cooperative_matrix2") != NULL;
        printf("device %d (%s): %s (%s, driver %s, shared %llu B, max workgroup %d, "
               "subgroup %d, fp16 %d%s)\n  %s\n", dev, label, info.name, info.vendor,
               info.driver, (unsigned long long)info.local_mem_bytes, info.max_work_group_size,
               info.subgroup_size, info.fp16, info.is_software ? ", software" : "",
               info.features);
        const double t0 = tu_now();
        run_all(only);
        printf("device %d: %.1f s\n", dev, tu_now() - t0);
    }
    attn_context_destroy(ctx);
    return found;
}

/* ATTN_DEVICE=vulkan picks the first Vulkan device: a GPU where there is
 * one, a software device (listed last) only when there is nothing else. */
static void test_device_env(void)
{
    setenv("ATTN_DEVICE", "vulkan", 1);
    attn_context *c = NULL;
    attn_status s = attn_context_create(NULL, &c);
    unsetenv("ATTN_DEVICE");
    CHECK(s == ATTN_OK, "ATTN_DEVICE=vulkan: %s", attn_last_error());
    if (s != ATTN_OK)
        return;
    int first = -1, hardware = 0;
    for (int d = 0; d < attn_device_count(c); d++) {
        attn_device_info info = ATTN_DEVICE_INFO_INIT;
        attn_device_get_info(c, d, &info);
        if (info.type != ATTN_DEVICE_VULKAN)
            continue;
        if (first < 0)
            first = d;
        hardware |= !info.is_software;
    }
    attn_device_info pick = ATTN_DEVICE_INFO_INIT;
    attn_device_get_info(c, attn_context_device(c), &pick);
    CHECK(attn_context_device(c) == first && pick.type == ATTN_DEVICE_VULKAN &&
          (!hardware || !pick.is_software), "ATTN_DEVICE=vulkan chose device %d (%s)",
          attn_context_device(c), pick.name);
    attn_context_destroy(c);
}

int main(void)
{
    tu_init("test_vulkan");
    /* The validation layer, where installed (the library enables it). */
    setenv("ATTN_VULKAN_DEBUG", "1", 0);
    if (!run_devices("direct", NULL)) {
        printf("no Vulkan device: skipped\n");
        return 77;
    }
    test_device_env();
    /* Staged buffers: the copies matter, not the shapes. */
    static const char *const staged[] = { "f32-gqa", "varlen-causal", "f16-gqa4", NULL };
    setenv("ATTN_VULKAN_STAGING", "1", 1);
    run_devices("staged", tu_quick ? staged : NULL);
    unsetenv("ATTN_VULKAN_STAGING");
    /* Workgroups 8 wide: the subgroup path on devices whose subgroups hold
     * 8 invocations (lavapipe's do), the plain path with another shape
     * elsewhere; f32 cases of one shader shape covering every feature. */
    static const char *const narrow[] = { "everything", "mask-u8", "sigmoid-gate", "block-mask",
                                          "varlen-causal", "no-visible-keys", NULL };
    setenv("ATTN_VULKAN_SDPA_TILE", "8,4,2,2", 1);
    run_devices("8x4 tile", narrow);
    unsetenv("ATTN_VULKAN_SDPA_TILE");
    /* The next K and V chunks prefetched into registers (the GPU default)
     * with 8-, 4- and 1-element loads (the prefetch needs unit loads: the
     * last two cases run without), then K alone in a shape of several
     * chunks per head dim and per key tile. */
    static const char *const pref[] = { "everything", "f16-gqa4", "bf16-vec4-gqa", "block-mask",
                                        "odd-dims-big", "d30-dv18-contig", NULL };
    setenv("ATTN_VULKAN_SDPA_PREF", "2", 1);
    run_devices("K and V prefetched", pref);
    setenv("ATTN_VULKAN_SDPA_PREF", "1", 1);
    setenv("ATTN_VULKAN_SDPA_TILE", "8,4,2,4,8,8", 1);
    run_devices("K prefetched, 8-dim chunks", pref);
    unsetenv("ATTN_VULKAN_SDPA_TILE");
    unsetenv("ATTN_VULKAN_SDPA_PREF");
    /* 16-bit inputs 4 elements a load (VEC 1), which views aligned to 8
     * elements otherwise skip for 8-element loads. */
    static const char *const vec4[] = { "f16-gqa4", "bf16-vec4-gqa", NULL };
    setenv("ATTN_VULKAN_SDPA_VEC", "4", 1);
    run_devices("4-element loads", vec4);
    unsetenv("ATTN_VULKAN_SDPA_VEC");
    /* 8x8 register blocks (the GPU default's: two interleaved groups of 4
     * rows and of 4 keys per invocation); one case, not in quick runs:
     * lavapipe takes some 20 s to compile the unrolled loops. */
    static const char *const blocks8[] = { "bf16-vec4-gqa", NULL };
    if (!tu_quick) {
        setenv("ATTN_VULKAN_SDPA_TILE", "8,8,8,8", 1);
        run_devices("8x8 blocks", blocks8);
        unsetenv("ATTN_VULKAN_SDPA_TILE");
    }
    /* The cooperative-matrix shader with its matrix operations as plain
     * loops: its tiling, online softmax, row-factor rescale, masks and
     * epilogue, on any device with shaderFloat16 (devices without it, and
     * shapes that do not fit, run the plain path). */
    static const char *const f16[] = { "mask-f16-bcast", "f16-gqa4", "f16-everything",
                                       "f16-varlen-sigm", "d256-f16", "f16-d48-dv80",
                                       "f16-whole-causal", "f16-whole-window", NULL };
    setenv("ATTN_VULKAN_COOPMAT", "emulate", 1);
    run_devices("coopmat emulated", f16);
    /* Its other shapes (nw,rb,bk,pf,split): K and V in two buffers; in full
     * runs also 32 rows per subgroup and the K/V prefetch. */
    static const char *const split[] = { "f16-everything", NULL };
    setenv("ATTN_VULKAN_COOPMAT_TILE", "1,1,32,0,1", 1);
    run_devices("coopmat emulated 1,1,32,0,1", tu_quick ? split : f16);
    if (!tu_quick) {
        setenv("ATTN_VULKAN_COOPMAT_TILE", "1,2,32,1,0", 1);
        run_devices("coopmat emulated 1,2,32,1,0", f16);
        setenv("ATTN_VULKAN_COOPMAT_TILE", "1,1,32,1,1", 1);
        run_devices("coopmat emulated 1,1,32,1,1", f16);
    }
    unsetenv("ATTN_VULKAN_COOPMAT_TILE");
    unsetenv("ATTN_VULKAN_COOPMAT");
    /* The workgroup-scope cooperative-matrix shader, where a device has it
     * (the runs above use its default shape): 128 invocations over 64 rows,
     * then with O in 16-column blocks throughout. */
    if (any_coopmat2) {
        setenv("ATTN_VULKAN_COOPMAT2_TILE", "128,64,64", 1);
        run_devices("coopmat2 128,64,64", f16);
        setenv("ATTN_VULKAN_COOPMAT2_TILE", "128,64,64,1", 1);
        run_devices("coopmat2 128,64,64,1", f16);
        unsetenv("ATTN_VULKAN_COOPMAT2_TILE");
    }
    return tu_finish();
}
