/* Setting kernel arguments in order, keeping the first error. */
#ifndef ATTN_OCL_ARGS_H
#define ATTN_OCL_ARGS_H

#include "ocl.h"

typedef struct attn_cl_args {
    const attn_cl_api *cl;
    cl_kernel k;
    cl_uint   next;
    cl_int    err;
} attn_cl_args;

static inline void arg_raw(attn_cl_args *a, size_t n, const void *p)
{
    if (a->err == CL_SUCCESS)
        a->err = a->cl->SetKernelArg(a->k, a->next, n, p);
    a->next++;
}
static inline void arg_mem(attn_cl_args *a, cl_mem m) { arg_raw(a, sizeof m, m ? &m : NULL); }
static inline void arg_long(attn_cl_args *a, int64_t x) { cl_long v = x; arg_raw(a, sizeof v, &v); }
static inline void arg_int(attn_cl_args *a, int x) { cl_int v = x; arg_raw(a, sizeof v, &v); }
static inline void arg_float(attn_cl_args *a, float x) { cl_float v = x; arg_raw(a, sizeof v, &v); }

/* A view as (buffer, element offset, strides[0..nstrides)). */
static inline void arg_view(attn_cl_args *a, const attn_view *v, int present, int nstrides)
{
    if (present) {
        arg_mem(a, attn_cl_mem(v->buffer));
        arg_long(a, (int64_t)(v->offset / attn_dtype_size(v->dtype)));
        for (int i = 0; i < nstrides; i++)
            arg_long(a, v->stride[i]);
    } else {
        arg_mem(a, NULL);
        for (int i = 0; i <= nstrides; i++)
            arg_long(a, 0);
    }
}

#endif
