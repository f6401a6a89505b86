/* attn_linear on OpenCL: sizes the recurrent kernel (opencl/linear.cl) from
 * the device's limits and launches it. Both API algorithms (chunkwise and
 * recurrent) run this one kernel: they agree to f32 rounding by contract,
 * and the recurrent walk keeps the state in registers for the whole
 * sequence, so its cost is 4 Dk Dv flops per token and head (6 for the
 * delta kinds) with no state traffic to memory between tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ocl.h"
#include "args.h"
#include "../error.h"

/* Flag bits shared with opencl/linear.cl. */
enum { LF_L2NORM = 1 << 0, LF_NORMALIZE = 1 << 1, LF_VARLEN = 1 << 2, LF_STATE_IN = 1 << 3,
       LF_STATE_OUT = 1 << 4, LF_Z_IN = 1 << 5, LF_Z_OUT = 1 << 6, LF_G_SCALAR = 1 << 7,
       LF_G_CHANNEL = 1 << 8, LF_DECAY_PARAM = 1 << 9 };

/* State rows a work-item keeps in registers: at most 32 (more would spill
 * on GPUs), fewer (down to 8) while the problem has fewer than 512
 * work-items per compute unit, since the tokens are walked in order and
 * parallelism comes from (sequence, head, column, row split) alone. */
#define ROWS_MAX 32
#define ROWS_MIN 8
#define ITEMS_PER_CU 512

typedef struct lin_cfg { int ks, dvs, tb; } lin_cfg;

static size_t local_bytes(const lin_cfg *c, int64_t dk)
{
    const int64_t dkp = (dk + c->ks - 1) / c->ks * c->ks, nt = (int64_t)c->ks * c->dvs;
    /* lq lk la [TB][DKP], lv [TB][DVS], lb lg lnorm, red_o [TB][2][NT], red_u [2][NT],
     * lpart (at most NT + 2 TB) */
    return (size_t)(c->tb * (3 * dkp + c->dvs + 6 + 2 * nt) + 3 * nt) * sizeof(float);
}

/* KS work-items per column (each holding ceil(Dk / KS) rows, within the
 * work-group limits), DVS columns per work-group (up to 32, as the device
 * allows; down to 8 while there are fewer than two work-groups per compute
 * unit), and the largest token block TB that fits local memory. max_items
 * is the kernel's own work-group limit once it is known.
 * ATTN_OPENCL_LINEAR_TILE="rows,dvs" sets the first two (tuning; 0 = auto). */
static int choose_cfg(const attn_cl_device *d, const attn_linear_problem *p, int cus,
                      size_t max_items, lin_cfg *out)
{
    const int64_t dk = p->dk, dv = p->dv;
    size_t lim = d->max_wg < max_items ? d->max_wg : max_items;
    if (lim > d->max_wi[0] * d->max_wi[1])
        lim = d->max_wi[0] * d->max_wi[1];
    int rows_env = 0, dvs_env = 0;
    const char *env = getenv("ATTN_OPENCL_LINEAR_TILE");
    if (env && sscanf(env, "%d,%d", &rows_env, &dvs_env) < 1)
        rows_env = dvs_env = 0;
    int64_t rows = ROWS_MAX;
    while (rows > ROWS_MIN &&
           p->num_seqs * p->h * dv * ((dk + rows - 1) / rows) < (int64_t)cus * ITEMS_PER_CU)
        rows /= 2;
    if (rows_env > 0)
        rows = rows_env;
    int64_t ks = (dk + rows - 1) / rows;
    if (ks > (int64_t)d->max_wi[1]) ks = (int64_t)d->max_wi[1];
    if (ks > (int64_t)lim) ks = (int64_t)lim;
    int64_t dvs = dv < 32 ? dv : 32;
    while (dvs > 8 && p->num_seqs * p->h * ((dv + dvs - 1) / dvs) < 2 * (int64_t)cus)
        dvs /= 2;
    if (dvs_env > 0)
        dvs = dvs_env;
    while (dvs > 1 && (dvs > (int64_t)d->max_wi[0] || dvs * ks > (int64_t)lim))
        dvs = (dvs + 1) / 2;
    const size_t budget = d->local_mem > 512 ? (size_t)d->local_mem - 256 : 0;
    for (int tb = 16; tb >= 1; tb /= 2) {
        lin_cfg c = { (int)ks, (int)dvs, tb };
        if (local_bytes(&c, dk) <= budget) {
            *out = c;
            return 1;
        }
    }
    return 0;
}

static attn_status get_kernels(attn_cl_device *d, const attn_linear_problem *p, const lin_cfg *c,
                               cl_kernel *rec, cl_kernel *zcopy, size_t *kernel_max)
{
    char opts[256];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DDK=%lld -DKS=%d -DDVS=%d -DTB=%d -DIN_DT=%d%s",
             (long long)p->dk, c->ks, c->dvs, c->tb, (int)p->q.dtype,
             d->is_cpu ? "" : " -DATTN_UNROLL");
    cl_program prog;
    attn_status s = attn_cl_program_get(d, ATTN_CL_SRC_LINEAR, opts, &prog);
    if (s != ATTN_OK)
        return s;
    cl_int err;
    *rec = d->cl->CreateKernel(prog, "attn_linear_recurrent", &err);
    if (!*rec || err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_linear: clCreateKernel");
    *zcopy = d->cl->CreateKernel(prog, "attn_linear_zcopy", &err);
    if (*zcopy && err == CL_SUCCESS)
        err = d->cl->GetKernelWorkGroupInfo(*rec, d->id, CL_KERNEL_WORK_GROUP_SIZE,
                                            sizeof *kernel_max, kernel_max, NULL);
    if (!*zcopy || err != CL_SUCCESS) {
        d->cl->ReleaseKernel(*rec);
        if (*zcopy)
            d->cl->ReleaseKernel(*zcopy);
        *rec = *zcopy = NULL;
        return attn_cl_fail(err, "attn_linear: clCreateKernel / clGetKernelWorkGroupInfo");
    }
    return ATTN_OK;
}

/* params->decay [H] floats, then cu_seqlens [N+1] ints, in one read-only
 * buffer; NULL when neither is used. */
static attn_status make_aux(attn_cl_device *d, const attn_linear_problem *p, cl_mem *out)
{
    *out = NULL;
    if (!p->decay && !p->cu)
        return ATTN_OK;
    const size_t nf = (size_t)p->h, ni = p->cu ? (size_t)p->num_seqs + 1 : 0;
    const size_t bytes = nf * sizeof(float) + ni * sizeof(int32_t);
    char *host = calloc(1, bytes);
    if (!host)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_linear: out of memory");
    if (p->decay)
        memcpy(host, p->decay, nf * sizeof(float));
    if (p->cu)
        memcpy(host + nf * sizeof(float), p->cu, ni * sizeof(int32_t));
    cl_int err;
    *out = d->cl->CreateBuffer(d->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, host,
                               &err);
    free(host);
    if (!*out || err != CL_SUCCESS) {
        *out = NULL;
        return attn_cl_fail(err, "attn_linear: clCreateBuffer (parameters)");
    }
    return ATTN_OK;
}

static int flags_of(const attn_linear_problem *p)
{
    int f = 0;
    if (p->l2norm_qk) f |= LF_L2NORM;
    if (p->normalize) f |= LF_NORMALIZE;
    if (p->cu) f |= LF_VARLEN;
    if (p->has_state_in) f |= LF_STATE_IN;
    if (p->has_state_out) f |= LF_STATE_OUT;
    if (p->has_z_in) f |= LF_Z_IN;
    if (p->has_z_out) f |= LF_Z_OUT;
    if (p->has_g) f |= p->g_per_channel ? LF_G_CHANNEL : LF_G_SCALAR;
    if (p->decay) f |= LF_DECAY_PARAM;
    return f;
}

/* A view (or its absent form) as buffer, offset and want_strides strides
 * (the missing ones 0), then its run-time dtype. */
static void arg_view_dt(attn_cl_args *a, const attn_view *v, int present, int nstrides,
                        int want_strides)
{
    arg_view(a, v, present, nstrides);
    for (int i = nstrides; i < want_strides; i++)
        arg_long(a, 0);
    arg_int(a, present ? (int)v->dtype : 0);
}

static attn_status launch(attn_cl_device *d, const attn_linear_problem *p, cl_kernel k,
                          cl_kernel zk, const lin_cfg *c, cl_mem aux, cl_mem zs)
{
    const int zout = p->has_z_out;
    attn_cl_args a = { d->cl, k, 0, CL_SUCCESS };
    arg_view(&a, &p->q, 1, 4);
    arg_view(&a, &p->k, 1, 4);
    arg_view(&a, &p->v, 1, 4);
    arg_view_dt(&a, &p->g, p->has_g, p->has_g ? p->g.ndim : 4, 4);
    arg_view_dt(&a, &p->beta, p->has_beta, 3, 3);
    arg_view_dt(&a, &p->out, 1, 4, 4);
    arg_view(&a, &p->state_in, p->has_state_in, 4);
    arg_view(&a, &p->state_out, p->has_state_out, 4);
    arg_view(&a, &p->z_in, p->has_z_in, 3);
    arg_mem(&a, zs);
    arg_mem(&a, aux);   /* as floats: decay [H] */
    arg_mem(&a, aux);   /* as ints: cu_seqlens after H words */
    arg_int(&a, (int)p->kind);
    arg_int(&a, (int)p->feature);
    arg_int(&a, flags_of(p));
    arg_long(&a, p->s);
    arg_int(&a, (int)p->h);
    arg_int(&a, (int)p->dv);
    arg_float(&a, p->scale);
    arg_float(&a, p->norm_eps);
    if (a.err != CL_SUCCESS)
        return attn_cl_fail(a.err, "attn_linear: clSetKernelArg");

    const size_t slices = (size_t)((p->dv + c->dvs - 1) / c->dvs);
    const size_t local[3] = { (size_t)c->dvs, (size_t)c->ks, 1 };
    const size_t global[3] = { slices * (size_t)c->dvs, (size_t)p->h * (size_t)c->ks,
                               (size_t)p->num_seqs };
    cl_int err = d->cl->EnqueueNDRangeKernel(d->queue, k, 3, NULL, global, local, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_linear: clEnqueueNDRangeKernel");
    if (zout) {
        attn_cl_args z = { d->cl, zk, 0, CL_SUCCESS };
        arg_mem(&z, zs);
        arg_view(&z, &p->z_out, 1, 3);
        arg_long(&z, p->num_seqs);
        arg_int(&z, (int)p->h);
        const size_t n = (size_t)(p->num_seqs * p->h * p->dk);
        if (z.err == CL_SUCCESS)
            z.err = d->cl->EnqueueNDRangeKernel(d->queue, zk, 1, NULL, &n, NULL, 0, NULL, NULL);
        if (z.err != CL_SUCCESS)
            return attn_cl_fail(z.err, "attn_linear: z_out launch");
    }
    err = d->cl->Finish(d->queue);
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_linear: clFinish");
    return ATTN_OK;
}

attn_status attn_cl_linear(attn_device *dev, const attn_linear_problem *p)
{
    attn_cl_device *d = dev->impl;
    if (p->num_seqs == 0)
        return ATTN_OK;
    pthread_mutex_lock(&d->lock);
    attn_status s = ATTN_OK;
    cl_kernel k = NULL, zk = NULL;
    lin_cfg c = { 1, 1, 1 };
    size_t kernel_max = (size_t)-1;
    /* If the compiled kernel cannot run the chosen work-group (registers),
     * the next smaller one within its limit. */
    for (int tries = 0;; tries++) {
        if (tries > 8 || !choose_cfg(d, p, dev->info.compute_units, kernel_max, &c)) {
            s = attn_fail(ATTN_ERR_DEVICE, "attn_linear: no work-group shape fits %s (local "
                          "memory %llu bytes, max work-group %zu, kernel max %zu) for Dk %lld",
                          dev->info.name, (unsigned long long)d->local_mem, d->max_wg,
                          kernel_max, (long long)p->dk);
            break;
        }
        if ((s = get_kernels(d, p, &c, &k, &zk, &kernel_max)) != ATTN_OK)
            break;
        if ((size_t)(c.ks * c.dvs) <= kernel_max)
            break;
        d->cl->ReleaseKernel(k);
        d->cl->ReleaseKernel(zk);
        k = zk = NULL;
    }
    cl_mem aux = NULL, zs = NULL;
    if (s == ATTN_OK)
        s = make_aux(d, p, &aux);
    if (s == ATTN_OK && p->has_z_out) {
        cl_int err;
        zs = d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE,
                                 (size_t)(p->num_seqs * p->h * p->dk) * sizeof(float), NULL, &err);
        if (!zs || err != CL_SUCCESS) {
            zs = NULL;
            s = attn_cl_fail(err, "attn_linear: clCreateBuffer (z scratch)");
        }
    }
    if (s == ATTN_OK)
        s = launch(d, p, k, zk, &c, aux, zs);
    if (zs) d->cl->ReleaseMemObject(zs);
    if (aux) d->cl->ReleaseMemObject(aux);
    if (k) d->cl->ReleaseKernel(k);
    if (zk) d->cl->ReleaseKernel(zk);
    pthread_mutex_unlock(&d->lock);
    return s;
}
