/* The size of an element of each dtype, inline for address arithmetic in
 * hot loops (attn_dtype_size, the exported function, is a call through the
 * PLT from inside the library). */
#ifndef ATTN_DTYPE_SIZE_H
#define ATTN_DTYPE_SIZE_H

#include <stddef.h>
#include "attn.h"

static inline size_t attn_dtype_bytes(attn_dtype t)
{
    switch (t) {
    case ATTN_F32:  return 4;
    case ATTN_F16:
    case ATTN_BF16: return 2;
    case ATTN_U8:   return 1;
    default:        return 0;
    }
}

#endif
