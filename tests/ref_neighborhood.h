/* The attn_neighborhood reference shared by tests/test_neighborhood.c (CPU)
 * and tests/test_neighborhood_gpu.c (OpenCL, Vulkan): attn_sdpa's double
 * reference (tests/ref.c) over the flattened grid with the boolean mask
 * built from NATTEN's window rule, written independently of the library. */
#ifndef ATTN_TEST_REF_NEIGHBORHOOD_H
#define ATTN_TEST_REF_NEIGHBORHOOD_H

#include <stddef.h>
#include "testutil.h"

typedef struct nb_case {
    int nd;
    int64_t len[3], kern[3], dil[3];
    int causal[3];
    int64_t b, hq, hkv, d, dv;
    attn_dtype in_dt, out_dt;
    int lse, layout;
    float scale;        /* the params' scale (0: 1 / sqrt(d)) */
} nb_case;

/* Tokens of the case's grid. */
int64_t nb_tokens(const nb_case *c);

/* The shapes of q, k, v, out (nd + 3 dims) and lse (nd + 2) of case c. */
void nb_shapes(const nb_case *c, int64_t *sq, int64_t *sk, int64_t *sv, int64_t *so,
               int64_t *sl);

/* "2d grid 5x7 kernel 3x5 ..." */
void nb_describe(const nb_case *c, char *buf, size_t n);

/* The case's params (ndim, kernel sizes, dilations, causal axes). */
attn_neighborhood_params nb_params(const nb_case *c);

/* The reference of host tensors q, k, v (shapes of case c): out as
 * [B, tokens, Hq, Dv] and lse as [B, tokens, Hq], both contiguous, caller
 * allocated. 0 on success. */
int ref_neighborhood(const nb_case *c, const tu_tensor *q, const tu_tensor *k,
                     const tu_tensor *v, double *out, double *lse);

#endif
