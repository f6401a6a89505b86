/* attn_merge on the CPU: out = sum_i exp(lse_i - L) out_i, L = logsumexp(lse_i). */
#include <math.h>
#include <stdlib.h>
#include "config.h"
#include "cpu_backend.h"
#include "half.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

static inline char *row_ptr(const attn_view *v, int64_t b, int64_t s, int64_t h)
{
    return v->base + (b * v->stride[0] + s * v->stride[1] + h * v->stride[2]) *
                     (int64_t)attn_dtype_size(v->dtype);
}

static inline float lse_at(const attn_view *v, int64_t b, int64_t s, int64_t h)
{
    return ((const float *)v->base)[b * v->stride[0] + h * v->stride[1] + s * v->stride[2]];
}

/* One row: weights w_i = exp(lse_i - L) into w[n], the weighted sum into acc[dv]. */
static void merge_row(const attn_merge_problem *p, int64_t b, int64_t s, int64_t h,
                      float *w, float *acc)
{
    float mx = -INFINITY;
    for (int i = 0; i < p->n; i++) {
        w[i] = lse_at(&p->lses[i], b, s, h);
        mx = w[i] > mx ? w[i] : mx;
    }
    float sum = 0.0f;
    for (int i = 0; i < p->n; i++) {
        w[i] = mx == -INFINITY ? 0.0f : expf(w[i] - mx);   /* -inf parts weigh 0 */
        sum += w[i];
    }
    for (int64_t c = 0; c < p->dv; c++)
        acc[c] = 0.0f;
    for (int i = 0; i < p->n; i++) {
        if (w[i] == 0.0f)
            continue;
        const float wi = w[i] / sum;
        const char *src = row_ptr(&p->outs[i], b, s, h);
        for (int64_t c = 0; c < p->dv; c++)
            acc[c] += wi * attn_load_f32(src, p->outs[i].dtype, c * p->outs[i].stride[3]);
    }
    char *dst = row_ptr(&p->out, b, s, h);
    for (int64_t c = 0; c < p->dv; c++)
        attn_store_f32(dst, p->out.dtype, c * p->out.stride[3], acc[c]);
    if (p->has_lse)
        ((float *)p->lse.base)[b * p->lse.stride[0] + h * p->lse.stride[1] + s * p->lse.stride[2]] =
            mx == -INFINITY ? -INFINITY : mx + logf(sum);
}

attn_status attn_cpu_merge(attn_device *dev, const attn_merge_problem *p)
{
    const attn_cpu_state *st = dev->impl;
    if (p->b == 0 || p->s == 0 || p->h == 0 || p->dv == 0)
        return ATTN_OK;   /* before multiplying: empty views may have huge other dims */
    const int64_t rows = p->b * p->s * p->h;
    int nt = st->num_threads < rows ? st->num_threads : (int)rows;
    const size_t per = (size_t)p->n + (size_t)p->dv;
    float *ws = malloc((size_t)nt * per * sizeof(float));
    if (!ws)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_merge: out of memory");
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
    {
        float *w = ws + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            merge_row(p, r / (p->h * p->s), (r / p->h) % p->s, r % p->h, w, w + p->n);
    }
#else
    for (int64_t r = 0; r < rows; r++)
        merge_row(p, r / (p->h * p->s), (r / p->h) % p->s, r % p->h, ws, ws + p->n);
#endif
    free(ws);
    return ATTN_OK;
}
