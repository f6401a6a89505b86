/* attn_block_select argument validation. Each rule fails with a message that
 * names the argument; tests/test_block_select.c has a case for each. */
#include <math.h>
#include <string.h>
#include "error.h"
#include "validate.h"
#include "validate_block_select.h"

#define INVALID(...) attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_block_select: " __VA_ARGS__)
#define TRY(x) do { attn_status s_ = (x); if (s_ != ATTN_OK) return s_; } while (0)

#define BLOCK_SELECT_MAX_HEAD_DIM 4096

static int64_t ceil_div(int64_t a, int64_t b) { return a == 0 ? 0 : (a - 1) / b + 1; }

static attn_status read_params(const attn_block_select_params *up, attn_block_select_params *p)
{
    if (!up)
        return INVALID("params is NULL");
    if (up->size < sizeof(attn_block_select_params) || up->size > sizeof(attn_block_select_params))
        return INVALID("params->size is %zu; initialise params with "
                       "ATTN_BLOCK_SELECT_PARAMS_INIT", up->size);
    *p = *up;
    if (p->method != ATTN_BLOCK_SELECT_XATTN && p->method != ATTN_BLOCK_SELECT_MOBA)
        return INVALID("params->method is %d, not an attn_block_select_method", (int)p->method);
    if (p->block_q < 1 || p->block_k < 1)
        return INVALID("params->block_q and block_k must be >= 1 (got %lld, %lld)",
                       (long long)p->block_q, (long long)p->block_k);
    if (p->block_q > INT32_MAX || p->block_k > INT32_MAX)
        return INVALID("params->block_q and block_k must be below 2^31 (got %lld, %lld)",
                       (long long)p->block_q, (long long)p->block_k);
    if (p->method == ATTN_BLOCK_SELECT_XATTN) {
        if (p->stride < 1)
            return INVALID("params->stride is %lld, must be >= 1", (long long)p->stride);
        if (p->block_q % p->stride || p->block_k % p->stride)
            return INVALID("params->stride %lld must divide block_q %lld and block_k %lld",
                           (long long)p->stride, (long long)p->block_q, (long long)p->block_k);
        if (!(p->threshold > 0.0f && p->threshold <= 1.0f))
            return INVALID("params->threshold is %g, must be in (0, 1]", (double)p->threshold);
        if (!isfinite(p->scale))
            return INVALID("params->scale is not finite");
    } else if (p->top_k < 1) {
        return INVALID("params->top_k is %lld, must be >= 1", (long long)p->top_k);
    }
    return ATTN_OK;
}

attn_status attn_validate_block_select(const attn_context *ctx,
                                       const attn_block_select_params *up,
                                       const attn_tensor *q, const attn_tensor *k,
                                       const attn_tensor *block_mask,
                                       attn_block_select_problem *pr, int *device)
{
    memset(pr, 0, sizeof *pr);
    if (!ctx)
        return INVALID("ctx is NULL");
    attn_block_select_params p = ATTN_BLOCK_SELECT_PARAMS_INIT;
    TRY(read_params(up, &p));
    if (!q) return INVALID("q is NULL");
    if (!k) return INVALID("k is NULL");
    if (!block_mask) return INVALID("block_mask is NULL");
    const int dev = attn_tensor_device(q);
    TRY(attn_view_init(&pr->q, q, "attn_block_select", "q", 4, ATTN_DT_FLOAT, dev));
    TRY(attn_view_init(&pr->k, k, "attn_block_select", "k", 4, ATTN_DT_FLOAT, dev));
    TRY(attn_view_init(&pr->mask, block_mask, "attn_block_select", "block_mask", 4,
                       ATTN_DT_BIT(ATTN_U8), dev));
    const int64_t *qs = pr->q.shape, *ks = pr->k.shape, *ms = pr->mask.shape;
    if (pr->q.dtype != pr->k.dtype)
        return INVALID("q and k have different dtypes");
    if (ks[0] != qs[0])
        return INVALID("q and k have different batch sizes (%lld, %lld)", (long long)qs[0],
                       (long long)ks[0]);
    if (ks[3] != qs[3])
        return INVALID("q and k head dims differ (%lld, %lld)", (long long)qs[3],
                       (long long)ks[3]);
    if (qs[2] < 1 || ks[2] < 1)
        return INVALID("head counts must be at least 1 (q %lld, k %lld)", (long long)qs[2],
                       (long long)ks[2]);
    if (qs[2] % ks[2])
        return INVALID("q heads (%lld) are not a multiple of k heads (%lld)", (long long)qs[2],
                       (long long)ks[2]);
    if (qs[3] < 1)
        return INVALID("head dim must be at least 1 (got %lld)", (long long)qs[3]);
    if (qs[1] > INT32_MAX || ks[1] > INT32_MAX)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_block_select: sequence lengths above "
                         "2^31-1 are not supported (q %lld, k %lld)", (long long)qs[1],
                         (long long)ks[1]);
    if (qs[3] > BLOCK_SELECT_MAX_HEAD_DIM)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_block_select: head dims above %d are not "
                         "supported (got %lld)", BLOCK_SELECT_MAX_HEAD_DIM, (long long)qs[3]);
    const int64_t nbq = ceil_div(qs[1], p.block_q), nbk = ceil_div(ks[1], p.block_k);
    if (ms[0] != qs[0] || ms[1] != qs[2] || ms[2] != nbq || ms[3] != nbk)
        return INVALID("block_mask has shape [%lld,%lld,%lld,%lld], expected "
                       "[%lld,%lld,%lld,%lld] (B, Hq, ceil(Sq/block_q), ceil(Sk/block_k))",
                       (long long)ms[0], (long long)ms[1], (long long)ms[2], (long long)ms[3],
                       (long long)qs[0], (long long)qs[2], (long long)nbq, (long long)nbk);
    const attn_view *in[2] = { &pr->q, &pr->k };
    const char *names[2] = { "q", "k" };
    TRY(attn_check_output(&pr->mask, "attn_block_select: block_mask", in, names, 2));

    pr->method = p.method;
    pr->b = qs[0];
    pr->sq = qs[1];
    pr->sk = ks[1];
    pr->hq = qs[2];
    pr->hkv = ks[2];
    pr->d = qs[3];
    pr->block_q = p.block_q;
    pr->block_k = p.block_k;
    pr->nbq = nbq;
    pr->nbk = nbk;
    pr->stride = p.stride;
    pr->threshold = p.threshold;
    pr->scale = p.scale != 0.0f ? p.scale : (float)(1.0 / sqrt((double)pr->d));
    pr->top_k = p.top_k;
    pr->causal = p.causal != 0;
    *device = dev;
    return ATTN_OK;
}
