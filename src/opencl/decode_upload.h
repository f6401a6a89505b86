/* The decode table's trip to the device, per call (src/opencl/decode.c).
 *
 * The host builds the table in a buffer this keeps; attn_cl_upload_send
 * then enqueues its copy into the device buffer the kernels read. Two
 * switches, so that a driver's costs can be compared in one run:
 *   ATTN_OPENCL_DECODE_UPLOAD=pageable  table in malloc'd memory; the driver
 *                                       stages the copy itself
 *                            pinned     (default) table built straight in a
 *                                       CL_MEM_ALLOC_HOST_PTR buffer kept
 *                                       mapped, the copy's source: page-
 *                                       locked on GPU drivers, a direct DMA
 *   ATTN_OPENCL_DECODE_REUSE=1          (default) no copy at all when the
 *                                       table equals the one the device
 *                                       already holds (same shape and
 *                                       sequences as the previous call) */
#ifndef ATTN_OCL_DECODE_UPLOAD_H
#define ATTN_OCL_DECODE_UPLOAD_H

#include "ocl.h"

enum { ATTN_CL_UPLOAD_PAGEABLE, ATTN_CL_UPLOAD_PINNED };

typedef struct attn_cl_upload {
    cl_mem dev;            /* what the kernels read */
    size_t dev_bytes;
    void  *host;           /* pageable: the table is built here */
    size_t host_bytes;
    cl_mem pinned;         /* pinned: built in this buffer, mapped at pinned_ptr */
    void  *pinned_ptr;
    size_t pinned_bytes;
    void  *held;           /* a copy of what dev holds, held_len bytes (0: unknown) */
    size_t held_cap, held_len;
} attn_cl_upload;

/* A zeroed host buffer of n bytes to build the table in (mode: how it
 * will be sent). Called with an idle queue. */
attn_status attn_cl_upload_host(attn_cl_device *d, attn_cl_upload *u, int mode, size_t n,
                                void **out);

/* Enqueues the copy of the n bytes built at host into u->dev (grown as
 * needed), unless reuse is on and dev already holds them; *sent says
 * which. ev: the command's event or NULL. */
attn_status attn_cl_upload_send(attn_cl_device *d, attn_cl_upload *u, const void *host,
                                size_t n, int reuse, cl_event *ev, int *sent);

void attn_cl_upload_free(attn_cl_device *d, attn_cl_upload *u);

#endif
