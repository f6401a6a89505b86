/* Resolved tensor views and the shape/stride arithmetic that validation uses. */
#ifndef ATTN_TENSOR_H
#define ATTN_TENSOR_H

#include <stdint.h>
#include "attn.h"

/* A tensor after validation: strides resolved (never all-zero-means-contiguous),
 * and on the CPU a host pointer to element [0,...,0]. */
typedef struct attn_view {
    char        *base;      /* host address of element 0 (CPU), else NULL */
    attn_buffer *buffer;    /* NULL for plain host pointers */
    size_t       offset;    /* bytes into buffer */
    attn_dtype   dtype;
    int          ndim;
    int64_t      shape[ATTN_MAX_DIMS];
    int64_t      stride[ATTN_MAX_DIMS];
} attn_view;

/* Checks one tensor argument (not NULL, ndim, dtype in `allowed` bitmask of
 * 1<<dtype, non-negative shape, strides, sizes that do not overflow, data
 * or buffer present and in bounds) and resolves it into *v. Error messages
 * read "op: name: ..." (op may be NULL). Returns ATTN_OK or an error with a message set. */
attn_status attn_view_init(attn_view *v, const attn_tensor *t, const char *op,
                           const char *name, int ndim, unsigned allowed_dtypes, int device_of_op);

/* ATTN_ERR_INVALID_ARGUMENT "op: name has shape [..], expected [..]" unless
 * the first n dims of v are `want`. */
attn_status attn_view_expect_shape(const attn_view *v, const char *op, const char *name, int n,
                                   const int64_t *want);

/* Number of elements (product of the shape). */
int64_t attn_view_numel(const attn_view *v);

/* [lo, hi) byte range in the underlying storage that the view touches;
 * lo == hi for empty views. */
void attn_view_byte_range(const attn_view *v, uintptr_t *lo, uintptr_t *hi);

/* 1 if two distinct indices of the view address the same element. */
int attn_view_self_overlaps(const attn_view *v);

/* 1 if the storage ranges of a and b intersect (same buffer, or host memory). */
int attn_views_overlap(const attn_view *a, const attn_view *b);

/* Device index that a tensor lives on: its buffer's device, or 0 (CPU) for
 * host pointers. Returns -1 for NULL. */
int attn_tensor_device(const attn_tensor *t);

#define ATTN_DT_BIT(t) (1u << (t))
#define ATTN_DT_FLOAT (ATTN_DT_BIT(ATTN_F32) | ATTN_DT_BIT(ATTN_F16) | ATTN_DT_BIT(ATTN_BF16))

#endif
