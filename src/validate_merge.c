/* attn_merge argument validation. */
#include <stdio.h>
#include <string.h>
#include "error.h"
#include "validate.h"

#define INVALID(...) attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_merge: " __VA_ARGS__)
#define TRY(x) do { attn_status s_ = (x); if (s_ != ATTN_OK) return s_; } while (0)

static attn_status view(attn_view *v, const attn_tensor *t, const char *name, int ndim,
                        unsigned dts, int device)
{
    return attn_view_init(v, t, "attn_merge", name, ndim, dts, device);
}

static int same_shape(const attn_view *a, const attn_view *b)
{
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

attn_status attn_validate_merge(const attn_context *ctx, const attn_tensor *outs,
                                const attn_tensor *lses, int n, const attn_tensor *out,
                                const attn_tensor *lse, attn_merge_problem *pr, int *device)
{
    attn_view *pouts = pr->outs, *plses = pr->lses;
    memset(pr, 0, sizeof *pr);
    pr->outs = pouts;
    pr->lses = plses;
    if (!ctx)  return INVALID("ctx is NULL");
    if (n < 1) return INVALID("n is %d, need at least one part", n);
    if (!outs) return INVALID("outs is NULL");
    if (!lses) return INVALID("lses is NULL");
    if (!out)  return INVALID("out is NULL");
    const int dev = attn_tensor_device(out);
    TRY(view(&pr->out, out, "out", 4, ATTN_DT_FLOAT, dev));
    const int64_t *os = pr->out.shape;
    pr->b = os[0]; pr->s = os[1]; pr->h = os[2]; pr->dv = os[3];
    if (lse) {
        TRY(view(&pr->lse, lse, "lse", 3, ATTN_DT_BIT(ATTN_F32), dev));
        if (pr->lse.shape[0] != pr->b || pr->lse.shape[1] != pr->h || pr->lse.shape[2] != pr->s)
            return INVALID("lse has shape [%lld,%lld,%lld], expected [%lld,%lld,%lld]",
                           (long long)pr->lse.shape[0], (long long)pr->lse.shape[1],
                           (long long)pr->lse.shape[2], (long long)pr->b, (long long)pr->h,
                           (long long)pr->s);
        pr->has_lse = 1;
    }
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "outs[%d]", i);
        TRY(view(&pouts[i], &outs[i], name, 4, ATTN_DT_FLOAT, dev));
        if (!same_shape(&pouts[i], &pr->out))
            return INVALID("outs[%d] and out have different shapes", i);
        snprintf(name, sizeof name, "lses[%d]", i);
        TRY(view(&plses[i], &lses[i], name, 3, ATTN_DT_BIT(ATTN_F32), dev));
        if (plses[i].shape[0] != pr->b || plses[i].shape[1] != pr->h || plses[i].shape[2] != pr->s)
            return INVALID("lses[%d] has shape [%lld,%lld,%lld], expected [%lld,%lld,%lld]", i,
                           (long long)plses[i].shape[0], (long long)plses[i].shape[1],
                           (long long)plses[i].shape[2], (long long)pr->b, (long long)pr->h,
                           (long long)pr->s);
    }
    /* Outputs must not alias any part. */
    for (int i = 0; i < n; i++) {
        const attn_view *in[2] = { &pouts[i], &plses[i] };
        char n0[32], n1[32];
        snprintf(n0, sizeof n0, "outs[%d]", i);
        snprintf(n1, sizeof n1, "lses[%d]", i);
        const char *names[2] = { n0, n1 };
        TRY(attn_check_output(&pr->out, "attn_merge: out", in, names, 2));
        if (pr->has_lse)
            TRY(attn_check_output(&pr->lse, "attn_merge: lse", in, names, 2));
    }
    if (pr->has_lse) {
        const attn_view *in[1] = { &pr->out };
        const char *names[1] = { "out" };
        TRY(attn_check_output(&pr->lse, "attn_merge: lse", in, names, 1));
    }
    pr->n = n;
    *device = dev;
    return ATTN_OK;
}
