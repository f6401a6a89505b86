/*
 * The OpenCL attn_sdpa kernel's structural variants against the
 * double-precision reference: Q resident in local memory or restaged with
 * each K chunk (ATTN_OPENCL_SDPA_QRES), the next K chunk (and V, Q chunks)
 * prefetched into registers or not (ATTN_OPENCL_SDPA_PREF), and work-group
 * shapes (ATTN_OPENCL_SDPA_TILE) where keys and O columns are owned in
 * strided groups of 4 (rn, dv/tx multiples of 4) or contiguously, rows read
 * and written as float4 (rm a multiple of 4) or not, row reductions read as
 * float4 (tx a multiple of 4) or not, with chunks that do or do not divide
 * the head dims; and the four-element loads as vload4 rather than aligned
 * vector loads (ATTN_OPENCL_SDPA_ALIGNED=0). test_opencl covers the
 * default shape over every feature;
 * here a covering subset of its cases runs under each variant, on every
 * OpenCL device found. Exit 77 (skip) without OpenCL devices.
 * ATTN_TEST_OPENCL_DEVICE=N restricts the run to device index N.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "devtest.h"

typedef struct variant {
    const char *tile, *qres, *pref;   /* environment values; NULL = unset */
    int quick;                        /* in quick mode too (its first case only) */
    const char *cases[4];             /* devtest cases */
} variant;

/* test_opencl runs every case with the default choices (on PoCL: Q
 * resident, prefetch). Here each variant runs a few cases that together
 * cover every feature, dtype and layout; few distinct programs (on PoCL the
 * builds take most of the time), one for each of three variants in quick
 * mode. */
static const variant variants[] = {
    /* 16 x 16, Q restaged with each K chunk, no prefetch; strided (non-float4) views */
    { "16,16,4,4", "0", "0", 1, { "everything", "odd-dims-mqa", "odd-dims-big", NULL } },
    /* two key groups per work-item, Q resident, no prefetch */
    { "8,4,8,8", "1", "0", 1, { "f16-gqa4", "block-mask", NULL } },
    /* tx not a multiple of 4 (plain row reductions), DC not dividing D, Q, K and V prefetch */
    { "3,5,4,4,12,6", NULL, "3", 1, { "varlen-causal", "odd-dims-big", NULL } },
    /* no float4 rows or keys, small chunks, K prefetch only */
    { "4,2,2,2,8,4", "0", "1", 0, { "mask-u8", "bf16-window", NULL } },
    /* wide: BK 128, K and V chunks of several float4s per work-item */
    { "16,2,4,8", "0", "2", 0, { "d128-causal", "sigmoid-gate", NULL } },
};

static void run_named(const char *name)
{
    for (size_t i = 0; i < devtest_ncases; i++)
        if (!strcmp(devtest_cases[i].name, name))
            run_sdpa(&devtest_cases[i]);
}

static void set_or_unset(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

static void per_device(const attn_device_info *info)
{
    (void)info;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const variant *w = &variants[v];
        if (tu_quick && !w->quick)
            continue;
        printf("device %d: tile %s qres %s pref %s\n", dev, w->tile ? w->tile : "default",
               w->qres ? w->qres : "auto", w->pref ? w->pref : "auto");
        set_or_unset("ATTN_OPENCL_SDPA_TILE", w->tile);
        set_or_unset("ATTN_OPENCL_SDPA_QRES", w->qres);
        set_or_unset("ATTN_OPENCL_SDPA_PREF", w->pref);
        for (int c = 0; c < 4 && w->cases[c] && (c == 0 || !tu_quick); c++)
            run_named(w->cases[c]);
    }
    unsetenv("ATTN_OPENCL_SDPA_TILE");
    unsetenv("ATTN_OPENCL_SDPA_QRES");
    unsetenv("ATTN_OPENCL_SDPA_PREF");
    printf("device %d: default tile, vload4\n", dev);
    setenv("ATTN_OPENCL_SDPA_ALIGNED", "0", 1);
    run_named("d128-causal");
    unsetenv("ATTN_OPENCL_SDPA_ALIGNED");
}

int main(void)
{
    return devtest_main("test_opencl_sdpa", DEVTEST_OPENCL, "ATTN_TEST_OPENCL_DEVICE",
                        per_device, NULL);
}
