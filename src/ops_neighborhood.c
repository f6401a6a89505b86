/* attn_neighborhood: validate once, then hand the problem to the backend of
 * the device the tensors live on. */
#include "error.h"
#include "validate_neighborhood.h"

ATTN_API attn_status attn_neighborhood(attn_context *ctx, const attn_neighborhood_params *p,
                                       const attn_tensor *q, const attn_tensor *k,
                                       const attn_tensor *v, const attn_tensor *out,
                                       const attn_tensor *lse)
{
    attn_clear_error();
    attn_neighborhood_problem pr;
    int dev;
    attn_status s = attn_validate_neighborhood(ctx, p, q, k, v, out, lse, &pr, &dev);
    if (s != ATTN_OK)
        return s;
    if (dev >= ctx->ndev)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_neighborhood: device %d is not in "
                         "this context", dev);
    attn_device *d = &ctx->dev[dev];
    if (!d->backend->neighborhood)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_neighborhood: not implemented on the %s "
                         "backend", d->backend->name);
    return d->backend->neighborhood(d, &pr);
}
