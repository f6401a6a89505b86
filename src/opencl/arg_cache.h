/* Kernel arguments set through a cache of the scalar values last set on
 * the kernel: an argument equal to its previous value is not set again (a
 * kernel keeps its arguments between enqueues, and drivers charge for each
 * clSetKernelArg; a decode step sets sixty). Buffers are always set: a
 * released cl_mem's handle may come back for a new buffer that the driver
 * must look up again. Same order and meaning as args.h; cache NULL sets
 * every argument. */
#ifndef ATTN_OCL_ARG_CACHE_H
#define ATTN_OCL_ARG_CACHE_H

#include <string.h>
#include "args.h"

#define ATTN_CL_ARG_CACHE_MAX 64

typedef struct attn_cl_arg_cache {
    unsigned char size[ATTN_CL_ARG_CACHE_MAX];   /* 0: unknown */
    unsigned char val[ATTN_CL_ARG_CACHE_MAX][8];
} attn_cl_arg_cache;

typedef struct attn_cl_cargs {
    attn_cl_args a;
    attn_cl_arg_cache *cache;
} attn_cl_cargs;

static inline void carg_raw(attn_cl_cargs *ca, size_t n, const void *p)
{
    attn_cl_arg_cache *c = ca->cache;
    const cl_uint i = ca->a.next;
    if (!c || i >= ATTN_CL_ARG_CACHE_MAX || n > 8) {
        arg_raw(&ca->a, n, p);
        return;
    }
    if (c->size[i] == n && !memcmp(c->val[i], p, n)) {
        ca->a.next++;
        return;
    }
    arg_raw(&ca->a, n, p);
    c->size[i] = 0;
    if (ca->a.err == CL_SUCCESS) {
        c->size[i] = (unsigned char)n;
        memcpy(c->val[i], p, n);
    }
}
static inline void carg_mem(attn_cl_cargs *ca, cl_mem m) { arg_mem(&ca->a, m); }
static inline void carg_long(attn_cl_cargs *ca, int64_t x)
{
    cl_long v = x;
    carg_raw(ca, sizeof v, &v);
}
static inline void carg_int(attn_cl_cargs *ca, int x)
{
    cl_int v = x;
    carg_raw(ca, sizeof v, &v);
}
static inline void carg_float(attn_cl_cargs *ca, float x)
{
    cl_float v = x;
    carg_raw(ca, sizeof v, &v);
}

static inline void carg_view(attn_cl_cargs *ca, const attn_view *v, int present, int nstrides)
{
    carg_mem(ca, present ? attn_cl_mem(v->buffer) : NULL);
    carg_long(ca, present ? (int64_t)(v->offset / attn_dtype_size(v->dtype)) : 0);
    for (int i = 0; i < nstrides; i++)
        carg_long(ca, present ? v->stride[i] : 0);
}

#endif
