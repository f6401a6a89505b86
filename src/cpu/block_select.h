/* The CPU attn_block_select: block geometry and ranking shared by the two
 * selection rules (src/cpu/block_select.c), and the XAttention antidiagonal
 * scoring (src/cpu/block_select_xattn.c). */
#ifndef ATTN_CPU_BLOCK_SELECT_H
#define ATTN_CPU_BLOCK_SELECT_H

#include "cpu_backend.h"

/* Allowed key blocks of query block I form a prefix [0, n): n is returned.
 * *diag is the diagonal block D_I (meaningful when n > 0). */
int64_t attn_bs_allowed(const attn_block_select_problem *p, int64_t I, int64_t *diag);

/* Writes block row (b, h, I) of the mask: `share` (nbk floats, entries past
 * the allowed prefix ignored) ranks the blocks; `scratch` holds 4*nbk
 * floats, 8-byte aligned. XATTN keeps by cumulative share, MOBA the top_k. */
void attn_bs_write_row(const attn_block_select_problem *p, int64_t b, int64_t h, int64_t I,
                       const float *share, void *scratch);

/* XAttention scoring and selection of every block row. */
attn_status attn_cpu_block_select_xattn(attn_cpu_state *st, const attn_block_select_problem *p);

#endif
