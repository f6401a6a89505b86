/* Tensor checking and resolution, shared by every op's validation. */
#include <stdio.h>
#include <string.h>
#include "backend.h"
#include "error.h"
#include "tensor.h"

int attn_tensor_device(const attn_tensor *t)
{
    if (!t)
        return -1;
    return t->buffer ? t->buffer->device : 0;
}

int64_t attn_view_numel(const attn_view *v)
{
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++)
        n *= v->shape[i];
    return n;
}

/* Largest element offset + 1 (0 for an empty view); sizes were checked. */
static int64_t view_span(const attn_view *v)
{
    for (int i = 0; i < v->ndim; i++)
        if (v->shape[i] == 0)
            return 0;     /* before multiplying: empty views may have any strides */
    int64_t span = 1;
    for (int i = 0; i < v->ndim; i++)
        span += (v->shape[i] - 1) * v->stride[i];
    return span;
}

static attn_status view_init(attn_view *v, const attn_tensor *t, const char *name,
                             int ndim, unsigned allowed, int device)
{
    memset(v, 0, sizeof *v);
    if (!t)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s is NULL", name);
    if (t->ndim != ndim)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: ndim is %d, expected %d", name, t->ndim, ndim);
    if ((unsigned)t->dtype > (unsigned)ATTN_Q4)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: dtype %d is not an attn_dtype", name,
                         (int)t->dtype);
    if (!(allowed & ATTN_DT_BIT(t->dtype)))
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: dtype %d is not accepted here", name,
                         (int)t->dtype);
    const int64_t esize = (int64_t)attn_dtype_size(t->dtype);
    int contiguous = 1;
    for (int i = 0; i < ndim; i++) {
        if (t->shape[i] < 0)
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: shape[%d] is negative (%lld)", name,
                             i, (long long)t->shape[i]);
        if (t->stride[i] < 0)
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: stride[%d] is negative (%lld); "
                             "negative strides are not supported", name, i, (long long)t->stride[i]);
        if (t->stride[i] != 0)
            contiguous = 0;
    }
    v->dtype = t->dtype;
    v->ndim = ndim;
    int64_t numel = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        v->shape[i] = t->shape[i];
        v->stride[i] = contiguous ? numel : t->stride[i];
        if (__builtin_mul_overflow(numel, t->shape[i], &numel))
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: the element count overflows", name);
    }
    /* Span in elements and bytes, with every step checked for overflow.
     * A stride that addresses nothing (an axis with one index, or any axis
     * of an empty tensor) may hold any value, 2^62 say, and the kernels
     * multiply strides by element sizes and row counts before they look at
     * the shape: such a stride becomes the span of the axes inside it (0 in
     * an empty tensor), which is what a contiguous tensor has there and is
     * bounded by the extent checked below. */
    int64_t span = numel ? 1 : 0, bytes;
    for (int i = ndim - 1; i >= 0; i--) {
        int64_t step;
        if (numel == 0 || v->shape[i] == 1) {
            v->stride[i] = span;
            continue;
        }
        if (__builtin_mul_overflow(v->shape[i] - 1, v->stride[i], &step) ||
            __builtin_add_overflow(span, step, &span))
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: shape and strides address more "
                             "than 2^63 elements", name);
    }
    if (__builtin_mul_overflow(span, esize, &bytes) || (uint64_t)bytes > (uint64_t)SIZE_MAX / 2)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: its extent overflows the address space", name);

    if (t->buffer) {
        if (t->buffer->device != device)
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: its buffer is on device %d but the "
                             "op runs on device %d; all tensors of one op must share a device",
                             name, t->buffer->device, device);
        if (t->offset > t->buffer->bytes || (uint64_t)bytes > t->buffer->bytes - t->offset)
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: offset %zu + extent %lld bytes is "
                             "past the end of its %zu-byte buffer", name, t->offset,
                             (long long)bytes, t->buffer->bytes);
        if (t->offset % (size_t)esize)
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: offset %zu is not a multiple of the "
                             "element size", name, t->offset);
        v->buffer = t->buffer;
        v->offset = t->offset;
        char *host = attn_buffer_host_ptr(t->buffer);
        v->base = host ? host + t->offset : NULL;
    } else {
        if (device != 0)
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: a host pointer, but the op runs on "
                             "device %d; pass device tensors in attn_buffers", name, device);
        if (!t->data && numel > 0)
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: data is NULL", name);
        if ((uintptr_t)t->data % (uintptr_t)esize)
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: data is not aligned to its "
                             "element size", name);
        v->base = t->data;
    }
    return ATTN_OK;
}

attn_status attn_view_expect_shape(const attn_view *v, const char *op, const char *name, int n,
                                   const int64_t *want)
{
    for (int i = 0; i < n; i++)
        if (v->shape[i] != want[i]) {
            char got[160], exp[160];
            int a = 0, b = 0;
            for (int j = 0; j < n; j++) {
                a += snprintf(got + a, sizeof got - (size_t)a, "%s%lld", j ? "," : "",
                              (long long)v->shape[j]);
                b += snprintf(exp + b, sizeof exp - (size_t)b, "%s%lld", j ? "," : "",
                              (long long)want[j]);
            }
            return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: %s has shape [%s], expected [%s]",
                             op, name, got, exp);
        }
    return ATTN_OK;
}

attn_status attn_view_init(attn_view *v, const attn_tensor *t, const char *op,
                           const char *name, int ndim, unsigned allowed, int device)
{
    attn_status s = view_init(v, t, name, ndim, allowed, device);
    if (s != ATTN_OK && op) {
        char msg[512];   /* prefix the op's name, keeping the message */
        snprintf(msg, sizeof msg, "%s", attn_last_error());
        attn_fail(s, "%s: %s", op, msg);
    }
    return s;
}

void attn_view_byte_range(const attn_view *v, uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t start = v->base ? (uintptr_t)v->base : (uintptr_t)v->offset;
    *lo = start;
    *hi = start + (uintptr_t)view_span(v) * attn_dtype_size(v->dtype);
}

int attn_view_self_overlaps(const attn_view *v)
{
    /* Walk the dims from the smallest stride up: each stride must step past
     * everything the smaller dims already cover. Conservative (it rejects a
     * few exotic interleavings that would not collide), never permissive. */
    int order[ATTN_MAX_DIMS], n = 0;
    for (int i = 0; i < v->ndim; i++) {
        if (v->shape[i] == 0)
            return 0;
        if (v->shape[i] > 1)
            order[n++] = i;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v->stride[order[j]] < v->stride[order[j - 1]]; j--) {
            int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
        }
    int64_t covered = 0;   /* largest offset reachable with the dims so far */
    for (int i = 0; i < n; i++) {
        int d = order[i];
        if (v->stride[d] <= covered)
            return 1;
        covered += (v->shape[d] - 1) * v->stride[d];
    }
    return 0;
}

int attn_views_overlap(const attn_view *a, const attn_view *b)
{
    if (view_span(a) == 0 || view_span(b) == 0)
        return 0;
    /* Device memory without a host address: only the same buffer can collide. */
    if ((!a->base || !b->base) && a->buffer != b->buffer)
        return 0;
    uintptr_t alo, ahi, blo, bhi;
    attn_view_byte_range(a, &alo, &ahi);
    attn_view_byte_range(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}
