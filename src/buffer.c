/* Device buffers: a size, a device index and the backend's handle. */
#include <stdlib.h>
#include "backend.h"
#include "error.h"

ATTN_API attn_status attn_buffer_create(attn_context *ctx, int device, size_t bytes, attn_buffer **out)
{
    attn_clear_error();
    if (!ctx || !out)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_buffer_create: %s is NULL",
                         ctx ? "out" : "ctx");
    *out = NULL;
    if (device < 0 || device >= ctx->ndev)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_buffer_create: device %d out of "
                         "range [0, %d)", device, ctx->ndev);
    if (bytes == 0)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "attn_buffer_create: bytes is 0");
    attn_buffer *b = calloc(1, sizeof *b);
    if (!b)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_buffer_create: out of memory");
    attn_device *dev = &ctx->dev[device];
    attn_status s = dev->backend->buffer_alloc(dev, bytes, &b->handle);
    if (s != ATTN_OK) {
        free(b);
        return s;
    }
    b->ctx = ctx;
    b->device = device;
    b->bytes = bytes;
    *out = b;
    return ATTN_OK;
}

static attn_status check_range(const attn_buffer *b, size_t offset, const void *p, size_t bytes,
                               const char *fn)
{
    if (!b)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: buffer is NULL", fn);
    if (!p && bytes)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: host pointer is NULL", fn);
    if (offset > b->bytes || bytes > b->bytes - offset)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: range [%zu, %zu + %zu) is outside "
                         "the %zu-byte buffer", fn, offset, offset, bytes, b->bytes);
    return ATTN_OK;
}

ATTN_API attn_status attn_buffer_write(attn_buffer *b, size_t offset, const void *src, size_t bytes)
{
    attn_clear_error();
    attn_status s = check_range(b, offset, src, bytes, "attn_buffer_write");
    if (s != ATTN_OK || bytes == 0)
        return s;
    attn_device *dev = &b->ctx->dev[b->device];
    return dev->backend->buffer_write(dev, b->handle, offset, src, bytes);
}

ATTN_API attn_status attn_buffer_read(attn_buffer *b, size_t offset, void *dst, size_t bytes)
{
    attn_clear_error();
    attn_status s = check_range(b, offset, dst, bytes, "attn_buffer_read");
    if (s != ATTN_OK || bytes == 0)
        return s;
    attn_device *dev = &b->ctx->dev[b->device];
    return dev->backend->buffer_read(dev, b->handle, offset, dst, bytes);
}

ATTN_API attn_status attn_buffer_copy(attn_buffer *dst, size_t dst_offset, attn_buffer *src,
                                      size_t src_offset, size_t bytes)
{
    attn_clear_error();
    const char *fn = "attn_buffer_copy";
    attn_status s = check_range(dst, dst_offset, dst, bytes, fn);
    if (s == ATTN_OK)
        s = check_range(src, src_offset, src, bytes, fn);
    if (s != ATTN_OK)
        return s;
    if (dst->ctx != src->ctx || dst->device != src->device)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: src is on device %d, dst on device %d "
                         "(of %s context); copy within one device", fn, src->device, dst->device,
                         dst->ctx == src->ctx ? "the same" : "another");
    if (dst == src && dst_offset < src_offset + bytes && src_offset < dst_offset + bytes)
        return attn_fail(ATTN_ERR_INVALID_ARGUMENT, "%s: ranges [%zu, +%zu) and [%zu, +%zu) of "
                         "one buffer overlap", fn, src_offset, bytes, dst_offset, bytes);
    if (bytes == 0)
        return ATTN_OK;
    attn_device *dev = &dst->ctx->dev[dst->device];
    if (!dev->backend->buffer_copy)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "%s: not implemented on the %s backend", fn,
                         dev->backend->name);
    return dev->backend->buffer_copy(dev, dst->handle, dst_offset, src->handle, src_offset, bytes);
}

ATTN_API size_t attn_buffer_size(const attn_buffer *b)
{
    return b ? b->bytes : 0;
}

ATTN_API int attn_buffer_device(const attn_buffer *b)
{
    return b ? b->device : -1;
}

ATTN_API void *attn_buffer_host_ptr(attn_buffer *b)
{
    if (!b)
        return NULL;
    attn_device *dev = &b->ctx->dev[b->device];
    return dev->backend->buffer_host_ptr ? dev->backend->buffer_host_ptr(dev, b->handle) : NULL;
}

ATTN_API void attn_buffer_destroy(attn_buffer *b)
{
    if (!b)
        return;
    attn_device *dev = &b->ctx->dev[b->device];
    dev->backend->buffer_free(dev, b->handle);
    free(b);
}
