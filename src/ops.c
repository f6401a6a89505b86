/* Public op entry points: validate once, then hand the problem to the
 * backend of the device the tensors live on. */
#include <stdlib.h>
#include "error.h"
#include "validate.h"

ATTN_API attn_status attn_sdpa(attn_context *ctx, const attn_sdpa_params *p,
                               const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                               const attn_tensor *out, const attn_tensor *lse)
{
    attn_clear_error();
    attn_sdpa_problem pr;
    int dev;
    attn_status s = attn_validate_sdpa(ctx, p, q, k, v, out, lse, &pr, &dev);
    if (s != ATTN_OK)
        return s;
    if (dev >= ctx->ndev)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_sdpa: device %d is not in this context", dev);
    attn_device *d = &ctx->dev[dev];
    if (!d->backend->sdpa)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_sdpa: not implemented on the %s backend",
                         d->backend->name);
    return d->backend->sdpa(d, &pr);
}

ATTN_API attn_status attn_merge(attn_context *ctx, const attn_tensor *outs, const attn_tensor *lses,
                                int n, const attn_tensor *out, const attn_tensor *lse)
{
    attn_clear_error();
    attn_merge_problem pr;
    attn_view small[2 * 8];
    attn_view *views = small;
    if (n > 8) {
        views = malloc(2 * (size_t)n * sizeof *views);
        if (!views)
            return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_merge: out of memory");
    }
    pr.outs = views;
    pr.lses = views + (n > 8 ? n : 8);
    int dev;
    attn_status s = attn_validate_merge(ctx, outs, lses, n, out, lse, &pr, &dev);
    if (s == ATTN_OK && dev >= ctx->ndev)
        s = attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_merge: device %d is not in this context", dev);
    if (s == ATTN_OK) {
        attn_device *d = &ctx->dev[dev];
        s = d->backend->merge ? d->backend->merge(d, &pr)
                              : attn_fail(ATTN_ERR_UNSUPPORTED, "attn_merge: not implemented on "
                                          "the %s backend", d->backend->name);
    }
    if (views != small)
        free(views);
    return s;
}

ATTN_API attn_tensor attn_tensor_4d(void *data, attn_dtype dtype,
                                    int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    attn_tensor t = { 0 };
    t.data = data;
    t.dtype = dtype;
    t.ndim = 4;
    t.shape[0] = d0; t.shape[1] = d1; t.shape[2] = d2; t.shape[3] = d3;
    return t;
}
