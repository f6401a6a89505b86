/* Score tiles to weights, row by row: the online softmax update (through
 * the kernel set's softmax_rows where it has one, else a portable loop over
 * its vexp), its fresh-tile case, and sigmoid scores. Shared by the sdpa,
 * decode, neighborhood and block-selection drivers. */
#ifndef ATTN_CPU_SOFTMAX_TILE_H
#define ATTN_CPU_SOFTMAX_TILE_H

#include "kernels.h"

/* Online-softmax update of the nq rows of s (row stride lds, nk columns)
 * against running maxima m and sums l: scores become exp(s - m_new) in
 * place, alpha[r] = exp(m_old - m_new) is the factor for the row's
 * accumulator (1 where the row has seen no finite score yet, its entries
 * then 0), l[r] = l[r] * alpha[r] + the row's new sum. */
void attn_cpu_softmax_online(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                             float *m, float *l, float *alpha);

/* The update of a fresh tile: m[r] = the row maximum, s[r][c] =
 * exp(s[r][c] - m[r]), l[r] = the sum of the row. Every row must hold at
 * least one finite score. alpha (nq floats) is scratch. */
void attn_cpu_softmax_fresh(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                            float *m, float *l, float *alpha);

/* Sigmoid scores: P = sigmoid(S + bias) for visible entries, no normaliser
 * (alpha[r] = 1). Evaluated as e = exp(-|x|), then 1/(1+e) or e/(1+e) by
 * the sign of x, so nothing overflows; hidden entries (-inf) give e = 0 and
 * P = 0. x is a scratch row of at least nk floats. */
void attn_cpu_sigmoid_rows(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                           float bias, float *alpha, float *x);

#endif
