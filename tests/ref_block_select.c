/* Reference attn_block_select (see ref_block_select.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ref.h"
#include "ref_block_select.h"

typedef struct geom {
    int64_t sq, sk, bq, bk, nbq, nbk;
    int causal;
} geom;

/* Allowed prefix of key blocks of block row I and its diagonal block. */
static int64_t allowed_blocks(const geom *g, int64_t I, int64_t *diag)
{
    int64_t last = (I + 1) * g->bq - 1;
    if (last > g->sq - 1)
        last = g->sq - 1;
    const int64_t d = last + g->sk - g->sq;
    *diag = (d < 0 ? 0 : d) / g->bk;
    if (!g->causal)
        return g->nbk;
    return d < 0 ? 0 : d / g->bk + 1;
}

static double qk_elem(const attn_tensor *t, int64_t b, int64_t row, int64_t h, int64_t c)
{
    int64_t idx[4] = { b, row, h, c };
    return ref_get(t, idx);
}

/* Closer than eps times the row's unit (total share, or largest |score|):
 * f32 rounding is relative to that, not to the values themselves. */
static int near(double a, double b, double eps, double unit)
{
    return fabs(a - b) <= eps * unit;
}

/* Applies the keep rule to one block row; returns 1 if the outcome is close. */
static int keep_row(const attn_block_select_params *p, const geom *g, int64_t I,
                    const double *w, uint8_t *row, double eps)
{
    memset(row, 0, (size_t)g->nbk);
    int64_t diag;
    const int64_t n = allowed_blocks(g, I, &diag);
    if (n == 0)
        return 0;
    const int xattn = p->method == ATTN_BLOCK_SELECT_XATTN;
    row[diag] = 1;
    if (xattn)
        row[0] = 1;
    int64_t kept = xattn && diag != 0 ? 2 : 1;
    double total = 0.0, mass = 0.0, unit = 1e-30;
    for (int64_t j = 0; j < n; j++) {
        total += w[j];
        unit = fmax(unit, fabs(w[j]));
        if (row[j])
            mass += w[j];
    }
    int close = 0;
    /* selection by repeated arg-max: highest w, lowest index on ties */
    for (;;) {
        if (xattn && p->threshold < 1.0f && near(mass, p->threshold * total, eps, total))
            close = 1;
        if (xattn ? (p->threshold >= 1.0f ? 0 : mass >= p->threshold * total)
                  : kept >= p->top_k)
            break;
        int64_t best = -1;
        for (int64_t j = 0; j < n; j++)
            if (!row[j] && (best < 0 || w[j] > w[best]))
                best = j;
        if (best < 0)
            break;
        for (int64_t j = 0; j < n; j++)
            if (!row[j] && j != best && near(w[j], w[best], eps, xattn ? total : unit) && w[j] != w[best])
                close = 1;
        row[best] = 1;
        kept++;
        mass += w[best];
    }
    return close;
}

int ref_block_select(const attn_block_select_params *p, const attn_tensor *q,
                     const attn_tensor *k, uint8_t *mask, uint8_t *close, double eps)
{
    const int64_t B = q->shape[0], Hq = q->shape[2], Hkv = k->shape[2], D = q->shape[3];
    geom g = { q->shape[1], k->shape[1], p->block_q, p->block_k, 0, 0, p->causal != 0 };
    if (p->block_q < 1 || p->block_k < 1 || Hq % Hkv)
        return -1;
    g.nbq = (g.sq + g.bq - 1) / g.bq;
    g.nbk = (g.sk + g.bk - 1) / g.bk;
    const double scale = p->scale != 0.0f ? p->scale : 1.0 / sqrt((double)D);
    const int64_t s = p->stride;
    double *w = calloc((size_t)g.nbk + 1, sizeof *w);
    double *pooled = calloc((size_t)(g.nbk + 1) * (size_t)D, sizeof *pooled);
    double *row = calloc((size_t)g.sk / (s > 0 ? s : 1) + 2, sizeof *row);
    /* one head of q and of k as doubles: qh[i*D + e], kh[j*D + e] */
    double *qh = calloc((size_t)(g.sq * D) + 1, sizeof *qh);
    double *kh = calloc((size_t)(g.sk * D) + 1, sizeof *kh);
    if (!w || !pooled || !row || !qh || !kh)
        return -1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t hk = h / (Hq / Hkv);
            for (int64_t i = 0; i < g.sq; i++)
                for (int64_t e = 0; e < D; e++)
                    qh[i * D + e] = qk_elem(q, b, i, h, e);
            for (int64_t j = 0; j < g.sk; j++)
                for (int64_t e = 0; e < D; e++)
                    kh[j * D + e] = qk_elem(k, b, j, hk, e);
            if (p->method == ATTN_BLOCK_SELECT_MOBA)
                for (int64_t J = 0; J < g.nbk; J++) {
                    const int64_t j1 = (J + 1) * g.bk < g.sk ? (J + 1) * g.bk : g.sk;
                    for (int64_t c = 0; c < D; c++) {
                        double acc = 0.0;
                        for (int64_t j = J * g.bk; j < j1; j++)
                            acc += kh[j * D + c];
                        pooled[J * D + c] = acc / (double)(j1 - J * g.bk);
                    }
                }
            for (int64_t I = 0; I < g.nbq; I++) {
                const int64_t i0 = I * g.bq, i1 = (I + 1) * g.bq < g.sq ? (I + 1) * g.bq : g.sq;
                int64_t diag;
                const int64_t n = allowed_blocks(&g, I, &diag);
                for (int64_t J = 0; J < g.nbk; J++)
                    w[J] = 0.0;
                if (p->method == ATTN_BLOCK_SELECT_MOBA) {
                    for (int64_t J = 0; J < n; J++)
                        for (int64_t c = 0; c < D; c++) {
                            double qm = 0.0;
                            for (int64_t i = i0; i < i1; i++)
                                qm += qh[i * D + c];
                            w[J] += qm / (double)(i1 - i0) * pooled[J * D + c];
                        }
                } else {
                    const int64_t nsk = (g.sk + s - 1) / s;
                    for (int64_t r = i0 / s; r * s < i1; r++) {
                        const int64_t last = (r + 1) * s < g.sq ? (r + 1) * s - 1 : g.sq - 1;
                        const int64_t d = last + g.sk - g.sq;
                        int64_t ncell = 0;
                        double mx = -INFINITY;
                        for (int64_t c = 0; c < nsk; c++) {
                            row[c] = NAN;
                            if ((c * s) / g.bk >= n || (g.causal && c * s > d))
                                continue;
                            double a = 0.0;
                            for (int64_t t = 0; t < s; t++) {
                                const int64_t qi = r * s + s - 1 - t, kj = c * s + t;
                                if (qi >= g.sq || kj >= g.sk)
                                    continue;
                                for (int64_t e = 0; e < D; e++)
                                    a += qh[qi * D + e] * kh[kj * D + e];
                            }
                            row[c] = scale * a / (double)s;
                            mx = fmax(mx, row[c]);
                            ncell++;
                        }
                        if (!ncell)
                            continue;
                        double sum = 0.0;
                        for (int64_t c = 0; c < nsk; c++)
                            if (!isnan(row[c]))
                                sum += exp(row[c] - mx);
                        for (int64_t c = 0; c < nsk; c++)
                            if (!isnan(row[c]))
                                w[(c * s) / g.bk] += exp(row[c] - mx) / sum;
                    }
                }
                const int64_t at = (b * Hq + h) * g.nbq + I;
                const int cl = keep_row(p, &g, I, w, mask + at * g.nbk, eps);
                if (close)
                    close[at] = (uint8_t)cl;
            }
        }
    free(w);
    free(pooled);
    free(row);
    free(qh);
    free(kh);
    return 0;
}
