/* attn_block_select: validate once, then hand the problem to the backend of
 * the device the tensors live on. */
#include "error.h"
#include "validate_block_select.h"

ATTN_API attn_status attn_block_select(attn_context *ctx, const attn_block_select_params *p,
                                       const attn_tensor *q, const attn_tensor *k,
                                       const attn_tensor *block_mask)
{
    attn_clear_error();
    attn_block_select_problem pr;
    int dev;
    attn_status s = attn_validate_block_select(ctx, p, q, k, block_mask, &pr, &dev);
    if (s != ATTN_OK)
        return s;
    if (dev >= ctx->ndev)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_block_select: device %d is not in "
                         "this context", dev);
    attn_device *d = &ctx->dev[dev];
    if (!d->backend->block_select)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_block_select: not implemented on the %s "
                         "backend", d->backend->name);
    if (pr.b == 0 || pr.hq == 0 || pr.nbq == 0 || pr.nbk == 0)
        return ATTN_OK;
    return d->backend->block_select(d, &pr);
}
