/* attn_linear argument validation (src/validate_linear.c). */
#ifndef ATTN_VALIDATE_LINEAR_H
#define ATTN_VALIDATE_LINEAR_H

#include "backend.h"

/* Checks every argument of attn_linear; on success fills *pr and *device. */
attn_status attn_validate_linear(const attn_context *ctx, const attn_linear_params *p,
                                 const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                                 const attn_tensor *g, const attn_tensor *beta,
                                 const attn_tensor *state_in, const attn_tensor *out,
                                 const attn_tensor *state_out, attn_linear_problem *pr,
                                 int *device);

#endif
