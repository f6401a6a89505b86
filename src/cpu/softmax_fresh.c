/* Softmax of fresh score rows (see softmax_fresh.h). */
#include <math.h>
#include "config.h"
#include "softmax_fresh.h"

void attn_cpu_softmax_fresh(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                            float *m, float *l, float *alpha)
{
    for (int r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    if (ks->softmax_rows) {
        ks->softmax_rows(s, lds, nq, nk, m, l, alpha);
        return;
    }
    for (int r = 0; r < nq; r++) {
        float *row = s + r * lds;
        float mt = -INFINITY;
        for (int c = 0; c < nk; c++)
            mt = row[c] > mt ? row[c] : mt;
        m[r] = mt;
        for (int c = 0; c < nk; c++)
            row[c] -= mt;
        ks->vexp(row, nk);
        float sum = 0.0f;
        for (int c = 0; c < nk; c++)
            sum += row[c];
        l[r] = sum;
    }
}
