/* The decode table's host buffers and its copy to the device (decode_upload.h). */
#include <stdlib.h>
#include <string.h>
#include "decode_upload.h"
#include "../error.h"

static size_t grown(size_t n) { return n < 4096 ? 4096 : n + n / 2; }

static void pinned_release(attn_cl_device *d, attn_cl_upload *u)
{
    if (u->pinned_ptr)
        d->cl->EnqueueUnmapMemObject(d->queue, u->pinned, u->pinned_ptr, 0, NULL, NULL);
    if (u->pinned) {
        d->cl->Finish(d->queue);
        d->cl->ReleaseMemObject(u->pinned);
    }
    u->pinned = NULL;
    u->pinned_ptr = NULL;
    u->pinned_bytes = 0;
}

/* A host-allocated buffer mapped for writing for as long as it is kept:
 * never read by a kernel, only the source of the copies. */
static attn_status pinned_grow(attn_cl_device *d, attn_cl_upload *u, size_t n)
{
    if (u->pinned_ptr && u->pinned_bytes >= n)
        return ATTN_OK;
    pinned_release(d, u);
    const size_t want = grown(n);
    cl_int err;
    u->pinned = d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, want,
                                    NULL, &err);
    if (!u->pinned || err != CL_SUCCESS) {
        u->pinned = NULL;
        return attn_cl_fail(err, "attn_decode: clCreateBuffer (pinned table)");
    }
    u->pinned_ptr = d->cl->EnqueueMapBuffer(d->queue, u->pinned, CL_TRUE, CL_MAP_WRITE, 0, want,
                                            0, NULL, NULL, &err);
    if (!u->pinned_ptr || err != CL_SUCCESS) {
        u->pinned_ptr = NULL;
        pinned_release(d, u);
        return attn_cl_fail(err, "attn_decode: clEnqueueMapBuffer (pinned table)");
    }
    u->pinned_bytes = want;
    return ATTN_OK;
}

static int host_grow(void **p, size_t *have, size_t n)
{
    if (*p && *have >= n)
        return 1;
    free(*p);
    *have = 0;
    if (!(*p = malloc(grown(n))))
        return 0;
    *have = grown(n);
    return 1;
}

attn_status attn_cl_upload_host(attn_cl_device *d, attn_cl_upload *u, int mode, size_t n,
                                void **out)
{
    if (mode == ATTN_CL_UPLOAD_PINNED) {
        attn_status s = pinned_grow(d, u, n);
        if (s != ATTN_OK)
            return s;
        *out = u->pinned_ptr;
    } else {
        if (!host_grow(&u->host, &u->host_bytes, n))
            return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_decode: out of memory");
        *out = u->host;
    }
    memset(*out, 0, n);
    return ATTN_OK;
}

attn_status attn_cl_upload_send(attn_cl_device *d, attn_cl_upload *u, const void *host,
                                size_t n, int reuse, cl_event *ev, int *sent)
{
    *sent = 0;
    if (reuse && u->dev && u->held_len == n && !memcmp(u->held, host, n))
        return ATTN_OK;
    if (!u->dev || u->dev_bytes < n) {
        if (u->dev)
            d->cl->ReleaseMemObject(u->dev);
        u->dev_bytes = u->held_len = 0;
        cl_int err;
        u->dev = d->cl->CreateBuffer(d->context, CL_MEM_READ_ONLY, grown(n), NULL, &err);
        if (!u->dev || err != CL_SUCCESS) {
            u->dev = NULL;
            return attn_cl_fail(err, "attn_decode: clCreateBuffer (table)");
        }
        u->dev_bytes = grown(n);
    }
    u->held_len = 0;
    cl_int err = d->cl->EnqueueWriteBuffer(d->queue, u->dev, CL_FALSE, 0, n, host, 0, NULL, ev);
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_decode: clEnqueueWriteBuffer (table)");
    *sent = 1;
    if (reuse && host_grow(&u->held, &u->held_cap, n)) {
        memcpy(u->held, host, n);
        u->held_len = n;
    }
    return ATTN_OK;
}

void attn_cl_upload_free(attn_cl_device *d, attn_cl_upload *u)
{
    pinned_release(d, u);
    if (u->dev)
        d->cl->ReleaseMemObject(u->dev);
    free(u->host);
    free(u->held);
    memset(u, 0, sizeof *u);
}
