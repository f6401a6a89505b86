/* The CPU backend: host memory buffers, and the kernel set chosen from the
 * probed features, capped by ATTN_ISA / attn_options.max_isa. */
#include <stdlib.h>
#include <string.h>
#include "cpu_backend.h"
#include "decode.h"
#include "linear.h"
#include "neighborhood.h"
#include "../cpu_features.h"
#include "../error.h"

static attn_status cpu_alloc(attn_device *dev, size_t bytes, void **handle)
{
    (void)dev;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || !(*handle = aligned_alloc(64, rounded)))
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_buffer_create: cannot allocate %zu bytes "
                         "of host memory", bytes);
    return ATTN_OK;
}

static void cpu_free(attn_device *dev, void *handle)
{
    (void)dev;
    free(handle);
}

static attn_status cpu_write(attn_device *dev, void *h, size_t off, const void *src, size_t n)
{
    (void)dev;
    memmove((char *)h + off, src, n);
    return ATTN_OK;
}

static attn_status cpu_read(attn_device *dev, void *h, size_t off, void *dst, size_t n)
{
    (void)dev;
    memmove(dst, (const char *)h + off, n);
    return ATTN_OK;
}

static attn_status cpu_copy(attn_device *dev, void *dst, size_t doff, void *src, size_t soff,
                            size_t n)
{
    (void)dev;
    memcpy((char *)dst + doff, (const char *)src + soff, n);
    return ATTN_OK;
}

static void *cpu_host_ptr(attn_device *dev, void *h)
{
    (void)dev;
    return h;
}

static void cpu_destroy(attn_device *dev)
{
    attn_cpu_state *st = dev->impl;
    if (st)
        attn_cpu_scratch_free(&st->scratch);
    free(dev->impl);
    dev->impl = NULL;
}

static const attn_backend cpu_backend = {
    .name = "cpu",
    .buffer_alloc = cpu_alloc,
    .buffer_free = cpu_free,
    .buffer_write = cpu_write,
    .buffer_read = cpu_read,
    .buffer_host_ptr = cpu_host_ptr,
    .buffer_copy = cpu_copy,
    .sdpa = attn_cpu_sdpa,
    .merge = attn_cpu_merge,
    .destroy = cpu_destroy,
    .linear = attn_cpu_linear,
    .decode = attn_cpu_decode,
    .block_select = attn_cpu_block_select,
    .neighborhood = attn_cpu_neighborhood,
};

/* ATTN_CPU_DISABLE="avx512_bf16,f16c": features to treat as absent, so that
 * every kernel variant can be tested on one machine. Names as attn-info
 * prints them; separators are commas or spaces. */
static attn_status masked_features(uint64_t *features)
{
    const char *e = getenv("ATTN_CPU_DISABLE");
    while (e && *e) {
        size_t len = strcspn(e, ", ");
        if (len) {
            uint64_t bit = attn_cpu_feature_from_name(e, len);
            if (!bit)
                return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "ATTN_CPU_DISABLE: unknown feature "
                                 "'%.*s' (attn-info lists the names)", (int)len, e);
            *features &= ~bit;
        }
        e += len + (e[len] != '\0');
    }
    return ATTN_OK;
}

attn_status attn_cpu_backend_init(attn_context *ctx, attn_device *dev, int max_isa)
{
    attn_cpu_state *st = calloc(1, sizeof *st);
    if (!st)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_context_create: out of memory");
    atomic_flag_clear(&st->scratch.busy);
    st->features = attn_cpu_probe();
    attn_status s = masked_features(&st->features);
    if (s != ATTN_OK) {
        free(st);
        return s;
    }
    attn_isa best = attn_cpu_best_isa(st->features);
    /* ISA levels are not ordered across architectures: a cap names either
     * scalar (always honoured) or a level; asking for an x86 level on ARM or
     * more than the CPU has gives the best the CPU has below the cap. */
    attn_isa want = best;
    if (max_isa == (int)ATTN_ISA_SCALAR)
        want = ATTN_ISA_SCALAR;
    else if (max_isa == (int)ATTN_ISA_AVX2 && best == ATTN_ISA_AVX512)
        want = ATTN_ISA_AVX2;
    else if (max_isa == (int)ATTN_ISA_AVX2 || max_isa == (int)ATTN_ISA_AVX512)
        want = (best == ATTN_ISA_NEON) ? ATTN_ISA_SCALAR : best;
    else if (max_isa == (int)ATTN_ISA_NEON)
        want = (best == ATTN_ISA_NEON) ? best : ATTN_ISA_SCALAR;
    st->kernels = attn_cpu_kernels_for_features(want, st->features);
    st->num_threads = ctx->num_threads;

    dev->backend = &cpu_backend;
    dev->ctx = ctx;
    dev->impl = st;
    attn_device_info *in = &dev->info;
    memset(in, 0, sizeof *in);
    in->size = sizeof *in;
    in->type = ATTN_DEVICE_CPU;
    attn_cpu_name(in->name, sizeof in->name, in->vendor, sizeof in->vendor);
    in->compute_units = ctx->num_threads;
    in->cpu_features = st->features;
    in->isa = st->kernels->isa;
    in->best_isa = best;
    ctx->isa = in->isa;
    return ATTN_OK;
}
