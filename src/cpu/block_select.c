/* The CPU attn_block_select: the block geometry, the ranking rule that turns
 * per-block scores into kept blocks, and the MoBA-style scoring (mean-pooled
 * query block against mean-pooled key blocks). XAttention's antidiagonal
 * scoring is in block_select_xattn.c. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "block_select.h"
#include "half.h"
#include "../error.h"

#ifdef HAVE_OPENMP
#include <omp.h>
#endif

int64_t attn_bs_allowed(const attn_block_select_problem *p, int64_t I, int64_t *diag)
{
    const int64_t last = (I + 1) * p->block_q < p->sq ? (I + 1) * p->block_q - 1 : p->sq - 1;
    const int64_t d = last + p->sk - p->sq;
    *diag = (d < 0 ? 0 : d) / p->block_k;
    if (!p->causal)
        return p->nbk;
    return d < 0 ? 0 : d / p->block_k + 1;
}

/* Ranking keys: ascending key = decreasing score, equal scores (+0 and -0
 * too) by lower block index; NaN scores (from NaN inputs) rank last, so the
 * order stays total. High word: the score's bits made monotonic, inverted;
 * low word: the block index. */
static uint64_t rank_key(float score, int64_t j)
{
    uint32_t hi = UINT32_MAX;
    if (!isnan(score)) {
        uint32_t u;
        const float f = score == 0.0f ? 0.0f : score;
        memcpy(&u, &f, sizeof u);
        /* ascending in f; never UINT32_MAX for a number */
        hi = ~(u & 0x80000000u ? ~u : u | 0x80000000u);
    }
    return (uint64_t)hi << 32 | (uint64_t)j;
}

/* Sorts the n keys of a ascending, by bottom-up merging through tmp (n
 * keys); the merge picks without branches, as the keys come in no useful
 * order. */
static void sort_keys(uint64_t *a, uint64_t *tmp, int64_t n)
{
    uint64_t *src = a, *dst = tmp;
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            const int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                const uint64_t x = src[i], y = src[j];
                const int64_t right = y < x;
                dst[k++] = right ? y : x;
                j += right;
                i += 1 - right;
            }
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, (size_t)n * sizeof *a);
}

void attn_bs_write_row(const attn_block_select_problem *p, int64_t b, int64_t h, int64_t I,
                       const float *share, void *scratch)
{
    const attn_view *m = &p->mask;
    uint8_t *row = (uint8_t *)m->base + b * m->stride[0] + h * m->stride[1] + I * m->stride[2];
    const int64_t cs = m->stride[3];
    for (int64_t j = 0; j < p->nbk; j++)
        row[j * cs] = 0;
    int64_t diag;
    const int64_t n = attn_bs_allowed(p, I, &diag);
    if (n == 0)
        return;

    /* Forced blocks first: the diagonal (both rules) and the first (XATTN). */
    const int xattn = p->method == ATTN_BLOCK_SELECT_XATTN;
    row[diag * cs] = 1;
    int64_t kept = 1;
    double mass = share[diag], total = 0.0;
    if (xattn && diag != 0) {
        row[0] = 1;
        kept++;
        mass += share[0];
    }
    uint64_t *keys = scratch;
    int64_t nr = 0;
    for (int64_t j = 0; j < n; j++) {
        total += share[j];
        if (!row[j * cs])
            keys[nr++] = rank_key(share[j], j);
    }
    sort_keys(keys, keys + p->nbk, nr);
    if (xattn) {
        /* threshold 1 keeps everything, whatever the rounding of the sums */
        const double goal = p->threshold >= 1.0f ? 2.0 * total + 1.0 : p->threshold * total;
        for (int64_t t = 0; t < nr && mass < goal; t++) {
            const int64_t j = (int64_t)(keys[t] & UINT32_MAX);
            row[j * cs] = 1;
            mass += share[j];
        }
    } else {
        for (int64_t t = 0; t < nr && kept < p->top_k; t++, kept++)
            row[(keys[t] & UINT32_MAX) * cs] = 1;
    }
}

/* Mean over rows [r0, r1) of one head of a [B,S,H,D] view, as f32. */
static void mean_rows(const attn_view *x, int64_t b, int64_t h, int64_t r0, int64_t r1,
                      int64_t d, float *out)
{
    for (int64_t c = 0; c < d; c++)
        out[c] = 0.0f;
    const size_t es = attn_dtype_size(x->dtype);
    for (int64_t i = r0; i < r1; i++) {
        const char *src = x->base + (b * x->stride[0] + i * x->stride[1] + h * x->stride[2]) *
                                    (int64_t)es;
        for (int64_t c = 0; c < d; c++)
            out[c] += attn_load_f32(src, x->dtype, c * x->stride[3]);
    }
    const float inv = 1.0f / (float)(r1 - r0);
    for (int64_t c = 0; c < d; c++)
        out[c] *= inv;
}

/* MoBA: pooled keys per (sequence, KV head), then per (b, h, I) the pooled
 * query's dot products with the allowed pooled key blocks. Linear in S. */
static attn_status block_select_moba(const attn_cpu_state *st, const attn_block_select_problem *p)
{
    const int64_t d = p->d, nbk = p->nbk, group = p->hq / p->hkv;
    const int64_t ngroups = p->b * p->hkv;
    int nt = st->num_threads < 1 ? 1 : st->num_threads;
    /* per thread: the ranking scratch (4 floats a block), pooled query and
     * scores; even float counts keep the ranking scratch 8-byte aligned */
    const size_t per_thread = (size_t)(4 * nbk + d + (d & 1) + nbk + (nbk & 1));
    const size_t pooled = (size_t)(ngroups * nbk * d + ((ngroups * nbk * d) & 1));
    float *kbar = malloc((pooled + (size_t)nt * per_thread) * sizeof(float));
    if (!kbar)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_block_select: out of memory");
    float *thread_ws = kbar + pooled;
    const int64_t npool = ngroups * nbk, ntasks = p->b * p->hq * p->nbq;
#ifdef HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef HAVE_OPENMP
        float *ws = thread_ws + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for schedule(static)
#else
        float *ws = thread_ws;
#endif
        for (int64_t x = 0; x < npool; x++) {
            const int64_t gi = x / nbk, j = x % nbk;
            const int64_t j1 = (j + 1) * p->block_k < p->sk ? (j + 1) * p->block_k : p->sk;
            mean_rows(&p->k, gi / p->hkv, gi % p->hkv, j * p->block_k, j1, d, kbar + x * d);
        }
#ifdef HAVE_OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
        for (int64_t x = 0; x < ntasks; x++) {
            const int64_t I = x % p->nbq, h = (x / p->nbq) % p->hq, b = x / (p->nbq * p->hq);
            float *qbar = ws + 4 * nbk, *score = qbar + d + (d & 1);
            const int64_t i1 = (I + 1) * p->block_q < p->sq ? (I + 1) * p->block_q : p->sq;
            mean_rows(&p->q, b, h, I * p->block_q, i1, d, qbar);
            int64_t diag;
            const int64_t n = attn_bs_allowed(p, I, &diag);
            const float *kb = kbar + (b * p->hkv + h / group) * nbk * d;
            for (int64_t j = 0; j < n; j++) {
                float s = 0.0f;
                for (int64_t c = 0; c < d; c++)
                    s += qbar[c] * kb[j * d + c];
                score[j] = s;
            }
            attn_bs_write_row(p, b, h, I, score, ws);
        }
    }
    free(kbar);
    return ATTN_OK;
}

attn_status attn_cpu_block_select(attn_device *dev, const attn_block_select_problem *p)
{
    attn_cpu_state *st = dev->impl;
    if (p->method == ATTN_BLOCK_SELECT_MOBA)
        return block_select_moba(st, p);
    return attn_cpu_block_select_xattn(st, p);
}
