/* attn_neighborhood argument validation. Each rule fails with a message that
 * names the argument; tests/test_neighborhood.c has a case for each. */
#include <math.h>
#include <string.h>
#include "error.h"
#include "validate.h"
#include "validate_neighborhood.h"

#define INVALID(...) attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_neighborhood: " __VA_ARGS__)
#define TRY(x) do { attn_status s_ = (x); if (s_ != ATTN_OK) return s_; } while (0)

/* Head dims past this are refused: per-thread tile workspace grows with them. */
#define NBHD_MAX_DIM 1024
static const char *const axis_names[3] = { "X", "Y", "Z" };

static attn_status view(attn_view *v, const attn_tensor *t, const char *name, int ndim,
                        unsigned dts, int device)
{
    return attn_view_init(v, t, "attn_neighborhood", name, ndim, dts, device);
}

static attn_status expect_shape(const attn_view *v, const char *name, int n, const int64_t *want)
{
    return attn_view_expect_shape(v, "attn_neighborhood", name, n, want);
}

/* Widens a [B, <nd grid axes>, rest...] view to [B, 1.., grid, rest...] with
 * 3 grid axes (the added axes have length 1). */
static void widen(attn_view *v, int nd)
{
    const int pad = 3 - nd;
    for (int i = v->ndim - 1; i >= 1; i--) {
        v->shape[i + pad] = v->shape[i];
        v->stride[i + pad] = v->stride[i];
    }
    for (int i = 1; i <= pad; i++) {
        v->shape[i] = 1;
        v->stride[i] = 0;
    }
    v->ndim += pad;
}

static attn_status check_axes(const attn_neighborhood_params *p, const int64_t *len)
{
    for (int a = 0; a < p->ndim; a++) {
        const int64_t kk = p->kernel_size[a], dl = p->dilation[a];
        const char *an = axis_names[a];
        if (kk < 3 || kk % 2 == 0)
            return INVALID("params->kernel_size[%d] (axis %s) is %lld; a kernel size must be odd "
                           "and at least 3", a, an, (long long)kk);
        if (kk > len[a])
            return INVALID("params->kernel_size[%d] is %lld, more than axis %s's length %lld", a,
                           (long long)kk, an, (long long)len[a]);
        if (dl < 1)
            return INVALID("params->dilation[%d] (axis %s) is %lld; must be at least 1", a, an,
                           (long long)dl);
        if (dl > len[a] / kk)
            return INVALID("params->dilation[%d] * kernel_size[%d] = %lld * %lld exceeds axis "
                           "%s's length %lld", a, a, (long long)dl, (long long)kk, an,
                           (long long)len[a]);
    }
    return ATTN_OK;
}

attn_status attn_validate_neighborhood(const attn_context *ctx, const attn_neighborhood_params *up,
                                       const attn_tensor *q, const attn_tensor *k,
                                       const attn_tensor *v, const attn_tensor *out,
                                       const attn_tensor *lse, attn_neighborhood_problem *pr,
                                       int *device)
{
    memset(pr, 0, sizeof *pr);
    if (!ctx) return INVALID("ctx is NULL");
    if (!up)  return INVALID("params is NULL");
    if (!q)   return INVALID("q is NULL");
    if (!k)   return INVALID("k is NULL");
    if (!v)   return INVALID("v is NULL");
    if (!out) return INVALID("out is NULL");
    if (up->size < sizeof(size_t) + sizeof(int) || up->size > sizeof(attn_neighborhood_params))
        return INVALID("params->size is %zu; initialise params with "
                       "ATTN_NEIGHBORHOOD_PARAMS_INIT", up->size);
    attn_neighborhood_params p = ATTN_NEIGHBORHOOD_PARAMS_INIT;
    memcpy(&p, up, up->size);
    if (p.ndim < 1 || p.ndim > 3)
        return INVALID("params->ndim is %d; neighborhood attention takes 1, 2 or 3 grid axes",
                       p.ndim);
    if (!isfinite(p.scale))
        return INVALID("params->scale is not finite");

    const int nd = p.ndim, tn = nd + 3;
    const int dev = attn_tensor_device(q);
    if (q->ndim != tn)
        return INVALID("q has %d dims; with params->ndim = %d it must be [B,%s,H,D] (%d dims)",
                       q->ndim, nd, nd == 1 ? "X" : nd == 2 ? "X,Y" : "X,Y,Z", tn);
    TRY(view(&pr->q, q, "q", tn, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->k, k, "k", tn, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->v, v, "v", tn, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->out, out, "out", tn, ATTN_DT_FLOAT, dev));
    if (k->dtype != q->dtype || v->dtype != q->dtype)
        return INVALID("q, k and v must share a dtype (got %d, %d, %d)", (int)q->dtype,
                       (int)k->dtype, (int)v->dtype);

    const int64_t b = pr->q.shape[0];
    int64_t len[3];
    for (int a = 0; a < nd; a++)
        len[a] = pr->q.shape[1 + a];
    const int64_t hq = pr->q.shape[nd + 1], d = pr->q.shape[nd + 2];
    const int64_t hkv = pr->k.shape[nd + 1], dv = pr->v.shape[nd + 2];
    for (int a = 0; a < nd; a++)
        if (len[a] < 1)
            return INVALID("q's axis %s has length %lld; grids must not be empty", axis_names[a],
                           (long long)len[a]);
    if (b < 1)
        return INVALID("q has batch %lld; need at least 1", (long long)b);
    if (hq < 1 || hkv < 1)
        return INVALID("need at least one head (q has %lld, k has %lld)", (long long)hq,
                       (long long)hkv);
    if (hq % hkv)
        return INVALID("q's %lld heads are not a multiple of k's %lld heads", (long long)hq,
                       (long long)hkv);
    if (d < 1 || dv < 1)
        return INVALID("head dims must be at least 1 (q/k %lld, v %lld)", (long long)d,
                       (long long)dv);
    {
        int64_t w[6];
        w[0] = b;
        for (int a = 0; a < nd; a++)
            w[1 + a] = len[a];
        w[nd + 1] = hkv; w[nd + 2] = d;
        TRY(expect_shape(&pr->k, "k", tn, w));
        w[nd + 2] = dv;
        TRY(expect_shape(&pr->v, "v", tn, w));
        w[nd + 1] = hq;
        TRY(expect_shape(&pr->out, "out", tn, w));
        if (lse) {
            TRY(view(&pr->lse, lse, "lse", tn - 1, ATTN_DT_BIT(ATTN_F32), dev));
            TRY(expect_shape(&pr->lse, "lse", tn - 1, w));
            pr->has_lse = 1;
        }
    }
    TRY(check_axes(&p, len));
    if (d > NBHD_MAX_DIM || dv > NBHD_MAX_DIM)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_neighborhood: head dims above %d are not "
                         "supported (D %lld, Dv %lld)", NBHD_MAX_DIM, (long long)d,
                         (long long)dv);

    const attn_view *in[3] = { &pr->q, &pr->k, &pr->v };
    const char *in_names[3] = { "q", "k", "v" };
    TRY(attn_check_output(&pr->out, "attn_neighborhood: out", in, in_names, 3));
    if (pr->has_lse) {
        TRY(attn_check_output(&pr->lse, "attn_neighborhood: lse", in, in_names, 3));
        if (attn_views_overlap(&pr->lse, &pr->out))
            return INVALID("lse overlaps out in memory");
    }

    widen(&pr->q, nd);
    widen(&pr->k, nd);
    widen(&pr->v, nd);
    widen(&pr->out, nd);
    if (pr->has_lse)
        widen(&pr->lse, nd);
    pr->b = b;
    pr->hq = hq;
    pr->hkv = hkv;
    pr->d = d;
    pr->dv = dv;
    for (int a = 0; a < 3; a++) {
        const int u = a - (3 - nd);   /* the caller's axis, < 0 for padding */
        pr->len[a] = u < 0 ? 1 : len[u];
        pr->kernel[a] = u < 0 ? 1 : p.kernel_size[u];
        pr->dil[a] = u < 0 ? 1 : p.dilation[u];
        pr->causal[a] = u < 0 ? 0 : p.is_causal[u] != 0;
    }
    pr->scale = p.scale != 0.0f ? p.scale : 1.0f / sqrtf((float)d);
    *device = dev;
    return ATTN_OK;
}
