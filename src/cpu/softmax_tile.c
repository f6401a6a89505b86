/* Score tiles to weights (see softmax_tile.h). */
#include <math.h>
#include <string.h>
#include "config.h"
#include "softmax_tile.h"

void attn_cpu_softmax_online(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                             float *m, float *l, float *alpha)
{
    if (ks->softmax_rows) {
        ks->softmax_rows(s, lds, nq, nk, m, l, alpha);
        return;
    }
    for (int r = 0; r < nq; r++) {
        float *row = s + r * lds;
        float mt = -INFINITY;
        for (int c = 0; c < nk; c++)
            mt = row[c] > mt ? row[c] : mt;
        const float mn = mt > m[r] ? mt : m[r];
        if (mn == -INFINITY) {          /* nothing visible yet: keep zeros */
            alpha[r] = 1.0f;
            memset(row, 0, (size_t)nk * sizeof *row);
            continue;
        }
        alpha[r] = expf(m[r] - mn);     /* m = -inf gives 0 */
        m[r] = mn;
        for (int c = 0; c < nk; c++)
            row[c] -= mn;
        ks->vexp(row, nk);
        float sum = 0.0f;
        for (int c = 0; c < nk; c++)
            sum += row[c];
        l[r] = l[r] * alpha[r] + sum;
    }
}

void attn_cpu_softmax_fresh(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                            float *m, float *l, float *alpha)
{
    for (int r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    attn_cpu_softmax_online(ks, s, lds, nq, nk, m, l, alpha);
}

void attn_cpu_sigmoid_rows(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                           float bias, float *alpha, float *x)
{
    for (int r = 0; r < nq; r++) {
        float *row = s + r * lds;
        alpha[r] = 1.0f;
        for (int c = 0; c < nk; c++) {
            x[c] = row[c] + bias;
            row[c] = -fabsf(x[c]);
        }
        ks->vexp(row, nk);
        for (int c = 0; c < nk; c++)
            row[c] = (x[c] >= 0.0f ? 1.0f : row[c]) / (1.0f + row[c]);
    }
}
