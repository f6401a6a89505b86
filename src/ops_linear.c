/* attn_linear: validate once, then hand the problem to the backend of the
 * device the tensors live on. */
#include "error.h"
#include "validate_linear.h"

ATTN_API attn_status attn_linear(attn_context *ctx, const attn_linear_params *p,
                                 const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                                 const attn_tensor *g, const attn_tensor *beta,
                                 const attn_tensor *state_in, const attn_tensor *out,
                                 const attn_tensor *state_out)
{
    attn_clear_error();
    attn_linear_problem pr;
    int dev;
    attn_status s = attn_validate_linear(ctx, p, q, k, v, g, beta, state_in, out, state_out,
                                         &pr, &dev);
    if (s != ATTN_OK)
        return s;
    /* Nothing to write (no output element, no state out): a call with no
     * token may still name 2^40 heads through zero strides, and walking
     * them would only zero workspace. */
    if (attn_view_numel(&pr.out) == 0 && !pr.has_state_out && !pr.has_z_out)
        return ATTN_OK;
    if (dev >= ctx->ndev)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_linear: device %d is not in this "
                         "context", dev);
    attn_device *d = &ctx->dev[dev];
    if (!d->backend->linear)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_linear: not implemented on the %s backend",
                         d->backend->name);
    return d->backend->linear(d, &pr);
}
