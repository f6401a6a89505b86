/* attn_decode argument validation (src/validate_decode.c). */
#ifndef ATTN_VALIDATE_DECODE_H
#define ATTN_VALIDATE_DECODE_H

#include "backend.h"

#define ATTN_DECODE_MAX_SQ 16

/* Checks every argument of attn_decode; on success fills *pr and *device. */
attn_status attn_validate_decode(const attn_context *ctx, const attn_sdpa_params *p,
                                 const attn_tensor *q, const attn_kv_cache *cache,
                                 const int32_t *seqs, const attn_tensor *out,
                                 const attn_tensor *lse, attn_decode_problem *pr, int *device);

#endif
