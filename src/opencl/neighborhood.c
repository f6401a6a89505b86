/* attn_neighborhood on OpenCL: picks the query tile from the device's limits,
 * builds the per-axis tile table and launches opencl/neighborhood.cl. */
#include <stdio.h>
#include <stdlib.h>
#include "ocl.h"
#include "args.h"
#include "../error.h"

typedef struct nb_cfg {
    int t1, t2;     /* query positions per tile on axes 1 and 2 (compile-time) */
    int tq;         /* t1 * t2 */
    int wg;         /* work-group size (compile-time) */
    int64_t u2;     /* keys of a staged run, at most */
} nb_cfg;

/* O elements a work-item keeps in registers, at most. */
#define NB_MAX_ACC 64
#define NB_MAX_WG 128
/* Axis-1 rows per tile, at most: a work-item keeps a float4 score
 * accumulator per row. */
#define NB_MAX_T1 16

static int64_t class_len(const attn_neighborhood_problem *p, int a, int64_t c)
{
    return (p->len[a] - c + p->dil[a] - 1) / p->dil[a];
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Local arrays of opencl/neighborhood.cl, in floats: Qs, Ks, Vs, S, rows. */
static void local_floats(const attn_neighborhood_problem *p, const nb_cfg *c, int64_t n[5])
{
    const int64_t qd = 4 * ((p->d + 3) / 4 + 1), k2p = (p->kernel[2] + 3) / 4 * 4;
    n[0] = c->tq * qd;
    n[1] = c->u2 * qd;
    n[2] = (c->u2 + k2p) * p->dv;
    n[3] = c->tq * k2p;
    n[4] = 3 * c->tq;
}

static size_t local_bytes(const attn_neighborhood_problem *p, const nb_cfg *c)
{
    int64_t n[5];
    local_floats(p, c, n);
    return (size_t)(n[0] + n[1] + n[2] + n[3] + n[4]) * sizeof(float);
}

/* Work-groups of a launch with t1 x t2 query tiles. */
static int64_t groups_of(const attn_neighborhood_problem *p, int64_t t1, int64_t t2)
{
    const int64_t t[3] = { 1, t1, t2 };
    int64_t n = p->b * p->hq;
    for (int a = 0; a < 3; a++) {
        int64_t na = 0;
        for (int64_t c = 0; c < p->dil[a]; c++)
            na += (class_len(p, a, c) + t[a] - 1) / t[a];
        n *= na;
    }
    return n;
}

/* The largest tile (up to 64 queries, about square: keys staged per query
 * fall as the tile grows on both axes) whose arrays fit local memory and
 * whose accumulators fit NB_MAX_ACC per work-item; 0 if none fits. Tiles
 * of 32 and 64 queries only where they still give min_groups work-groups
 * (small problems would leave compute units idle). */
static int choose_cfg(const attn_cl_device *d, const attn_neighborhood_problem *p, int wg,
                      int64_t min_groups, nb_cfg *out)
{
    const size_t budget = d->local_mem > 512 ? (size_t)d->local_mem - 256 : 0;
    const int64_t n1 = class_len(p, 1, 0), n2 = class_len(p, 2, 0);
    /* ATTN_NB_TILE="t1,t2" (tuning) is tried first. */
    const char *env = getenv("ATTN_NB_TILE");
    int et1 = 0, et2 = 0;
    const int use_env = env && sscanf(env, "%d,%d", &et1, &et2) == 2 && et1 > 0 && et2 > 0;
    for (int lg = use_env ? 7 : 6; lg >= 0; lg--) {
        nb_cfg c;
        c.t1 = (int)min64(n1, lg == 7 ? et1 : 1 << (lg / 2));
        c.t2 = (int)min64(n2, lg == 7 ? et2 : (1 << lg) / c.t1);
        c.tq = c.t1 * c.t2;
        c.wg = wg;
        c.u2 = min64(c.t2 + p->kernel[2] - 1, n2);
        const int64_t acc = (c.t2 * p->dv + wg - 1) / wg * c.t1;
        if (lg != 7 && lg > 4 && groups_of(p, c.t1, c.t2) < min_groups)
            continue;
        if (acc > NB_MAX_ACC || c.t1 > NB_MAX_T1 || local_bytes(p, &c) > budget)
            continue;
        *out = c;
        return 1;
    }
    return 0;
}

static attn_status get_kernel(attn_cl_device *d, const attn_neighborhood_problem *p,
                              const nb_cfg *c, cl_kernel *out, size_t *kernel_max)
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

/* Per axis, (class, first position) of every tile: t[a] positions of one
 * class each. Written to *tiles (NULL: only counted); returns the count. */
static int64_t axis_tiles(const attn_neighborhood_problem *p, int a, int64_t t, cl_int *tiles)
{
    int64_t n = 0;
    for (int64_t c = 0; c < p->dil[a]; c++)
        for (int64_t p0 = 0; p0 < class_len(p, a, c); p0 += t, n++)
            if (tiles) {
                tiles[2 * n] = (cl_int)c;
                tiles[2 * n + 1] = (cl_int)p0;
            }
    return n;
}

static attn_status make_tiles(attn_cl_device *d, const attn_neighborhood_problem *p,
                              const nb_cfg *c, int64_t nt[3], cl_mem *out)
{
    const int64_t t[3] = { 1, c->t1, c->t2 };
    for (int a = 0; a < 3; a++)
        nt[a] = axis_tiles(p, a, t[a], NULL);
    const size_t n = (size_t)(nt[0] + nt[1] + nt[2]);
    cl_int *host = malloc(2 * n * sizeof *host);
    if (!host)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_neighborhood: out of memory");
    axis_tiles(p, 0, t[0], host);
    axis_tiles(p, 1, t[1], host + 2 * nt[0]);
    axis_tiles(p, 2, t[2], host + 2 * (nt[0] + nt[1]));
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
                          const nb_cfg *c, cl_mem tiles, const int64_t nt[3])
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
    local_floats(p, c, n);
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
    nb_cfg c = { 0, 0, 0, 0, 0 };
    /* The largest power-of-two work-group the device allows, halved while
     * the compiled kernel cannot run that many work-items (registers). */
    size_t wg = NB_MAX_WG;
    while (wg > d->max_wg || wg > d->max_wi[0])
        wg /= 2;
    for (;;) {
        if (wg == 0 || !choose_cfg(d, p, (int)wg, 4 * (int64_t)dev->info.compute_units, &c)) {
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
