/*
 * The OpenCL backend against the double-precision reference: attn_sdpa
 * over a covering subset of its feature matrix (every feature, every dtype,
 * odd sizes, GQA/MQA, varlen, strided views, buffer offsets) and attn_merge,
 * with every tensor in attn_buffers of each OpenCL device found (PoCL's CPU
 * device included: it is addressed by index, never chosen by default).
 * Also: device errors (impossible allocation, kernel build failure with the
 * build log in attn_last_error()). Exit 77 (skip) without OpenCL devices.
 *
 * Tolerances (max error relative to the largest reference output):
 * f32 in and out 1e-5; any f16/bf16 tensor 1e-2.
 * ATTN_TEST_OPENCL_DEVICE=N restricts the run to device index N.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"
#include "ref.h"

/* ------------------------------------------------------------------------ */
/* Device errors                                                            */
/* ------------------------------------------------------------------------ */

static void test_errors(void)
{
    /* An allocation no device can make: ATTN_ERR_OUT_OF_MEMORY, with why. */
    attn_buffer *b = NULL;
    attn_status s = attn_buffer_create(ctx, dev, (size_t)1 << 62, &b);
    CHECK(s == ATTN_ERR_OUT_OF_MEMORY && b == NULL && strstr(attn_last_error(), "MAX_MEM_ALLOC"),
          "impossible allocation: %s: %s", attn_status_string(s), attn_last_error());

    /* A kernel build failure, forced through ATTN_OPENCL_OPTIONS (extra
     * build options, read at context creation): ATTN_ERR_DEVICE with the
     * build log, and the output untouched. */
    setenv("ATTN_OPENCL_OPTIONS", "-DATTN_TEST_BUILD_ERROR", 1);
    attn_context *bad = NULL;
    s = attn_context_create(NULL, &bad);
    unsetenv("ATTN_OPENCL_OPTIONS");
    CHECK(s == ATTN_OK, "context with ATTN_OPENCL_OPTIONS: %s", attn_last_error());
    if (s != ATTN_OK)
        return;
    attn_context *saved = ctx;
    ctx = bad;
    dtensor q, out;
    const int64_t sh[4] = { 1, 5, 1, 16 };
    if (mk(&q, ATTN_F32, 4, sh, TU_CONTIG) == 0 && mk(&out, ATTN_F32, 4, sh, TU_CONTIG) == 0) {
        tu_fill_normal(&q.h, 0, 1);
        tu_poison(&out.h);
        if (upload(&q) == 0 && upload(&out) == 0) {
            attn_sdpa_params p = ATTN_SDPA_PARAMS_INIT;
            s = attn_sdpa(ctx, &p, &q.d, &q.d, &q.d, &out.d, NULL);
            const char *m = attn_last_error();
            CHECK(s == ATTN_ERR_DEVICE && strstr(m, "build log") && strstr(m, "ATTN_TEST_BUILD_ERROR"),
                  "forced build failure: %s: %s", attn_status_string(s), m);
            CHECK(download(&out) == 0 && tu_check_untouched(&out.h) == 0,
                  "forced build failure: output was touched");
        }
    }
    dfree(&q);
    dfree(&out);
    ctx = saved;
    attn_context_destroy(bad);
}

static void per_device(const attn_device_info *info)
{
    printf("device %d: %s (%s, driver %s, %d CUs, local %llu B, max work-group %d, "
           "subgroup %d, fp16 %d%s)\n", dev, info->name, info->vendor, info->driver,
           info->compute_units, (unsigned long long)info->local_mem_bytes,
           info->max_work_group_size, info->subgroup_size, info->fp16,
           info->is_software ? ", software" : "");
    const char *filter = getenv("ATTN_TEST_FILTER");
    for (size_t i = 0; i < devtest_ncases; i++)
        if ((!tu_quick || devtest_cases[i].quick) &&
            (!filter || strstr(devtest_cases[i].name, filter)))
            run_sdpa(&devtest_cases[i]);
    run_merge_cases();
    test_errors();
}

int main(void)
{
    return devtest_main("test_opencl", DEVTEST_OPENCL, "ATTN_TEST_OPENCL_DEVICE", per_device, NULL);
}
