/* attn_decode: validate once, then run on the device that holds the cache
 * (the CPU for now). */
#include "error.h"
#include "validate_decode.h"

ATTN_API attn_status attn_decode(attn_context *ctx, const attn_sdpa_params *p,
                                 const attn_tensor *q, attn_kv_cache *cache,
                                 const int32_t *seqs, const attn_tensor *out,
                                 const attn_tensor *lse)
{
    attn_clear_error();
    attn_decode_problem pr;
    int dev;
    attn_status s = attn_validate_decode(ctx, p, q, cache, seqs, out, lse, &pr, &dev);
    if (s != ATTN_OK)
        return s;
    if (pr.b == 0)
        return ATTN_OK;
    attn_device *d = &ctx->dev[dev];
    if (!d->backend->decode)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_decode: not implemented on the %s backend",
                         d->backend->name);
    return d->backend->decode(d, &pr);
}
