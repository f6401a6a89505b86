/* attn_linear argument validation. Each rule fails with a message that names
 * the argument; tests/test_linear.c has a case for each. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "error.h"
#include "validate.h"
#include "validate_linear.h"

#define INVALID(...) attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_linear: " __VA_ARGS__)
#define TRY(x) do { attn_status s_ = (x); if (s_ != ATTN_OK) return s_; } while (0)

/* Head dims past this are refused: per-thread chunk workspace grows with them. */
#define LINEAR_MAX_DIM 1024
#define LINEAR_MAX_CHUNK 256
#define LINEAR_PARAMS_MIN_SIZE sizeof(attn_linear_params)

static const char *const kind_names[] = { "PLAIN", "DECAY", "GLA", "DELTA", "GATED_DELTA", "KDA" };

static attn_status view(attn_view *v, const attn_tensor *t, const char *name, int ndim,
                        unsigned dts, int device)
{
    return attn_view_init(v, t, "attn_linear", name, ndim, dts, device);
}

static attn_status expect_shape(const attn_view *v, const char *name, int n, const int64_t *want)
{
    return attn_view_expect_shape(v, "attn_linear", name, n, want);
}

static attn_status check_cu(const int32_t *cu, int64_t n, int64_t total, int64_t *longest)
{
    if (cu[0] != 0)
        return INVALID("params->cu_seqlens[0] is %d, must be 0", cu[0]);
    *longest = 0;
    for (int64_t i = 0; i < n; i++) {
        if (cu[i + 1] < cu[i])
            return INVALID("params->cu_seqlens is not monotonic: [%lld] = %d < [%lld] = %d",
                           (long long)i + 1, cu[i + 1], (long long)i, cu[i]);
        if (cu[i + 1] - cu[i] > *longest)
            *longest = cu[i + 1] - cu[i];
    }
    if (cu[n] > total)
        return INVALID("params->cu_seqlens[%lld] = %d is past the packed length %lld",
                       (long long)n, cu[n], (long long)total);
    return ATTN_OK;
}

static int same_view(const attn_view *a, const attn_view *b)
{
    if (a->base != b->base || a->buffer != b->buffer || a->offset != b->offset ||
        a->dtype != b->dtype || a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i] || (a->shape[i] > 1 && a->stride[i] != b->stride[i]))
            return 0;
    return 1;
}

attn_status attn_validate_linear(const attn_context *ctx, const attn_linear_params *up,
                                 const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                                 const attn_tensor *g, const attn_tensor *beta,
                                 const attn_tensor *state_in, const attn_tensor *out,
                                 const attn_tensor *state_out, attn_linear_problem *pr,
                                 int *device)
{
    memset(pr, 0, sizeof *pr);
    if (!ctx) return INVALID("ctx is NULL");
    if (!up)  return INVALID("params is NULL");
    if (!q)   return INVALID("q is NULL");
    if (!k)   return INVALID("k is NULL");
    if (!v)   return INVALID("v is NULL");
    if (!out) return INVALID("out is NULL");
    if (up->size < LINEAR_PARAMS_MIN_SIZE || up->size > sizeof(attn_linear_params))
        return INVALID("params->size is %zu; initialise params with ATTN_LINEAR_PARAMS_INIT",
                       up->size);
    attn_linear_params p = ATTN_LINEAR_PARAMS_INIT;
    memcpy(&p, up, up->size);

    /* Scalars and which optional inputs each kind takes. */
    if ((unsigned)p.kind > (unsigned)ATTN_LINEAR_KDA)
        return INVALID("params->kind is %d, not an attn_linear_kind", (int)p.kind);
    const char *kn = kind_names[p.kind];
    const int delta = p.kind == ATTN_LINEAR_DELTA || p.kind == ATTN_LINEAR_GATED_DELTA ||
                      p.kind == ATTN_LINEAR_KDA;
    if ((unsigned)p.algo > (unsigned)ATTN_LINEAR_ALGO_CHUNKWISE)
        return INVALID("params->algo is %d, not an attn_linear_algo", (int)p.algo);
    if ((unsigned)p.feature > (unsigned)ATTN_LINEAR_FEATURE_RELU)
        return INVALID("params->feature is %d, not an attn_linear_feature", (int)p.feature);
    if (p.feature != ATTN_LINEAR_FEATURE_IDENTITY && delta)
        return INVALID("params->feature must be IDENTITY for %s (feature maps apply to PLAIN, "
                       "DECAY and GLA)", kn);
    if (p.chunk_size < 0 || p.chunk_size > LINEAR_MAX_CHUNK)
        return INVALID("params->chunk_size is %d; use 0 (default %d) or 1..%d", p.chunk_size,
                       ATTN_LINEAR_DEFAULT_CHUNK, LINEAR_MAX_CHUNK);
    if (!isfinite(p.scale))
        return INVALID("params->scale is not finite");
    if (p.normalize && p.kind != ATTN_LINEAR_PLAIN)
        return INVALID("params->normalize applies to PLAIN only, not %s", kn);
    if (p.normalize && (!isfinite(p.norm_eps) || p.norm_eps < 0.0f))
        return INVALID("params->norm_eps must be finite and >= 0");
    if (!p.normalize && (p.z_in || p.z_out))
        return INVALID("params->z_in/z_out are the normaliser state; they need params->normalize");
    if (p.decay && p.kind != ATTN_LINEAR_DECAY)
        return INVALID("params->decay is only used by DECAY, not %s; pass NULL", kn);
    if (p.kind == ATTN_LINEAR_DECAY && !p.decay && !g)
        return INVALID("DECAY needs a gate: g [B,S,H] (log-decay per step) or params->decay [H]");
    if (p.kind == ATTN_LINEAR_DECAY && p.decay && g)
        return INVALID("DECAY takes either g or params->decay, not both");
    if ((p.kind == ATTN_LINEAR_GLA || p.kind == ATTN_LINEAR_KDA ||
         p.kind == ATTN_LINEAR_GATED_DELTA) && !g)
        return INVALID("g is NULL: %s needs a log-gate g [B,S,H%s]", kn,
                       p.kind == ATTN_LINEAR_GATED_DELTA ? "" : ",Dk");
    if ((p.kind == ATTN_LINEAR_PLAIN || p.kind == ATTN_LINEAR_DELTA) && g)
        return INVALID("%s has no gate; g must be NULL", kn);
    if (delta && !beta)
        return INVALID("beta is NULL: %s needs beta [B,S,H]", kn);
    if (!delta && beta)
        return INVALID("%s does not use beta; pass NULL (beta is for the delta kinds)", kn);
    const int varlen = p.cu_seqlens != NULL;
    if (varlen && p.num_seqs < 1)
        return INVALID("params->num_seqs is %lld; varlen needs at least one sequence",
                       (long long)p.num_seqs);
    if (!varlen && p.num_seqs != 0)
        return INVALID("params->num_seqs is set but params->cu_seqlens is NULL");

    /* Main tensors. */
    const int dev = attn_tensor_device(q);
    TRY(view(&pr->q, q, "q", 4, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->k, k, "k", 4, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->v, v, "v", 4, ATTN_DT_FLOAT, dev));
    TRY(view(&pr->out, out, "out", 4, ATTN_DT_FLOAT, dev));
    if (k->dtype != q->dtype || v->dtype != q->dtype)
        return INVALID("q, k and v must share a dtype (got %d, %d, %d)", (int)q->dtype,
                       (int)k->dtype, (int)v->dtype);
    const int64_t bt = pr->q.shape[0], s = pr->q.shape[1], h = pr->q.shape[2];
    const int64_t dk = pr->q.shape[3], dv = pr->v.shape[3];
    if (h < 1)
        return INVALID("q has %lld heads; need at least 1", (long long)h);
    if (dk < 1 || dv < 1)
        return INVALID("head dims must be at least 1 (q/k %lld, v %lld)", (long long)dk,
                       (long long)dv);
    {
        const int64_t wk[4] = { bt, s, h, dk }, wv[4] = { bt, s, h, dv };
        TRY(expect_shape(&pr->k, "k", 4, wk));
        TRY(expect_shape(&pr->v, "v", 4, wv));
        TRY(expect_shape(&pr->out, "out", 4, wv));
    }
    if (dk > LINEAR_MAX_DIM || dv > LINEAR_MAX_DIM)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_linear: head dims above %d are not "
                         "supported (Dk %lld, Dv %lld)", LINEAR_MAX_DIM, (long long)dk,
                         (long long)dv);
    if (p.decay)
        for (int64_t i = 0; i < h; i++)
            if (!(p.decay[i] > 0.0f && p.decay[i] <= 1.0f))
                return INVALID("params->decay[%lld] is %g; a decay must lie in (0, 1]",
                               (long long)i, (double)p.decay[i]);

    int64_t nseq = bt, len = s;
    if (varlen) {
        if (bt != 1)
            return INVALID("varlen (cu_seqlens) needs packed tensors with batch 1, q has %lld",
                           (long long)bt);
        if (p.num_seqs > INT32_MAX - 1)
            return INVALID("params->num_seqs is too large (%lld)", (long long)p.num_seqs);
        TRY(check_cu(p.cu_seqlens, p.num_seqs, s, &len));
        nseq = p.num_seqs;
    }

    const attn_view *in[8] = { &pr->q, &pr->k, &pr->v, NULL, NULL, NULL, NULL, NULL };
    const char *in_names[8] = { "q", "k", "v", "g", "beta", "state_in", "params->z_in", "out" };
    if (g) {
        const int per_channel = p.kind == ATTN_LINEAR_GLA || p.kind == ATTN_LINEAR_KDA;
        if (g->ndim != (per_channel ? 4 : 3))
            return INVALID("g has %d dims; %s takes a %s log-gate [B,S,H%s]", g->ndim, kn,
                           per_channel ? "per-channel" : "scalar", per_channel ? ",Dk" : "");
        TRY(view(&pr->g, g, "g", per_channel ? 4 : 3, ATTN_DT_FLOAT, dev));
        const int64_t wg[4] = { bt, s, h, dk };
        TRY(expect_shape(&pr->g, "g", per_channel ? 4 : 3, wg));
        pr->has_g = 1;
        pr->g_per_channel = per_channel;
        in[3] = &pr->g;
    }
    if (beta) {
        TRY(view(&pr->beta, beta, "beta", 3, ATTN_DT_FLOAT, dev));
        const int64_t wb[3] = { bt, s, h };
        TRY(expect_shape(&pr->beta, "beta", 3, wb));
        pr->has_beta = 1;
        in[4] = &pr->beta;
    }
    const int64_t ws[4] = { nseq, h, dk, dv };
    if (state_in) {
        TRY(view(&pr->state_in, state_in, "state_in", 4, ATTN_DT_BIT(ATTN_F32), dev));
        TRY(expect_shape(&pr->state_in, "state_in", 4, ws));
        pr->has_state_in = 1;
        in[5] = &pr->state_in;
    }
    if (p.z_in) {
        TRY(view(&pr->z_in, p.z_in, "params->z_in", 3, ATTN_DT_BIT(ATTN_F32), dev));
        TRY(expect_shape(&pr->z_in, "params->z_in", 3, ws));
        pr->has_z_in = 1;
        in[6] = &pr->z_in;
    }

    /* Outputs: none may overlap itself, an input or another output; the one
     * exception is state_out (z_out) being exactly state_in (z_in). */
    TRY(attn_check_output(&pr->out, "attn_linear: out", in, in_names, 7));
    in[7] = &pr->out;
    if (state_out) {
        TRY(view(&pr->state_out, state_out, "state_out", 4, ATTN_DT_BIT(ATTN_F32), dev));
        TRY(expect_shape(&pr->state_out, "state_out", 4, ws));
        const attn_view *save = in[5];
        if (pr->has_state_in && same_view(&pr->state_out, &pr->state_in))
            in[5] = NULL;           /* in-place update */
        TRY(attn_check_output(&pr->state_out, "attn_linear: state_out", in, in_names, 8));
        in[5] = save;
        pr->has_state_out = 1;
    }
    if (p.z_out) {
        TRY(view(&pr->z_out, p.z_out, "params->z_out", 3, ATTN_DT_BIT(ATTN_F32), dev));
        TRY(expect_shape(&pr->z_out, "params->z_out", 3, ws));
        const attn_view *save = in[6];
        if (pr->has_z_in && same_view(&pr->z_out, &pr->z_in))
            in[6] = NULL;
        TRY(attn_check_output(&pr->z_out, "attn_linear: params->z_out", in, in_names, 8));
        if (pr->has_state_out && attn_views_overlap(&pr->z_out, &pr->state_out))
            return INVALID("params->z_out overlaps state_out in memory");
        in[6] = save;
        pr->has_z_out = 1;
    }

    pr->kind = p.kind;
    pr->feature = p.feature;
    pr->algo = p.algo;
    pr->normalize = p.normalize != 0;
    pr->l2norm_qk = p.l2norm_qk != 0;
    pr->chunk = p.chunk_size ? p.chunk_size : ATTN_LINEAR_DEFAULT_CHUNK;
    pr->scale = p.scale != 0.0f ? p.scale : (float)(1.0 / sqrt((double)dk));
    pr->norm_eps = p.norm_eps;
    pr->decay = p.decay;
    pr->num_seqs = nseq;
    pr->s = len;
    pr->h = h;
    pr->dk = dk;
    pr->dv = dv;
    pr->cu = p.cu_seqlens;
    *device = dev;
    return ATTN_OK;
}
