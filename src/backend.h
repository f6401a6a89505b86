/* The backend vtable. src/ validates; a backend only computes.
 * Adding a backend means one folder and one line in context.c. */
#ifndef ATTN_BACKEND_H
#define ATTN_BACKEND_H

#include "attn.h"
#include "problem.h"

typedef struct attn_device attn_device;

typedef struct attn_backend {
    const char *name;
    /* Memory. A handle is whatever the backend needs (host pointer, cl_mem, ...). */
    attn_status (*buffer_alloc)(attn_device *dev, size_t bytes, void **handle);
    void        (*buffer_free)(attn_device *dev, void *handle);
    attn_status (*buffer_write)(attn_device *dev, void *handle, size_t off, const void *src, size_t n);
    attn_status (*buffer_read)(attn_device *dev, void *handle, size_t off, void *dst, size_t n);
    void       *(*buffer_host_ptr)(attn_device *dev, void *handle); /* NULL if not host-addressable */
    /* device-side copy between two buffers of dev (ranges valid, disjoint); NULL: unsupported */
    attn_status (*buffer_copy)(attn_device *dev, void *dst, size_t dst_off, void *src,
                               size_t src_off, size_t n);
    /* Ops; NULL means ATTN_ERR_UNSUPPORTED on this backend. */
    attn_status (*sdpa)(attn_device *dev, const attn_sdpa_problem *p);
    attn_status (*merge)(attn_device *dev, const attn_merge_problem *p);
    void        (*destroy)(attn_device *dev);
    attn_status (*decode)(attn_device *dev, const attn_decode_problem *p);
    attn_status (*linear)(attn_device *dev, const attn_linear_problem *p);
    /* block-sparse selection */
    attn_status (*block_select)(attn_device *dev, const attn_block_select_problem *p);
    /* neighborhood attention (issue #6 part 1) */
    attn_status (*neighborhood)(attn_device *dev, const attn_neighborhood_problem *p);
} attn_backend;

struct attn_device {
    const attn_backend *backend;
    attn_context       *ctx;
    attn_device_info    info;
    void               *impl;   /* backend state */
};

#define ATTN_MAX_DEVICES 32

struct attn_context {
    int         ndev;
    int         preferred;          /* default device index */
    int         num_threads;        /* CPU threads for every op */
    attn_isa    isa;                /* CPU kernel set in use */
    attn_device dev[ATTN_MAX_DEVICES];
};

struct attn_buffer {
    attn_context *ctx;
    int           device;
    size_t        bytes;
    void         *handle;
};

/* The CPU backend (device 0). */
attn_status attn_cpu_backend_init(attn_context *ctx, attn_device *dev, int max_isa);

/* The OpenCL backend: appends every usable OpenCL device to ctx->dev[]
 * (GPUs first, CPU devices last); nothing if libOpenCL cannot be loaded. */
void attn_opencl_probe(attn_context *ctx);

/* The Vulkan backend: appends every usable Vulkan device (hardware first,
 * software rasterisers last); nothing if libvulkan cannot be loaded. */
void attn_vulkan_probe(attn_context *ctx);

#endif
