/* attn_neighborhood argument validation (src/validate_neighborhood.c). */
#ifndef ATTN_VALIDATE_NEIGHBORHOOD_H
#define ATTN_VALIDATE_NEIGHBORHOOD_H

#include "backend.h"

/* Checks every argument of attn_neighborhood; on success fills *pr (views
 * widened to 3 grid axes) and *device. */
attn_status attn_validate_neighborhood(const attn_context *ctx, const attn_neighborhood_params *p,
                                       const attn_tensor *q, const attn_tensor *k,
                                       const attn_tensor *v, const attn_tensor *out,
                                       const attn_tensor *lse, attn_neighborhood_problem *pr,
                                       int *device);

#endif
