/* Row softmax numerators of a fresh score tile, through the kernel set's
 * softmax_rows where it has one, else a portable loop (the scalar set). */
#ifndef ATTN_CPU_SOFTMAX_FRESH_H
#define ATTN_CPU_SOFTMAX_FRESH_H

#include "kernels.h"

/* For each of the nq rows of s (row stride lds, nk columns): m[r] = the row
 * maximum, s[r][c] = exp(s[r][c] - m[r]), l[r] = the sum of the row. Every
 * row must hold at least one finite score. alpha (nq floats) is scratch. */
void attn_cpu_softmax_fresh(const attn_cpu_kernels *ks, float *s, int64_t lds, int nq, int nk,
                            float *m, float *l, float *alpha);

#endif
