/*
 * Double-precision reference of attn_block_select, written from the rules in
 * include/attn.h only (nothing from src/). Plain loops, clarity first.
 */
#ifndef ATTN_TEST_REF_BLOCK_SELECT_H
#define ATTN_TEST_REF_BLOCK_SELECT_H

#include <stdint.h>
#include "attn.h"

/*
 * mask: uint8 [B, Hq, nbq, nbk] contiguous, fully written.
 * close: uint8 [B, Hq, nbq] contiguous, or NULL: set to 1 for block rows whose
 * outcome hangs on a comparison closer than rel_eps (relative), so that an
 * f32 implementation may legitimately decide it the other way.
 * Returns 0, or -1 for arguments it cannot use.
 */
int ref_block_select(const attn_block_select_params *p, const attn_tensor *q,
                     const attn_tensor *k, uint8_t *mask, uint8_t *close, double rel_eps);

#endif
