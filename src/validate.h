/* Validation of each op's arguments into a problem description. Runs once,
 * in src/, before any backend: a backend may assume valid input. */
#ifndef ATTN_VALIDATE_H
#define ATTN_VALIDATE_H

#include "backend.h"

/* Copies a caller's size-versioned params into *p (defaults for fields its
 * size lacks) and checks every scalar field: score, scale, softcap, sigmoid
 * bias, windows, sinks, and the sigmoid exclusions (lse, sink logits).
 * Messages start with `op`. Shared by attn_sdpa and attn_decode. */
attn_status attn_read_sdpa_params(const char *op, const attn_sdpa_params *up, int want_lse,
                                  attn_sdpa_params *p);

/* Checks every argument of attn_sdpa; on success fills *pr and *device. */
attn_status attn_validate_sdpa(const attn_context *ctx, const attn_sdpa_params *p,
                               const attn_tensor *q, const attn_tensor *k, const attn_tensor *v,
                               const attn_tensor *out, const attn_tensor *lse,
                               attn_sdpa_problem *pr, int *device);

/* Checks every argument of attn_merge; on success fills *pr (whose outs and
 * lses arrays the caller provides, n entries each) and *device. */
attn_status attn_validate_merge(const attn_context *ctx, const attn_tensor *outs,
                                const attn_tensor *lses, int n, const attn_tensor *out,
                                const attn_tensor *lse, attn_merge_problem *pr, int *device);

/* Fails if `o` (an output) overlaps itself or any of the n views in `in`. */
attn_status attn_check_output(const attn_view *o, const char *oname,
                              const attn_view *const *in, const char *const *inames, int n);

#endif
