/* The attn_neighborhood reference (tests/ref_neighborhood.h). */
#include <stdio.h>
#include <stdlib.h>
#include "ref.h"
#include "ref_neighborhood.h"

int64_t nb_tokens(const nb_case *c)
{
    int64_t n = 1;
    for (int a = 0; a < c->nd; a++)
        n *= c->len[a];
    return n;
}

void nb_shapes(const nb_case *c, int64_t *sq, int64_t *sk, int64_t *sv, int64_t *so,
               int64_t *sl)
{
    sq[0] = sk[0] = sv[0] = so[0] = sl[0] = c->b;
    for (int a = 0; a < c->nd; a++)
        sq[1 + a] = sk[1 + a] = sv[1 + a] = so[1 + a] = sl[1 + a] = c->len[a];
    sq[c->nd + 1] = so[c->nd + 1] = sl[c->nd + 1] = c->hq;
    sk[c->nd + 1] = sv[c->nd + 1] = c->hkv;
    sq[c->nd + 2] = sk[c->nd + 2] = c->d;
    sv[c->nd + 2] = so[c->nd + 2] = c->dv;
}

/* Sub-grid window [*s, *e) of sub-grid position p (n positions, kernel k),
 * written as NATTEN computes its window start: the centred start, pushed
 * back by the overhang past the far end. */
static void natten_window(int64_t p, int64_t n, int64_t k, int causal, int64_t *s, int64_t *e)
{
    const int64_t r = k / 2;
    if (causal) {
        *s = p - k + 1 < 0 ? 0 : p - k + 1;
        *e = p + 1;
        return;
    }
    int64_t st = p - r < 0 ? 0 : p - r;
    if (p + r >= n)
        st += n - p - r - 1;
    *s = st;
    *e = st + k;
}

/* 1 if grid index j is in the window of query index i along one axis. */
static int axis_visible(int64_t i, int64_t j, int64_t len, int64_t k, int64_t dil, int causal)
{
    if (i % dil != j % dil)
        return 0;
    const int64_t c = i % dil, n = (len - c + dil - 1) / dil;
    int64_t s, e;
    natten_window(i / dil, n, k, causal, &s, &e);
    return j / dil >= s && j / dil < e;
}

/* mask [1, 1, N, N] over the flattened grid (axes as the caller gives them). */
static uint8_t *build_mask(const nb_case *c, int64_t ntok)
{
    uint8_t *m = malloc((size_t)(ntok * ntok));
    int64_t stride[3] = { 1, 1, 1 };
    for (int a = c->nd - 2; a >= 0; a--)
        stride[a] = stride[a + 1] * c->len[a + 1];
    for (int64_t qi = 0; qi < ntok; qi++) {
        int64_t seen = 0;
        for (int64_t kj = 0; kj < ntok; kj++) {
            int vis = 1;
            for (int a = 0; a < c->nd && vis; a++) {
                const int64_t i = qi / stride[a] % c->len[a], j = kj / stride[a] % c->len[a];
                vis = axis_visible(i, j, c->len[a], c->kern[a], c->dil[a], c->causal[a]);
            }
            m[qi * ntok + kj] = (uint8_t)vis;
            seen += vis;
        }
        int64_t want = 1;
        for (int a = 0; a < c->nd; a++)
            want *= c->kern[a];
        CHECK(seen >= 1 && (seen == want || c->causal[0] || c->causal[1] || c->causal[2]),
              "test mask: query %lld sees %lld keys", (long long)qi, (long long)seen);
    }
    return m;
}

/* A contiguous f32 [B, N, H, D] copy of a grid tensor (values exact). */
static float *flat_copy(const tu_tensor *x, int nd, int64_t ntok)
{
    const attn_tensor *t = &x->t;
    const int64_t h = t->shape[nd + 1], d = t->shape[nd + 2], b = t->shape[0];
    float *f = malloc((size_t)(b * ntok * h * d) * sizeof(float));
    int64_t idx[6] = { 0 }, i = 0;
    for (idx[0] = 0; idx[0] < b; idx[0]++)
        for (int64_t tok = 0; tok < ntok; tok++) {
            int64_t rem = tok;
            for (int a = nd - 1; a >= 0; a--) {
                idx[1 + a] = rem % t->shape[1 + a];
                rem /= t->shape[1 + a];
            }
            for (idx[nd + 1] = 0; idx[nd + 1] < h; idx[nd + 1]++)
                for (idx[nd + 2] = 0; idx[nd + 2] < d; idx[nd + 2]++)
                    f[i++] = (float)ref_get(t, idx);
        }
    return f;
}

void nb_describe(const nb_case *c, char *buf, size_t n)
{
    int o = snprintf(buf, n, "%dd grid", c->nd);
    for (int a = 0; a < c->nd; a++)
        o += snprintf(buf + o, n - (size_t)o, "%s%lld", a ? "x" : " ", (long long)c->len[a]);
    o += snprintf(buf + o, n - (size_t)o, " kernel");
    for (int a = 0; a < c->nd; a++)
        o += snprintf(buf + o, n - (size_t)o, "%s%lld", a ? "x" : " ", (long long)c->kern[a]);
    o += snprintf(buf + o, n - (size_t)o, " dil");
    for (int a = 0; a < c->nd; a++)
        o += snprintf(buf + o, n - (size_t)o, "%s%lld", a ? "x" : " ", (long long)c->dil[a]);
    o += snprintf(buf + o, n - (size_t)o, " causal %d%d%d B%lld H%lld/%lld D%lld/%lld %s->%s%s %s",
                  c->causal[0], c->causal[1], c->causal[2], (long long)c->b, (long long)c->hq,
                  (long long)c->hkv, (long long)c->d, (long long)c->dv, tu_dtype_name(c->in_dt),
                  tu_dtype_name(c->out_dt), c->lse ? " lse" : "", tu_layout_name(c->layout));
    if (c->scale != 0.0f)
        snprintf(buf + o, n - (size_t)o, " scale %g", (double)c->scale);
}

attn_neighborhood_params nb_params(const nb_case *c)
{
    attn_neighborhood_params p = ATTN_NEIGHBORHOOD_PARAMS_INIT;
    p.ndim = c->nd;
    p.scale = c->scale;
    for (int a = 0; a < 3; a++) {
        p.kernel_size[a] = c->kern[a];
        p.dilation[a] = c->dil[a];
        p.is_causal[a] = c->causal[a];
    }
    return p;
}

int ref_neighborhood(const nb_case *c, const tu_tensor *q, const tu_tensor *k,
                     const tu_tensor *v, double *out, double *lse)
{
    const int64_t ntok = nb_tokens(c);
    float *fq = flat_copy(q, c->nd, ntok), *fk = flat_copy(k, c->nd, ntok);
    float *fv = flat_copy(v, c->nd, ntok);
    uint8_t *mask = build_mask(c, ntok);
    double *rl = malloc((size_t)(c->b * ntok * c->hq) * sizeof(double));
    int rc = -1;
    if (fq && fk && fv && mask && rl) {
        attn_tensor rq = attn_tensor_4d(fq, ATTN_F32, c->b, ntok, c->hq, c->d);
        attn_tensor rk = attn_tensor_4d(fk, ATTN_F32, c->b, ntok, c->hkv, c->d);
        attn_tensor rv = attn_tensor_4d(fv, ATTN_F32, c->b, ntok, c->hkv, c->dv);
        attn_tensor rm = attn_tensor_4d(mask, ATTN_U8, 1, 1, ntok, ntok);
        attn_sdpa_params sp = ATTN_SDPA_PARAMS_INIT;
        sp.mask = &rm;
        sp.scale = c->scale;
        rc = ref_sdpa(&sp, &rq, &rk, &rv, out, rl);
        for (int64_t bi = 0; bi < c->b; bi++)  /* [B,H,N] -> [B,N,H] like the op's lse */
            for (int64_t h = 0; h < c->hq; h++)
                for (int64_t t = 0; t < ntok; t++)
                    lse[(bi * ntok + t) * c->hq + h] = rl[(bi * c->hq + h) * ntok + t];
    }
    free(fq); free(fk); free(fv); free(mask); free(rl);
    return rc;
}
