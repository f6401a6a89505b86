/* attn_decode argument validation. Each rule fails with a message naming the
 * argument; tests/test_decode.c exercises them. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "error.h"
#include "kv_cache.h"
#include "validate.h"
#include "validate_decode.h"

#define INVALID(...) attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_decode: " __VA_ARGS__)
#define TRY(x) do { attn_status s_ = (x); if (s_ != ATTN_OK) return s_; } while (0)

/* Every tensor lives on the device that holds the cache: decode runs there. */
static attn_status view(attn_view *v, const attn_tensor *t, const char *name, int ndim,
                        unsigned dts, const attn_kv_cache *c)
{
    if (attn_tensor_device(t) != c->device)
        return INVALID("%s is on device %d but the cache lives on device %d; decode runs where "
                       "the cache is, so pass %s there", name, attn_tensor_device(t), c->device,
                       name);
    attn_status s = attn_view_init(v, t, "attn_decode", name, ndim, dts, c->device);
    if (s != ATTN_OK)
        return s;
    if (c->device == 0 && !v->base && attn_view_numel(v) > 0)
        return INVALID("%s is not host-addressable", name);
    return ATTN_OK;
}

attn_status attn_validate_decode(const attn_context *ctx, const attn_sdpa_params *up,
                                 const attn_tensor *q, const attn_kv_cache *c,
                                 const int32_t *seqs, const attn_tensor *out,
                                 const attn_tensor *lse, attn_decode_problem *pr, int *device)
{
    memset(pr, 0, sizeof *pr);
    if (!ctx)   return INVALID("ctx is NULL");
    if (!up)    return INVALID("params is NULL");
    if (!q)     return INVALID("q is NULL");
    if (!c)     return INVALID("cache is NULL");
    if (!out)   return INVALID("out is NULL");
    if (c->ctx != ctx)
        return INVALID("the cache was created on another context");
    attn_sdpa_params p;
    TRY(attn_read_sdpa_params("attn_decode", up, lse != NULL, &p));
    if (p.mask)
        return INVALID("params->mask is not supported by attn_decode; pass NULL");
    if (p.block_mask)
        return INVALID("params->block_mask is not supported by attn_decode; pass NULL");
    if (p.cu_seqlens_q || p.cu_seqlens_k)
        return INVALID("params->cu_seqlens_q/k must be NULL: attn_decode takes its sequences "
                       "from the cache (seqs)");

    TRY(view(&pr->q, q, "q", 4, ATTN_DT_FLOAT, c));
    TRY(view(&pr->out, out, "out", 4, ATTN_DT_FLOAT, c));
    const int64_t *qs = pr->q.shape, *os = pr->out.shape;
    const int64_t b = qs[0], sq = qs[1], hq = qs[2], d = qs[3];
    if (sq < 1 || sq > ATTN_DECODE_MAX_SQ)
        return INVALID("q has %lld query tokens per sequence (dim 1); attn_decode takes 1..%d",
                       (long long)sq, ATTN_DECODE_MAX_SQ);
    if (d != c->d)
        return INVALID("q's head dim %lld differs from the cache's %lld", (long long)d,
                       (long long)c->d);
    if (hq < 1 || hq % c->hkv)
        return INVALID("q heads (%lld) are not a multiple of the cache's k/v heads (%lld)",
                       (long long)hq, (long long)c->hkv);
    if (os[0] != b || os[1] != sq || os[2] != hq || os[3] != c->dv)
        return INVALID("out has shape [%lld,%lld,%lld,%lld], expected [%lld,%lld,%lld,%lld]",
                       (long long)os[0], (long long)os[1], (long long)os[2], (long long)os[3],
                       (long long)b, (long long)sq, (long long)hq, (long long)c->dv);
    if (b > 0 && !seqs)
        return INVALID("seqs is NULL");
    for (int64_t i = 0; i < b; i++) {
        const int32_t s = seqs[i];
        if (s < 0 || s >= c->max_seqs)
            return INVALID("seqs[%lld] = %d is outside [0, max_seqs = %lld)", (long long)i, s,
                           (long long)c->max_seqs);
        if (!c->seqs[s].active)
            return INVALID("seqs[%lld] = %d is an unknown sequence (it holds no tokens)",
                           (long long)i, s);
        const int64_t len = attn_kv_kept(c, &c->seqs[s]);
        if (len < sq)
            return INVALID("sequence %d holds %lld tokens, fewer than the %lld query tokens "
                           "(append the new tokens before attn_decode)", s, (long long)len,
                           (long long)sq);
    }

    const attn_view *inputs[2] = { &pr->q, NULL };
    const char *inames[2] = { "q", "gate" };
    if (lse) {
        TRY(view(&pr->lse, lse, "lse", 3, ATTN_DT_BIT(ATTN_F32), c));
        const int64_t *ls = pr->lse.shape;
        if (ls[0] != b || ls[1] != hq || ls[2] != sq)
            return INVALID("lse has shape [%lld,%lld,%lld], expected [%lld,%lld,%lld]",
                           (long long)ls[0], (long long)ls[1], (long long)ls[2], (long long)b,
                           (long long)hq, (long long)sq);
        pr->has_lse = 1;
    }
    if (p.gate) {
        TRY(view(&pr->gate, p.gate, "gate", 4, ATTN_DT_FLOAT, c));
        const int64_t *gs = pr->gate.shape;
        if (gs[0] != b || gs[1] != sq || gs[2] != hq || gs[3] != c->dv)
            return INVALID("gate has shape [%lld,%lld,%lld,%lld], expected out's [%lld,%lld,%lld,%lld]",
                           (long long)gs[0], (long long)gs[1], (long long)gs[2], (long long)gs[3],
                           (long long)b, (long long)sq, (long long)hq, (long long)c->dv);
        pr->has_gate = 1;
        inputs[1] = &pr->gate;
    }
    TRY(attn_check_output(&pr->out, "attn_decode: out", inputs, inames, 2));
    if (pr->has_lse) {
        const attn_view *lin[3] = { inputs[0], inputs[1], &pr->out };
        const char *lnames[3] = { "q", "gate", "out" };
        TRY(attn_check_output(&pr->lse, "attn_decode: lse", lin, lnames, 3));
    }

    pr->cache = c;
    pr->seqs = seqs;
    pr->b = b;
    pr->sq = sq;
    pr->hq = hq;
    pr->hkv = c->hkv;
    pr->d = d;
    pr->dv = c->dv;
    pr->scale = p.scale != 0.0f ? p.scale : (float)(1.0 / sqrt((double)d));
    pr->softcap = p.softcap;
    pr->sigmoid_bias = p.sigmoid_bias;
    pr->score = p.score;
    pr->causal = p.causal != 0;
    pr->window_left = p.window_left;
    pr->window_right = p.window_right;
    pr->sink_tokens = p.sink_tokens;
    pr->alibi_slopes = p.alibi_slopes;
    pr->sink_logits = p.sink_logits;
    *device = c->device;
    return ATTN_OK;
}
