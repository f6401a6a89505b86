/* The recurrent form of attn_linear: one token at a time, for decode.
 * Per token, with alpha = exp(g) (per channel, scalar, or 1):
 *   non-delta:  S[c] = alpha_c S[c] + k_c v;           o = sum_c q_c S[c]
 *   delta:      w = sum_c alpha_c k_c S[c];  u = beta (v - w)
 *               S[c] = alpha_c S[c] + k_c u;           o = sum_c q_c S[c]
 * so the state is read once (non-delta) or twice (delta: once for w, once
 * for the fused update + output) and written once per token. */
#include <math.h>
#include <string.h>
#include "linear.h"

size_t attn_linear_recurrent_ws_floats(const attn_linear_problem *p)
{
    const int64_t lk = attn_linear_round16(p->dk), lv = attn_linear_round16(p->dv);
    return (size_t)(3 * lk + 4 * lv);
}

void attn_linear_recurrent(const attn_linear_task *t)
{
    const attn_linear_problem *p = t->p;
    const attn_linear_kernels *ks = t->ks;
    const int64_t dk = p->dk, dv = p->dv, lds = t->lds;
    const int64_t lk = attn_linear_round16(dk), lv = attn_linear_round16(dv);
    float *q = t->ws, *k = q + lk, *a = k + lk;
    float *v = a + lk, *u = v + lv, *o = u + lv, *w = o + lv;
    const int delta = attn_linear_is_delta(p->kind);
    float *S = t->S;

    for (int64_t i = 0; i < t->len; i++) {
        attn_linear_load_qk(t, &p->q, i, q, p->scale);
        attn_linear_load_qk(t, &p->k, i, k, 1.0f);
        attn_linear_load_v(t, i, v);
        const int gated = attn_linear_load_g(t, i, a);
        const int per_channel = gated && p->g_per_channel;
        if (per_channel)
            ks->vexp(a, dk);
        else if (gated)
            a[0] = expf(a[0]);
        else
            a[0] = 1.0f;
        const float *x = v;
        if (delta) {
            memset(w, 0, (size_t)dv * sizeof *w);
            for (int64_t c = 0; c < dk; c++)
                ks->axpy(w, (per_channel ? a[c] : a[0]) * k[c], S + c * lds, dv);
            const float beta = attn_linear_load_beta(t, i);
            for (int64_t j = 0; j < dv; j++)
                u[j] = beta * (v[j] - w[j]);
            x = u;
        }
        memset(o, 0, (size_t)dv * sizeof *o);
        for (int64_t c = 0; c < dk; c++)
            ks->row_update(S + c * lds, per_channel ? a[c] : a[0], k[c], x, q[c], o, dv);
        if (p->normalize) {
            float den = 0.0f;
            for (int64_t c = 0; c < dk; c++) {
                t->z[c] += k[c];
                den += q[c] * t->z[c];
            }
            const float inv = 1.0f / (den + p->norm_eps);
            for (int64_t j = 0; j < dv; j++)
                o[j] *= inv;
        }
        attn_linear_store_o(t, i, o);
    }
}
