/* attn_block_select on OpenCL: scores into device scratch, then the
 * selection writes the u8 mask in its device buffer (opencl/block_select.cl),
 * so the mask feeds attn_sdpa on the same device with no host round trip.
 * Work-group sizes come from the device's and the kernel's limits. */
#include <stdio.h>
#include "ocl.h"
#include "args.h"
#include "../error.h"

#define BSEL_MAX_GROUP 128   /* items per block row: enough to cover the key
                                blocks of long rows, few enough to keep the
                                group's reductions short */

#define XATTN_MAX_ROWS 8      /* segment rows scored together (XROWS in the kernel) */
#define PART_BUDGET ((size_t)64 << 20)  /* bytes of XATTN per-block partials: block
                                           rows beyond it are scored in waves */

typedef struct bsel_run {
    attn_cl_device *d;
    const attn_block_select_problem *p;
    cl_program prog;
    cl_mem shares, order, part, qbar, kbar;
    int64_t rows;               /* block rows: B * Hq * nbq */
    int     xrows;              /* XROWS the program was built with */
    int64_t slices;             /* XATTN: P, slices of each key block's cells */
    int64_t wave;               /* XATTN block rows per launch */
} bsel_run;

static cl_mem scratch(attn_cl_device *d, size_t bytes, cl_int *err)
{
    return d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, err);
}

/* Creates kernel `name` and the power-of-two work-group size it may use for
 * `items` work-items of a block row (as many as fit, up to the next power
 * of two). */
static attn_status make_kernel(bsel_run *r, const char *name, int64_t items, cl_kernel *k,
                               size_t *group)
{
    cl_int err;
    *k = r->d->cl->CreateKernel(r->prog, name, &err);
    if (!*k || err != CL_SUCCESS) {
        *k = NULL;
        return attn_cl_fail(err, "attn_block_select: clCreateKernel");
    }
    size_t kmax = 0;
    err = r->d->cl->GetKernelWorkGroupInfo(*k, r->d->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax,
                                           &kmax, NULL);
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_block_select: clGetKernelWorkGroupInfo");
    size_t lim = BSEL_MAX_GROUP;
    if (lim > r->d->max_wg) lim = r->d->max_wg;
    if (lim > r->d->max_wi[0]) lim = r->d->max_wi[0];
    if (lim > kmax) lim = kmax;
    size_t g = 1;
    while (g * 2 <= lim && (int64_t)g < items)
        g *= 2;
    *group = g;
    return ATTN_OK;
}

static attn_status enqueue(bsel_run *r, cl_kernel k, size_t global, const size_t *local,
                           const char *what)
{
    cl_int err = r->d->cl->EnqueueNDRangeKernel(r->d->queue, k, 1, NULL, &global, local, 0,
                                                NULL, NULL);
    return err == CL_SUCCESS ? ATTN_OK : attn_cl_fail(err, what);
}

/* Pooled rows of one of q, k into `out`: one item per element. */
static attn_status pool(bsel_run *r, const attn_view *x, int64_t heads, int64_t blen, int64_t nb,
                        cl_mem out)
{
    cl_kernel k;
    size_t unused;
    attn_status s = make_kernel(r, "attn_bs_pool", 1, &k, &unused);
    const int64_t total = r->p->b * heads * nb * r->p->d;
    if (s == ATTN_OK) {
        attn_cl_args a = { r->d->cl, k, 0, CL_SUCCESS };
        arg_view(&a, x, 1, 4);
        arg_long(&a, x->shape[1]);
        arg_long(&a, heads);
        arg_long(&a, r->p->d);
        arg_long(&a, blen);
        arg_long(&a, nb);
        arg_long(&a, total);
        arg_mem(&a, out);
        s = a.err == CL_SUCCESS ? enqueue(r, k, (size_t)total, NULL, "attn_block_select: pool")
                                : attn_cl_fail(a.err, "attn_block_select: clSetKernelArg");
    }
    if (k)
        r->d->cl->ReleaseKernel(k);
    return s;
}

static attn_status moba_scores(bsel_run *r)
{
    const attn_block_select_problem *p = r->p;
    attn_status s = pool(r, &p->q, p->hq, p->block_q, p->nbq, r->qbar);
    if (s == ATTN_OK)
        s = pool(r, &p->k, p->hkv, p->block_k, p->nbk, r->kbar);
    if (s != ATTN_OK)
        return s;
    cl_kernel k;
    size_t unused;
    s = make_kernel(r, "attn_bs_moba_score", 1, &k, &unused);
    const int64_t total = r->rows * p->nbk;
    if (s == ATTN_OK) {
        attn_cl_args a = { r->d->cl, k, 0, CL_SUCCESS };
        arg_mem(&a, r->qbar);
        arg_mem(&a, r->kbar);
        arg_long(&a, p->hq);
        arg_long(&a, p->hq / p->hkv);
        arg_long(&a, p->nbq);
        arg_long(&a, p->nbk);
        arg_long(&a, p->d);
        arg_long(&a, p->sq);
        arg_long(&a, p->sk);
        arg_long(&a, p->block_q);
        arg_long(&a, p->block_k);
        arg_int(&a, p->causal);
        arg_long(&a, total);
        arg_mem(&a, r->shares);
        s = a.err == CL_SUCCESS ? enqueue(r, k, (size_t)total, NULL, "attn_block_select: scores")
                                : attn_cl_fail(a.err, "attn_block_select: clSetKernelArg");
    }
    if (k)
        r->d->cl->ReleaseKernel(k);
    return s;
}

static attn_status xattn_shares(bsel_run *r)
{
    const attn_block_select_problem *p = r->p;
    cl_kernel k;
    size_t group;
    attn_status s = make_kernel(r, "attn_bs_xattn_share", p->nbk * r->slices, &k, &group);
    if (s == ATTN_OK) {
        attn_cl_args a = { r->d->cl, k, 0, CL_SUCCESS };
        arg_view(&a, &p->q, 1, 4);
        arg_view(&a, &p->k, 1, 4);
        arg_long(&a, p->hq);
        arg_long(&a, p->hq / p->hkv);
        arg_long(&a, p->sq);
        arg_long(&a, p->sk);
        arg_long(&a, p->d);
        arg_long(&a, p->block_q);
        arg_long(&a, p->block_k);
        arg_long(&a, p->nbq);
        arg_long(&a, p->nbk);
        arg_long(&a, p->stride);
        arg_float(&a, p->scale);
        arg_int(&a, p->causal);
        arg_long(&a, r->slices);
        const cl_uint row0_arg = a.next;
        arg_long(&a, 0);
        arg_mem(&a, r->shares);
        arg_mem(&a, r->part);
        arg_raw(&a, group * (size_t)r->xrows * sizeof(cl_float), NULL);
        s = a.err == CL_SUCCESS ? ATTN_OK : attn_cl_fail(a.err, "attn_block_select: clSetKernelArg");
        for (int64_t row0 = 0; row0 < r->rows && s == ATTN_OK; row0 += r->wave) {
            const int64_t n = r->rows - row0 < r->wave ? r->rows - row0 : r->wave;
            a.next = row0_arg;
            arg_long(&a, row0);
            s = a.err == CL_SUCCESS ? enqueue(r, k, (size_t)n * group, &group,
                                              "attn_block_select: antidiagonal scores")
                                    : attn_cl_fail(a.err, "attn_block_select: clSetKernelArg");
        }
    }
    if (k)
        r->d->cl->ReleaseKernel(k);
    return s;
}

static attn_status select_blocks(bsel_run *r)
{
    const attn_block_select_problem *p = r->p;
    cl_kernel k;
    size_t group;
    attn_status s = make_kernel(r, "attn_bs_select", p->nbk, &k, &group);
    if (s == ATTN_OK) {
        attn_cl_args a = { r->d->cl, k, 0, CL_SUCCESS };
        arg_mem(&a, r->shares);
        arg_mem(&a, r->order);
        arg_view(&a, &p->mask, 1, 4);
        arg_long(&a, p->hq);
        arg_long(&a, p->nbq);
        arg_long(&a, p->nbk);
        arg_long(&a, p->sq);
        arg_long(&a, p->sk);
        arg_long(&a, p->block_q);
        arg_long(&a, p->block_k);
        arg_int(&a, p->causal);
        arg_int(&a, p->method == ATTN_BLOCK_SELECT_XATTN);
        arg_float(&a, p->threshold);
        arg_long(&a, p->top_k);
        arg_raw(&a, group * sizeof(cl_float), NULL);
        arg_raw(&a, sizeof(cl_long), NULL);
        s = a.err == CL_SUCCESS ? enqueue(r, k, (size_t)r->rows * group, &group,
                                          "attn_block_select: selection")
                                : attn_cl_fail(a.err, "attn_block_select: clSetKernelArg");
    }
    if (k)
        r->d->cl->ReleaseKernel(k);
    if (s == ATTN_OK) {
        cl_int err = r->d->cl->Finish(r->d->queue);
        if (err != CL_SUCCESS)
            s = attn_cl_fail(err, "attn_block_select: clFinish");
    }
    return s;
}

static attn_status alloc_scratch(bsel_run *r)
{
    const attn_block_select_problem *p = r->p;
    const size_t cells = (size_t)r->rows * (size_t)p->nbk;
    cl_int e[5] = { CL_SUCCESS, CL_SUCCESS, CL_SUCCESS, CL_SUCCESS, CL_SUCCESS };
    r->shares = scratch(r->d, cells * sizeof(cl_float), &e[0]);
    r->order = scratch(r->d, cells * sizeof(cl_int), &e[1]);
    if (p->method == ATTN_BLOCK_SELECT_XATTN) {
        const size_t per_row = (size_t)(p->nbk * r->slices) * 2 * (size_t)r->xrows *
                               sizeof(cl_float);
        size_t budget = PART_BUDGET < r->d->max_alloc ? PART_BUDGET : (size_t)r->d->max_alloc;
        r->wave = (int64_t)(budget / per_row);
        if (r->wave < 1) r->wave = 1;
        if (r->wave > r->rows) r->wave = r->rows;
        r->part = scratch(r->d, (size_t)r->wave * per_row, &e[2]);
    } else {
        r->qbar = scratch(r->d, (size_t)r->rows * (size_t)p->d * sizeof(cl_float), &e[3]);
        r->kbar = scratch(r->d, (size_t)(p->b * p->hkv * p->nbk * p->d) * sizeof(cl_float),
                          &e[4]);
    }
    for (int i = 0; i < 5; i++)
        if (e[i] != CL_SUCCESS)
            return attn_cl_fail(e[i], "attn_block_select: clCreateBuffer (scratch)");
    return ATTN_OK;
}

attn_status attn_cl_block_select(attn_device *dev, const attn_block_select_problem *p)
{
    attn_cl_device *d = dev->impl;
    bsel_run r = { d, p, NULL, NULL, NULL, NULL, NULL, NULL, p->b * p->hq * p->nbq, 1, 1, 1 };
    /* as many rows at once as a query block has, up to XATTN_MAX_ROWS */
    while (p->method == ATTN_BLOCK_SELECT_XATTN && r.xrows * 2 <= XATTN_MAX_ROWS &&
           r.xrows * 2 <= p->block_q / p->stride)
        r.xrows *= 2;
    /* rows of few key blocks: split each block's cells over up to
     * BSEL_MAX_GROUP / nbk work-items */
    if (p->method == ATTN_BLOCK_SELECT_XATTN) {
        const int64_t cells = p->block_k / p->stride, fill = BSEL_MAX_GROUP / p->nbk;
        r.slices = fill < 1 ? 1 : fill < cells ? fill : cells;
    }
    char opts[64];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DIN_DT=%d -DXROWS=%d", (int)p->q.dtype, r.xrows);
    pthread_mutex_lock(&d->lock);
    attn_status s = attn_cl_program_get(d, ATTN_CL_SRC_BLOCK_SELECT, opts, &r.prog);
    if (s == ATTN_OK)
        s = alloc_scratch(&r);
    if (s == ATTN_OK)
        s = p->method == ATTN_BLOCK_SELECT_XATTN ? xattn_shares(&r) : moba_scores(&r);
    if (s == ATTN_OK)
        s = select_blocks(&r);
    cl_mem bufs[5] = { r.shares, r.order, r.part, r.qbar, r.kbar };
    for (int i = 0; i < 5; i++)
        if (bufs[i])
            d->cl->ReleaseMemObject(bufs[i]);
    pthread_mutex_unlock(&d->lock);
    return s;
}
