/* Context creation: options, environment, device enumeration. */
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "backend.h"
#include "error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

static attn_status parse_isa_env(int *max_isa)
{
    const char *e = getenv("ATTN_ISA");
    if (!e || !*e)
        return ATTN_OK;
    static const attn_isa all[] = { ATTN_ISA_SCALAR, ATTN_ISA_AVX2, ATTN_ISA_AVX512, ATTN_ISA_NEON };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(e, attn_isa_name(all[i])) == 0) {
            *max_isa = (int)all[i];
            return ATTN_OK;
        }
    return attn_fail(ATTN_ERR_INVALID_ARGUMENT,
                     "ATTN_ISA='%s' is not one of scalar, avx2, avx512, neon", e);
}

/* ATTN_DEVICE=cpu|opencl[:N]|vulkan[:N]: the N-th device of that type. */
static attn_status parse_device_env(const attn_context *ctx, int *device)
{
    const char *e = getenv("ATTN_DEVICE");
    if (!e || !*e)
        return ATTN_OK;
    static const struct { const char *name; attn_device_type type; } kinds[] = {
        { "cpu", ATTN_DEVICE_CPU }, { "opencl", ATTN_DEVICE_OPENCL }, { "vulkan", ATTN_DEVICE_VULKAN },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t len = strlen(kinds[i].name);
        if (strncmp(e, kinds[i].name, len) != 0)
            continue;
        long nth = 0;
        if (e[len] == ':') {
            char *end;
            nth = strtol(e + len + 1, &end, 10);
            if (end == e + len + 1 || *end || nth < 0)
                break;
        } else if (e[len]) {
            continue;
        }
        for (int d = 0; d < ctx->ndev; d++)
            if (ctx->dev[d].info.type == kinds[i].type && nth-- == 0) {
                *device = d;
                return ATTN_OK;
            }
        return attn_fail(ATTN_ERR_UNSUPPORTED, "ATTN_DEVICE='%s': no such device in this "
                         "context (attn-info lists the devices)", e);
    }
    return attn_fail(ATTN_ERR_INVALID_ARGUMENT,
                     "ATTN_DEVICE='%s' is not of the form cpu, opencl[:N] or vulkan[:N]", e);
}

ATTN_API attn_status attn_context_create(const attn_options *user, attn_context **out)
{
    attn_clear_error();
    if (!out)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_context_create: out is NULL");
    *out = NULL;
    attn_options o = ATTN_OPTIONS_INIT;
    if (user) {
        if (user->size < sizeof(size_t) || user->size > sizeof(attn_options))
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_context_create: opts->size is %zu; "
                             "initialise the options with ATTN_OPTIONS_INIT", user->size);
        memcpy(&o, user, user->size);
        o.size = sizeof o;
    }
    if (o.num_threads < 0)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_context_create: opts->num_threads "
                         "is %d; use 0 for all cores", o.num_threads);
    if (o.max_isa < -1 || o.max_isa > (int)ATTN_ISA_NEON)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_context_create: opts->max_isa is %d, "
                         "not an attn_isa or -1", o.max_isa);
    if (o.max_isa == -1) {
        attn_status s = parse_isa_env(&o.max_isa);
        if (s != ATTN_OK)
            return s;
    }

    attn_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_context_create: out of memory");
#ifdef HAVE_OPENMP
    ctx->num_threads = o.num_threads ? o.num_threads : omp_get_max_threads();
#else
    ctx->num_threads = 1;
#endif
    attn_status s = attn_cpu_backend_init(ctx, &ctx->dev[0], o.max_isa);
    if (s != ATTN_OK) {
        free(ctx);
        return s;
    }
    ctx->ndev = 1;
#ifdef HAVE_OPENCL
    attn_opencl_probe(ctx);
#endif
#ifdef HAVE_VULKAN
    attn_vulkan_probe(ctx);
#endif

    if (o.device >= 0) {
        if (o.device >= ctx->ndev) {
            const int ndev = ctx->ndev;
            attn_context_destroy(ctx);
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_context_create: opts->device is %d "
                             "but there are %d devices", o.device, ndev);
        }
        ctx->preferred = o.device;
    } else if ((s = parse_device_env(ctx, &ctx->preferred)) != ATTN_OK) {
        attn_context_destroy(ctx);
        return s;
    }
    *out = ctx;
    return ATTN_OK;
}

ATTN_API void attn_context_destroy(attn_context *ctx)
{
    if (!ctx)
        return;
    for (int d = 0; d < ctx->ndev; d++)
        if (ctx->dev[d].backend->destroy)
            ctx->dev[d].backend->destroy(&ctx->dev[d]);
    free(ctx);
}

ATTN_API int attn_device_count(const attn_context *ctx)
{
    return ctx ? ctx->ndev : 0;
}

ATTN_API int attn_context_device(const attn_context *ctx)
{
    return ctx ? ctx->preferred : 0;
}

ATTN_API attn_status attn_device_get_info(const attn_context *ctx, int device, attn_device_info *info)
{
    attn_clear_error();
    if (!ctx || !info)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_device_get_info: %s is NULL",
                         ctx ? "info" : "ctx");
    if (device < 0 || device >= ctx->ndev)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_device_get_info: device %d out of "
                         "range [0, %d)", device, ctx->ndev);
    if (info->size < sizeof(size_t) || info->size > sizeof(attn_device_info))
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_device_get_info: info->size is %zu; "
                         "initialise it with ATTN_DEVICE_INFO_INIT", info->size);
    size_t n = info->size;
    memcpy(info, &ctx->dev[device].info, n);
    info->size = n;
    return ATTN_OK;
}
