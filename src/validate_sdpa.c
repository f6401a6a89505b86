/* attn_sdpa argument validation. Each rule fails with a message that names
 * the argument; tests/test_validation.c has a case for every rule. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "error.h"
#include "validate.h"

#define INVALID(...) attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_sdpa: " __VA_ARGS__)
#define TRY(x) do { attn_status s_ = (x); if (s_ != ATTN_OK) return s_; } while (0)

/* Head dims past this are refused: tiles and workspace assume a sane D. */
#define ATTN_MAX_HEAD_DIM 4096

/* The params struct as first published, without num_seqs: the smallest size accepted. */
#define SDPA_PARAMS_MIN_SIZE offsetof(attn_sdpa_params, num_seqs)

static attn_status view(attn_view *v, const attn_tensor *t, const char *name, int ndim,
                        unsigned dts, int device)
{
    return attn_view_init(v, t, "attn_sdpa", name, ndim, dts, device);
}

attn_status attn_check_output(const attn_view *o, const char *oname,
                              const attn_view *const *in, const char *const *inames, int n)
{
    if (attn_view_self_overlaps(o))
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: its strides make distinct elements "
                         "share memory", oname);
    for (int i = 0; i < n; i++)
        if (in[i] && attn_views_overlap(o, in[i]))
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s overlaps %s in memory; outputs "
                             "must not alias inputs or other outputs", oname, inames[i]);
    return ATTN_OK;
}

/* cu_seqlens: starts at 0, never decreases, ends inside the packed tensor. */
static attn_status check_cu(const int32_t *cu, int64_t n, int64_t total, const char *name,
                            int64_t *longest)
{
    if (cu[0] != 0)
        return INVALID("%s[0] is %d, must be 0", name, cu[0]);
    *longest = 0;
    for (int64_t i = 0; i < n; i++) {
        if (cu[i + 1] < cu[i])
            return INVALID("%s is not monotonic: [%lld] = %d < [%lld] = %d", name,
                           (long long)i + 1, cu[i + 1], (long long)i, cu[i]);
        if (cu[i + 1] - cu[i] > *longest)
            *longest = cu[i + 1] - cu[i];
    }
    if (cu[n] > total)
        return INVALID("%s[%lld] = %d is past the packed length %lld", name, (long long)n,
                       cu[n], (long long)total);
    return ATTN_OK;
}

/* ceil(a / b) for a >= 0, b >= 1, without the overflow of (a + b - 1) / b. */
static int64_t ceil_div(int64_t a, int64_t b)
{
    return a == 0 ? 0 : (a - 1) / b + 1;
}

/* A [B|1, H|1, rows, cols] tensor: checks the shape and zeroes the strides
 * of broadcast dims so kernels index it uniformly. */
static attn_status check_broadcast4(attn_view *v, const char *name, int64_t b, int64_t h,
                                    int64_t rows, int64_t cols)
{
    if ((v->shape[0] != b && v->shape[0] != 1) || (v->shape[1] != h && v->shape[1] != 1) ||
        v->shape[2] != rows || v->shape[3] != cols)
        return INVALID("%s has shape [%lld,%lld,%lld,%lld], expected [%lld|1,%lld|1,%lld,%lld]",
                       name, (long long)v->shape[0], (long long)v->shape[1],
                       (long long)v->shape[2], (long long)v->shape[3], (long long)b,
                       (long long)h, (long long)rows, (long long)cols);
    if (v->shape[0] == 1) v->stride[0] = 0;
    if (v->shape[1] == 1) v->stride[1] = 0;
    return ATTN_OK;
}

attn_status attn_read_sdpa_params(const char *op, const attn_sdpa_params *up, int want_lse,
                                  attn_sdpa_params *p)
{
#define BAD(fmt, ...) attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: " fmt, op, ##__VA_ARGS__)
    if (up->size < SDPA_PARAMS_MIN_SIZE || up->size > sizeof(attn_sdpa_params))
        return BAD("params->size is %zu; initialise params with ATTN_SDPA_PARAMS_INIT", up->size);
    *p = (attn_sdpa_params)ATTN_SDPA_PARAMS_INIT;
    memcpy(p, up, up->size);
    if (p->score != ATTN_SCORE_SOFTMAX && p->score != ATTN_SCORE_SIGMOID)
        return BAD("params->score is %d, not an attn_score", (int)p->score);
    if (!isfinite(p->scale))
        return BAD("params->scale is not finite");
    if (!isfinite(p->softcap) || p->softcap < 0.0f)
        return BAD("params->softcap must be 0 (off) or a positive finite cap");
    if (!isfinite(p->sigmoid_bias))
        return BAD("params->sigmoid_bias is not finite");
    if (p->window_left < -1)
        return BAD("params->window_left is %lld; use -1 for unlimited", (long long)p->window_left);
    if (p->window_right < -1)
        return BAD("params->window_right is %lld; use -1 for unlimited", (long long)p->window_right);
    if (p->sink_tokens < 0)
        return BAD("params->sink_tokens is negative (%lld)", (long long)p->sink_tokens);
    if (p->score == ATTN_SCORE_SIGMOID && want_lse)
        return BAD("lse is undefined for sigmoid attention (no normaliser); pass NULL");
    if (p->score == ATTN_SCORE_SIGMOID && p->sink_logits)
        return BAD("params->sink_logits needs softmax; sigmoid attention has no denominator");
    return ATTN_OK;
#undef BAD
}

attn_status attn_validate_sdpa(const attn_context *ctx, const attn_sdpa_params *up,
                               const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                               const attn_tensor *out, const attn_tensor *lse,
                               attn_sdpa_problem *pr, int *device)
{
    memset(pr, 0, sizeof *pr);
    if (!ctx) return INVALID("ctx is NULL");
    if (!up)  return INVALID("params is NULL");
    if (!q)   return INVALID("q is NULL");
    if (!k)   return INVALID("k is NULL");
    if (!v)   return INVALID("v is NULL");
    if (!out) return INVALID("out is NULL");
    attn_sdpa_params p;
    TRY(attn_read_sdpa_params("attn_sdpa", up, lse != NULL, &p));
    const int varlen = p.cu_seqlens_q || p.cu_seqlens_k;
    if (varlen && (!p.cu_seqlens_q || !p.cu_seqlens_k))
        return INVALID("params->%s is NULL: varlen needs both cu_seqlens_q and cu_seqlens_k",
                       p.cu_seqlens_q ? "cu_seqlens_k" : "cu_seqlens_q");
    if (varlen && p.num_seqs < 1)
        return INVALID("params->num_seqs is %lld; varlen needs at least one sequence",
                       (long long)p.num_seqs);

    /* The four main tensors. */
    const int dev = attn_tensor_device(q);
    TRY(view(&pr->q, q, "q", 4, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->k, k, "k", 4, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->v, v, "v", 4, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->out, out, "out", 4, ATTN_DT_FLOAT, dev));
    if (k->dtype != q->dtype || v->dtype != q->dtype)
        return INVALID("q, k and v must share a dtype (got %d, %d, %d)", (int)q->dtype,
                       (int)k->dtype, (int)v->dtype);
    const int64_t *qs = pr->q.shape, *ks = pr->k.shape, *vs = pr->v.shape, *os = pr->out.shape;
    const int64_t bt = qs[0], sq = qs[1], hq = qs[2], d = qs[3];
    const int64_t sk = ks[1], hkv = ks[2], dv = vs[3];
    if (ks[0] != bt || vs[0] != bt)
        return INVALID("batch sizes differ: q %lld, k %lld, v %lld", (long long)bt,
                       (long long)ks[0], (long long)vs[0]);
    if (vs[1] != sk)
        return INVALID("k and v have different sequence lengths (%lld, %lld)", (long long)sk,
                       (long long)vs[1]);
    if (vs[2] != hkv)
        return INVALID("k and v have different head counts (%lld, %lld)", (long long)hkv,
                       (long long)vs[2]);
    if (ks[3] != d)
        return INVALID("q and k head dims differ (%lld, %lld)", (long long)d, (long long)ks[3]);
    if (hq < 1 || hkv < 1)
        return INVALID("head counts must be at least 1 (q %lld, k %lld)", (long long)hq,
                       (long long)hkv);
    if (d < 1 || dv < 1)
        return INVALID("head dims must be at least 1 (q/k %lld, v %lld)", (long long)d,
                       (long long)dv);
    if (hq % hkv)
        return INVALID("q heads (%lld) are not a multiple of k/v heads (%lld)", (long long)hq,
                       (long long)hkv);
    if (os[0] != bt || os[1] != sq || os[2] != hq || os[3] != dv)
        return INVALID("out has shape [%lld,%lld,%lld,%lld], expected [%lld,%lld,%lld,%lld]",
                       (long long)os[0], (long long)os[1], (long long)os[2], (long long)os[3],
                       (long long)bt, (long long)sq, (long long)hq, (long long)dv);
    /* Stride-0 views can describe any length in little memory; the kernels'
     * tile arithmetic assumes lengths that int32 cu_seqlens could express. */
    if (sq > INT32_MAX || sk > INT32_MAX)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_sdpa: sequence lengths above 2^31-1 are "
                         "not supported (q %lld, k %lld)", (long long)sq, (long long)sk);
    if (d > ATTN_MAX_HEAD_DIM || dv > ATTN_MAX_HEAD_DIM)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_sdpa: head dims above %d are not supported "
                         "(q/k %lld, v %lld)", ATTN_MAX_HEAD_DIM, (long long)d, (long long)dv);

    /* Sequences. */
    pr->num_seqs = bt;
    pr->sq = sq;
    pr->sk = sk;
    if (varlen) {
        if (bt != 1)
            return INVALID("varlen (cu_seqlens) needs packed tensors with batch 1, q has %lld",
                           (long long)bt);
        if (p.num_seqs > INT32_MAX - 1)
            return INVALID("params->num_seqs is too large (%lld)", (long long)p.num_seqs);
        TRY(check_cu(p.cu_seqlens_q, p.num_seqs, sq, "params->cu_seqlens_q", &pr->sq));
        TRY(check_cu(p.cu_seqlens_k, p.num_seqs, sk, "params->cu_seqlens_k", &pr->sk));
        pr->num_seqs = p.num_seqs;
        pr->cu_q = p.cu_seqlens_q;
        pr->cu_k = p.cu_seqlens_k;
    }

    /* Optional tensors. */
    const attn_view *inputs[6] = { &pr->q, &pr->k, &pr->v, NULL, NULL, NULL };
    const char *inames[6] = { "q", "k", "v", "gate", "mask", "block_mask" };
    if (lse) {
        TRY(view(&pr->lse, lse, "lse", 3, ATTN_DT_BIT(ATTN_F32), dev));
        const int64_t *ls = pr->lse.shape;
        if (ls[0] != bt || ls[1] != hq || ls[2] != sq)
            return INVALID("lse has shape [%lld,%lld,%lld], expected [%lld,%lld,%lld]",
                           (long long)ls[0], (long long)ls[1], (long long)ls[2], (long long)bt,
                           (long long)hq, (long long)sq);
        pr->has_lse = 1;
    }
    if (p.gate) {
        TRY(view(&pr->gate, p.gate, "gate", 4, ATTN_DT_FLOAT, dev));
        const int64_t *gs = pr->gate.shape;
        if (gs[0] != bt || gs[1] != sq || gs[2] != hq || gs[3] != dv)
            return INVALID("gate has shape [%lld,%lld,%lld,%lld], expected out's [%lld,%lld,%lld,%lld]",
                           (long long)gs[0], (long long)gs[1], (long long)gs[2], (long long)gs[3],
                           (long long)bt, (long long)sq, (long long)hq, (long long)dv);
        pr->has_gate = 1;
        inputs[3] = &pr->gate;
    }
    if (p.mask) {
        TRY(view(&pr->mask, p.mask, "mask", 4,
                 ATTN_DT_BIT(ATTN_F32) | ATTN_DT_BIT(ATTN_F16) | ATTN_DT_BIT(ATTN_U8), dev));
        TRY(check_broadcast4(&pr->mask, "mask", pr->num_seqs, hq, pr->sq, pr->sk));
        pr->has_mask = 1;
        pr->mask_is_bool = p.mask->dtype == ATTN_U8;
        inputs[4] = &pr->mask;
    }
    if (p.block_mask) {
        if (p.block_q < 1 || p.block_k < 1)
            return INVALID("params->block_q and block_k must be >= 1 with a block_mask (got %lld, %lld)",
                           (long long)p.block_q, (long long)p.block_k);
        TRY(view(&pr->block_mask, p.block_mask, "block_mask", 4, ATTN_DT_BIT(ATTN_U8), dev));
        TRY(check_broadcast4(&pr->block_mask, "block_mask", pr->num_seqs, hq,
                             ceil_div(pr->sq, p.block_q), ceil_div(pr->sk, p.block_k)));
        pr->has_block_mask = 1;
        pr->block_q = p.block_q;
        pr->block_k = p.block_k;
        inputs[5] = &pr->block_mask;
    }

    /* Outputs: no self-overlap, no aliasing with inputs or each other. */
    TRY(attn_check_output(&pr->out, "attn_sdpa: out", inputs, inames, 6));
    if (pr->has_lse) {
        const attn_view *lin[7] = { inputs[0], inputs[1], inputs[2], inputs[3], inputs[4],
                                    inputs[5], &pr->out };
        const char *lnames[7] = { "q", "k", "v", "gate", "mask", "block_mask", "out" };
        TRY(attn_check_output(&pr->lse, "attn_sdpa: lse", lin, lnames, 7));
    }

    pr->hq = hq;
    pr->hkv = hkv;
    pr->d = d;
    pr->dv = dv;
    pr->scale = p.scale != 0.0f ? p.scale : (float)(1.0 / sqrt((double)d));
    pr->softcap = p.softcap;
    pr->sigmoid_bias = p.sigmoid_bias;
    pr->score = p.score;
    pr->causal = p.causal != 0;
    /* Windows wider than Sq + Sk see every key, as unlimited ones do; clamping
     * them keeps the kernels' diagonal +- window arithmetic far from overflow. */
    const int64_t reach = pr->sq + pr->sk;
    pr->window_left = p.window_left > reach ? reach : p.window_left;
    pr->window_right = p.window_right > reach ? reach : p.window_right;
    pr->sink_tokens = p.sink_tokens > pr->sk ? pr->sk : p.sink_tokens;
    pr->alibi_slopes = p.alibi_slopes;
    pr->sink_logits = p.sink_logits;
    *device = dev;
    return ATTN_OK;
}
