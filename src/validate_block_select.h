/* attn_block_select argument validation (src/validate_block_select.c). */
#ifndef ATTN_VALIDATE_BLOCK_SELECT_H
#define ATTN_VALIDATE_BLOCK_SELECT_H

#include "backend.h"

/* Checks every argument of attn_block_select; on success fills *pr and *device. */
attn_status attn_validate_block_select(const attn_context *ctx,
                                       const attn_block_select_params *p,
                                       const attn_tensor *q, const attn_tensor *k,
                                       const attn_tensor *block_mask,
                                       attn_block_select_problem *pr, int *device);

#endif
