/* attn_merge on OpenCL: f32 scratch (row max, row weight sum, weighted
 * sum), one max and one accumulate launch per partial, one finishing
 * launch (opencl/merge.cl). */
#include <stdlib.h>
#include "ocl.h"
#include "args.h"
#include "../error.h"

static attn_status run(attn_cl_device *d, const attn_merge_problem *p, cl_program prog,
                       cl_mem M, cl_mem W, cl_mem A)
{
    const attn_cl_api *cl = d->cl;
    const int64_t rows = p->b * p->s * p->h, elems = rows * (p->dv > 0 ? p->dv : 1);
    cl_int err;
    cl_kernel kmax = cl->CreateKernel(prog, "attn_merge_max", &err);
    cl_kernel kacc = cl->CreateKernel(prog, "attn_merge_acc", &err);
    cl_kernel kfin = cl->CreateKernel(prog, "attn_merge_finish", &err);
    attn_status s = ATTN_OK;
    if (!kmax || !kacc || !kfin) {
        s = attn_cl_fail(err, "attn_merge: clCreateKernel");
        goto done;
    }
    const size_t grows = (size_t)rows, gelems = (size_t)elems;
    for (int i = 0; i < p->n && s == ATTN_OK; i++) {
        const attn_view *L = &p->lses[i];
        attn_cl_args a = { cl, kmax, 0, CL_SUCCESS };
        arg_view(&a, L, 1, 3);
        arg_long(&a, p->s);
        arg_long(&a, p->h);
        arg_long(&a, rows);
        arg_int(&a, i == 0);
        arg_mem(&a, M);
        if (a.err == CL_SUCCESS)
            a.err = cl->EnqueueNDRangeKernel(d->queue, kmax, 1, NULL, &grows, NULL, 0, NULL, NULL);
        if (a.err != CL_SUCCESS)
            s = attn_cl_fail(a.err, "attn_merge: row max launch");
    }
    for (int i = 0; i < p->n && s == ATTN_OK; i++) {
        const attn_view *O = &p->outs[i], *L = &p->lses[i];
        attn_cl_args a = { cl, kacc, 0, CL_SUCCESS };
        arg_mem(&a, attn_cl_mem(O->buffer));
        arg_int(&a, (int)O->dtype);
        arg_long(&a, (int64_t)(O->offset / attn_dtype_size(O->dtype)));
        for (int j = 0; j < 4; j++)
            arg_long(&a, O->stride[j]);
        arg_view(&a, L, 1, 3);
        arg_long(&a, p->s);
        arg_long(&a, p->h);
        arg_long(&a, p->dv);
        arg_long(&a, rows);
        arg_int(&a, i == 0);
        arg_mem(&a, M);
        arg_mem(&a, W);
        arg_mem(&a, A);
        if (a.err == CL_SUCCESS)
            a.err = cl->EnqueueNDRangeKernel(d->queue, kacc, 1, NULL, &gelems, NULL, 0, NULL, NULL);
        if (a.err != CL_SUCCESS)
            s = attn_cl_fail(a.err, "attn_merge: accumulate launch");
    }
    if (s == ATTN_OK) {
        attn_cl_args a = { cl, kfin, 0, CL_SUCCESS };
        arg_mem(&a, attn_cl_mem(p->out.buffer));
        arg_int(&a, (int)p->out.dtype);
        arg_long(&a, (int64_t)(p->out.offset / attn_dtype_size(p->out.dtype)));
        for (int j = 0; j < 4; j++)
            arg_long(&a, p->out.stride[j]);
        arg_view(&a, &p->lse, p->has_lse, 3);
        arg_int(&a, p->has_lse);
        arg_long(&a, p->s);
        arg_long(&a, p->h);
        arg_long(&a, p->dv);
        arg_long(&a, rows);
        arg_mem(&a, M);
        arg_mem(&a, W);
        arg_mem(&a, A);
        if (a.err == CL_SUCCESS)
            a.err = cl->EnqueueNDRangeKernel(d->queue, kfin, 1, NULL, &gelems, NULL, 0, NULL, NULL);
        if (a.err == CL_SUCCESS)
            a.err = cl->Finish(d->queue);
        if (a.err != CL_SUCCESS)
            s = attn_cl_fail(a.err, "attn_merge: finishing launch");
    }
done:
    if (kmax) cl->ReleaseKernel(kmax);
    if (kacc) cl->ReleaseKernel(kacc);
    if (kfin) cl->ReleaseKernel(kfin);
    return s;
}

attn_status attn_cl_merge(attn_device *dev, const attn_merge_problem *p)
{
    attn_cl_device *d = dev->impl;
    const int64_t rows = p->b * p->s * p->h;
    if (rows == 0)
        return ATTN_OK;
    pthread_mutex_lock(&d->lock);
    cl_program prog;
    attn_status s = attn_cl_program_get(d, ATTN_CL_SRC_MERGE, "-cl-std=CL1.2", &prog);
    cl_mem M = NULL, W = NULL, A = NULL;
    if (s == ATTN_OK) {
        cl_int e1, e2, e3;
        M = d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE, (size_t)rows * sizeof(float), NULL, &e1);
        W = d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE, (size_t)rows * sizeof(float), NULL, &e2);
        A = d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE,
                                (size_t)(rows * (p->dv > 0 ? p->dv : 1)) * sizeof(float), NULL, &e3);
        if (!M || !W || !A)
            s = attn_cl_fail(e1 != CL_SUCCESS ? e1 : e2 != CL_SUCCESS ? e2 : e3,
                             "attn_merge: clCreateBuffer (scratch)");
    }
    if (s == ATTN_OK)
        s = run(d, p, prog, M, W, A);
    if (M) d->cl->ReleaseMemObject(M);
    if (W) d->cl->ReleaseMemObject(W);
    if (A) d->cl->ReleaseMemObject(A);
    pthread_mutex_unlock(&d->lock);
    return s;
}
