/* Views as 32-bit parameter words for the shaders. */
#ifndef ATTN_VK_ARGS_H
#define ATTN_VK_ARGS_H

#include <stdint.h>
#include "vk.h"

/* Writes (element offset, strides[0..n)) of v at w, zeros if absent.
 * 0 if the view reaches an element past 2^31 - 1 or has a negative
 * stride: the shaders index in 32 bits. */
static inline int attn_vk_put_view(int32_t *w, const attn_view *v, int present, int n)
{
    for (int i = 0; i <= n; i++)
        w[i] = 0;
    if (!present)
        return 1;
    const int64_t off = (int64_t)(v->offset / attn_dtype_size(v->dtype));
    int64_t last = off;
    for (int i = 0; i < n; i++) {
        if (v->stride[i] < 0)
            return 0;
        if (v->shape[i] > 1)
            last += (v->shape[i] - 1) * v->stride[i];
    }
    if (last >= INT32_MAX)
        return 0;
    w[0] = (int32_t)off;
    for (int i = 0; i < n; i++)
        w[1 + i] = v->shape[i] > 1 ? (int32_t)v->stride[i] : 0;
    return 1;
}

#endif
