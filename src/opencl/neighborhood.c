/* attn_neighborhood on OpenCL: picks the query tile from the device's limits,
 * builds the per-axis tile table and launches opencl/neighborhood.cl. */
#include <stdio.h>
#include <stdlib.h>
#include "ocl.h"
#include "args.h"
#include "../error.h"
#include "../gpu_neighborhood.h"

static attn_status get_kernel(attn_cl_device *d, const attn_neighborhood_problem *p,
                              const attn_nb_tile *c, cl_kernel *out, size_t *kernel_max)
{
    char opts[256];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DD=%lld -DDV=%lld -DIN_DT=%d -DT1=%d -DT2=%d "
             "-DWG=%d", (long long)p->d, (long long)p->dv, (int)p->q.dtype, c->t1, c->t2, c->wg);
    cl_program prog;
    attn_status s = attn_cl_program_get(d, ATTN_CL_SRC_NEIGHBORHOOD, opts, &prog);
    if (s != ATTN_OK)
        return s;
    cl_int err;
    cl_kernel k = d->cl->CreateKernel(prog, "attn_neighborhood", &err);
    if (!k || err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_neighborhood: clCreateKernel");
    err = d->cl->GetKernelWorkGroupInfo(k, d->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof *kernel_max,
                                        kernel_max, NULL);
    if (err != CL_SUCCESS) {
        d->cl->ReleaseKernel(k);
        return attn_cl_fail(err, "attn_neighborhood: clGetKernelWorkGroupInfo");
    }
    *out = k;
    return ATTN_OK;
}

static attn_status make_tiles(attn_cl_device *d, const attn_neighborhood_problem *p,
                              const attn_nb_tile *c, int64_t nt[3], cl_mem *out)
{
    const size_t n = (size_t)attn_nb_tile_table(p, c, nt, NULL);
    int32_t *host = malloc(2 * n * sizeof *host);
    if (!host)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_neighborhood: out of memory");
    attn_nb_tile_table(p, c, nt, host);
    cl_int err;
    *out = d->cl->CreateBuffer(d->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                               2 * n * sizeof *host, host, &err);
    free(host);
    if (!*out || err != CL_SUCCESS) {
        *out = NULL;
        return attn_cl_fail(err, "attn_neighborhood: clCreateBuffer (tile table)");
    }
    return ATTN_OK;
}

static attn_status launch(attn_cl_device *d, const attn_neighborhood_problem *p, cl_kernel k,
                          const attn_nb_tile *c, cl_mem tiles, const int64_t nt[3])
{
    attn_cl_args a = { d->cl, k, 0, CL_SUCCESS };
    arg_view(&a, &p->q, 1, 6);
    arg_view(&a, &p->k, 1, 6);
    arg_view(&a, &p->v, 1, 6);
    arg_view(&a, &p->out, 1, 6);
    arg_int(&a, (int)p->out.dtype);
    arg_view(&a, &p->lse, p->has_lse, 5);
    arg_int(&a, p->has_lse);
    arg_mem(&a, tiles);
    for (int i = 0; i < 3; i++)
        arg_int(&a, (int)nt[i]);
    for (int i = 0; i < 3; i++)
        arg_long(&a, p->len[i]);
    for (int i = 0; i < 3; i++)
        arg_long(&a, p->kernel[i]);
    for (int i = 0; i < 3; i++)
        arg_long(&a, p->dil[i]);
    for (int i = 0; i < 3; i++)
        arg_int(&a, p->causal[i]);
    arg_int(&a, (int)(p->hq / p->hkv));
    arg_float(&a, p->scale);
    int64_t n[5];
    attn_nb_stage_floats(p, c, n);
    for (int i = 0; i < 5; i++)
        arg_raw(&a, (size_t)n[i] * sizeof(float), NULL);
    if (a.err != CL_SUCCESS)
        return attn_cl_fail(a.err, "attn_neighborhood: clSetKernelArg");

    const size_t ntiles = (size_t)(nt[0] * nt[1] * nt[2]);
    const size_t local[3] = { (size_t)c->wg, 1, 1 };
    const size_t global[3] = { ntiles * (size_t)c->wg, (size_t)p->hq, (size_t)p->b };
    cl_int err = d->cl->EnqueueNDRangeKernel(d->queue, k, 3, NULL, global, local, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_neighborhood: clEnqueueNDRangeKernel");
    err = d->cl->Finish(d->queue);
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_neighborhood: clFinish");
    return ATTN_OK;
}

attn_status attn_cl_neighborhood(attn_device *dev, const attn_neighborhood_problem *p)
{
    attn_cl_device *d = dev->impl;
    pthread_mutex_lock(&d->lock);
    attn_status s = ATTN_OK;
    cl_kernel k = NULL;
    attn_nb_tile c = { 0, 0, 0, 0, 0 };
    /* The largest power-of-two work-group the device allows, halved while
     * the compiled kernel cannot run that many work-items (registers). */
    const size_t budget = d->local_mem > 512 ? (size_t)d->local_mem - 256 : 0;
    size_t wg = ATTN_NB_MAX_WG;
    while (wg > d->max_wg || wg > d->max_wi[0])
        wg /= 2;
    for (;;) {
        if (wg == 0 || !attn_nb_choose_tile(p, (int)wg, 4 * (int64_t)dev->info.compute_units,
                                            budget, &c)) {
            s = attn_fail(ATTN_ERR_DEVICE, "attn_neighborhood: no query tile fits %s (local "
                          "memory %llu bytes, max work-group %zu) for head dims %lld/%lld",
                          dev->info.name, (unsigned long long)d->local_mem, d->max_wg,
                          (long long)p->d, (long long)p->dv);
            break;
        }
        size_t kernel_max = 0;
        if ((s = get_kernel(d, p, &c, &k, &kernel_max)) != ATTN_OK)
            break;
        if (wg <= kernel_max)
            break;
        d->cl->ReleaseKernel(k);
        k = NULL;
        wg /= 2;
    }
    cl_mem tiles = NULL;
    int64_t nt[3];
    if (s == ATTN_OK)
        s = make_tiles(d, p, &c, nt, &tiles);
    if (s == ATTN_OK)
        s = launch(d, p, k, &c, tiles, nt);
    if (tiles)
        d->cl->ReleaseMemObject(tiles);
    if (k)
        d->cl->ReleaseKernel(k);
    pthread_mutex_unlock(&d->lock);
    return s;
}
