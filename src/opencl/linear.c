/* attn_linear on OpenCL: sizes the recurrent kernel (opencl/linear.cl) from
 * the device's limits and launches it. Both API algorithms (chunkwise and
 * recurrent) run this one kernel: they agree to f32 rounding by contract,
 * and the recurrent walk keeps the state in registers for the whole
 * sequence, so its cost is 4 Dk Dv flops per token and head (6 for the
 * delta kinds) with no state traffic to memory between tokens.
 * Tokens are walked in order, so when (sequence, head, column) work-items
 * cannot fill the device, long sequences of the non-delta kinds are cut into
 * segments walked in parallel: a summary walk per segment from a zero state,
 * a scan over segments for their start states, then the real walk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ocl.h"
#include "args.h"
#include "../error.h"

/* Flag bits shared with opencl/linear.cl. */
enum { LF_L2NORM = 1 << 0, LF_NORMALIZE = 1 << 1, LF_VARLEN = 1 << 2, LF_STATE_IN = 1 << 3,
       LF_STATE_OUT = 1 << 4, LF_Z_IN = 1 << 5, LF_Z_OUT = 1 << 6, LF_G_SCALAR = 1 << 7,
       LF_G_CHANNEL = 1 << 8, LF_DECAY_PARAM = 1 << 9, LF_NO_OUT = 1 << 10 };

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

typedef struct lin_kernels { cl_kernel rec, zcopy, decay, combine; } lin_kernels;

static void release_kernels(attn_cl_device *d, lin_kernels *ks)
{
    cl_kernel *all[4] = { &ks->rec, &ks->zcopy, &ks->decay, &ks->combine };
    for (int i = 0; i < 4; i++) {
        if (*all[i])
            d->cl->ReleaseKernel(*all[i]);
        *all[i] = NULL;
    }
}

static attn_status get_kernels(attn_cl_device *d, const attn_linear_problem *p, const lin_cfg *c,
                               lin_kernels *ks, size_t *kernel_max)
{
    char opts[256];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DDK=%lld -DKS=%d -DDVS=%d -DTB=%d -DIN_DT=%d%s",
             (long long)p->dk, c->ks, c->dvs, c->tb, (int)p->q.dtype,
             d->is_cpu ? "" : " -DATTN_UNROLL");
    cl_program prog;
    attn_status s = attn_cl_program_get(d, ATTN_CL_SRC_LINEAR, opts, &prog);
    if (s != ATTN_OK)
        return s;
    static const char *const names[4] = { "attn_linear_recurrent", "attn_linear_zcopy",
                                          "attn_linear_seg_decay", "attn_linear_seg_combine" };
    cl_kernel *all[4] = { &ks->rec, &ks->zcopy, &ks->decay, &ks->combine };
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < 4 && err == CL_SUCCESS; i++) {
        *all[i] = d->cl->CreateKernel(prog, names[i], &err);
        if (!*all[i] && err == CL_SUCCESS)
            err = CL_INVALID_KERNEL;
    }
    if (err == CL_SUCCESS)
        err = d->cl->GetKernelWorkGroupInfo(ks->rec, d->id, CL_KERNEL_WORK_GROUP_SIZE,
                                            sizeof *kernel_max, kernel_max, NULL);
    if (err != CL_SUCCESS) {
        release_kernels(d, ks);
        return attn_cl_fail(err, "attn_linear: clCreateKernel / clGetKernelWorkGroupInfo");
    }
    return ATTN_OK;
}

/* Segments per sequence for the non-delta kinds: enough that the problem
 * fills the device (SEG_ITEMS_PER_CU work-items per compute unit of a GPU,
 * SEG_GROUPS_PER_CORE work-groups per core of a CPU), each of at least
 * SEG_MIN_TOKENS (a segment costs two walks, the summary and the real one,
 * plus a scan step), at most SEG_MAX. 1 = no segments.
 * ATTN_OPENCL_LINEAR_SEGMENTS=n sets it (tests, tuning). */
#define SEG_ITEMS_PER_CU 2048
#define SEG_GROUPS_PER_CORE 4
#define SEG_MIN_TOKENS 256
#define SEG_MAX 64

static int choose_segments(const attn_cl_device *d, const attn_linear_problem *p,
                           const lin_cfg *c, int cus)
{
    if (p->kind == ATTN_LINEAR_DELTA || p->kind == ATTN_LINEAR_GATED_DELTA ||
        p->kind == ATTN_LINEAR_KDA)
        return 1;   /* their segment transition is a full Dk x Dk matrix */
    const char *env = getenv("ATTN_OPENCL_LINEAR_SEGMENTS");
    if (env && atoi(env) > 0)
        return atoi(env) < SEG_MAX ? atoi(env) : SEG_MAX;
    /* a CPU device runs a work-group's items in one thread: count groups */
    const int64_t groups = p->num_seqs * p->h * ((p->dv + c->dvs - 1) / c->dvs);
    const int64_t have = d->is_cpu ? groups : groups * c->dvs * c->ks;
    const int64_t want = (int64_t)cus * (d->is_cpu ? SEG_GROUPS_PER_CORE : SEG_ITEMS_PER_CU);
    int64_t n = want / (have > 0 ? have : 1);
    if (n > p->s / SEG_MIN_TOKENS) n = p->s / SEG_MIN_TOKENS;
    if (n > SEG_MAX) n = SEG_MAX;
    return n > 1 ? (int)n : 1;
}

static cl_mem scratch(attn_cl_device *d, int64_t floats, cl_int *err)
{
    return d->cl->CreateBuffer(d->context, CL_MEM_READ_WRITE,
                               (size_t)(floats > 0 ? floats : 1) * sizeof(float), NULL, err);
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

/* A state argument of attn_linear_recurrent: the caller's view, contiguous
 * scratch (strides given), or absent (both NULL). */
static void arg_state(attn_cl_args *a, const attn_view *v, cl_mem scratch,
                      const int64_t *strides, int n)
{
    if (v) {
        arg_view(a, v, 1, n);
    } else if (scratch) {
        arg_mem(a, scratch);
        arg_long(a, 0);
        for (int i = 0; i < n; i++)
            arg_long(a, strides[i]);
    } else {
        arg_view(a, NULL, 0, n);
    }
}

/* One launch of attn_linear_recurrent over nseg segments per sequence; the
 * start state from s_in / s_in_mem, the end state to s_out / s_out_mem,
 * z from z_in / z_in_mem and to the scratch zs. */
typedef struct rec_io {
    int flags, nseg;
    const attn_view *s_in, *s_out, *z_in;
    cl_mem s_in_mem, s_out_mem, z_in_mem, zs;
} rec_io;

static attn_status launch_rec(attn_cl_device *d, const attn_linear_problem *p, cl_kernel k,
                              const lin_cfg *c, cl_mem aux, const rec_io *io)
{
    const int64_t ss[4] = { p->h * p->dk * p->dv, p->dk * p->dv, p->dv, 1 };
    const int64_t zs[3] = { p->h * p->dk, p->dk, 1 };
    attn_cl_args a = { d->cl, k, 0, CL_SUCCESS };
    arg_view(&a, &p->q, 1, 4);
    arg_view(&a, &p->k, 1, 4);
    arg_view(&a, &p->v, 1, 4);
    arg_view_dt(&a, &p->g, p->has_g, p->has_g ? p->g.ndim : 4, 4);
    arg_view_dt(&a, &p->beta, p->has_beta, 3, 3);
    arg_view_dt(&a, &p->out, 1, 4, 4);
    arg_state(&a, io->s_in, io->s_in_mem, ss, 4);
    arg_state(&a, io->s_out, io->s_out_mem, ss, 4);
    arg_state(&a, io->z_in, io->z_in_mem, zs, 3);
    arg_mem(&a, io->zs);
    arg_mem(&a, aux);   /* as floats: decay [H] */
    arg_mem(&a, aux);   /* as ints: cu_seqlens after H words */
    arg_int(&a, (int)p->kind);
    arg_int(&a, (int)p->feature);
    arg_int(&a, io->flags);
    arg_long(&a, p->s);
    arg_int(&a, (int)p->h);
    arg_int(&a, (int)p->dv);
    arg_float(&a, p->scale);
    arg_float(&a, p->norm_eps);
    arg_int(&a, io->nseg);
    if (a.err != CL_SUCCESS)
        return attn_cl_fail(a.err, "attn_linear: clSetKernelArg");
    const size_t slices = (size_t)((p->dv + c->dvs - 1) / c->dvs);
    const size_t local[3] = { (size_t)c->dvs, (size_t)c->ks, 1 };
    const size_t global[3] = { slices * (size_t)c->dvs, (size_t)p->h * (size_t)c->ks,
                               (size_t)(p->num_seqs * io->nseg) };
    cl_int err = d->cl->EnqueueNDRangeKernel(d->queue, k, 3, NULL, global, local, 0, NULL, NULL);
    return err == CL_SUCCESS ? ATTN_OK : attn_cl_fail(err, "attn_linear: clEnqueueNDRangeKernel");
}

static attn_status launch_1d(attn_cl_device *d, cl_kernel k, int64_t n, const char *what)
{
    const size_t global = (size_t)n;
    cl_int err = d->cl->EnqueueNDRangeKernel(d->queue, k, 1, NULL, &global, NULL, 0, NULL, NULL);
    return err == CL_SUCCESS ? ATTN_OK : attn_cl_fail(err, what);
}

/* The whole sequence per work-group, then z_out from the scratch. */
static attn_status run_whole(attn_cl_device *d, const attn_linear_problem *p,
                             const lin_kernels *ks, const lin_cfg *c, cl_mem aux, cl_mem zs)
{
    const rec_io io = { flags_of(p), 1, p->has_state_in ? &p->state_in : NULL,
                        p->has_state_out ? &p->state_out : NULL,
                        p->has_z_in ? &p->z_in : NULL, NULL, NULL, NULL, zs };
    attn_status s = launch_rec(d, p, ks->rec, c, aux, &io);
    if (s != ATTN_OK || !p->has_z_out)
        return s;
    attn_cl_args z = { d->cl, ks->zcopy, 0, CL_SUCCESS };
    arg_mem(&z, zs);
    arg_view(&z, &p->z_out, 1, 3);
    arg_long(&z, p->num_seqs);
    arg_int(&z, (int)p->h);
    if (z.err != CL_SUCCESS)
        return attn_cl_fail(z.err, "attn_linear: clSetKernelArg (z_out)");
    return launch_1d(d, ks->zcopy, p->num_seqs * p->h * p->dk, "attn_linear: z_out launch");
}

/* nseg segments per sequence (non-delta kinds): summary pass (dS, dz),
 * segment decays D, the scan over segments (start states in place of dS,
 * and state_out / z_out), then every segment from its start state. */
static attn_status run_segments(attn_cl_device *d, const attn_linear_problem *p,
                                const lin_kernels *ks, const lin_cfg *c, cl_mem aux, int nseg,
                                cl_mem dS, cl_mem D, cl_mem dz)
{
    const int base = flags_of(p) & ~(LF_STATE_IN | LF_STATE_OUT | LF_Z_IN | LF_Z_OUT);
    const rec_io summary = { base | LF_STATE_OUT | LF_NO_OUT | (p->normalize ? LF_Z_OUT : 0),
                             nseg, NULL, NULL, NULL, NULL, dS, NULL, dz };
    attn_status s = launch_rec(d, p, ks->rec, c, aux, &summary);
    if (s != ATTN_OK)
        return s;
    const int64_t ndecay = p->num_seqs * nseg * p->h * p->dk;
    attn_cl_args a = { d->cl, ks->decay, 0, CL_SUCCESS };
    arg_view_dt(&a, &p->g, p->has_g, p->has_g ? p->g.ndim : 4, 4);
    arg_mem(&a, aux);
    arg_mem(&a, aux);
    arg_int(&a, flags_of(p));
    arg_long(&a, p->s);
    arg_int(&a, (int)p->h);
    arg_int(&a, nseg);
    arg_long(&a, ndecay);
    arg_mem(&a, D);
    if (a.err != CL_SUCCESS)
        return attn_cl_fail(a.err, "attn_linear: clSetKernelArg (segment decays)");
    if ((s = launch_1d(d, ks->decay, ndecay, "attn_linear: segment decay launch")) != ATTN_OK)
        return s;
    const int64_t nstate = p->num_seqs * p->h * p->dk * p->dv;
    attn_cl_args b = { d->cl, ks->combine, 0, CL_SUCCESS };
    arg_view(&b, &p->state_in, p->has_state_in, 4);
    arg_view(&b, &p->state_out, p->has_state_out, 4);
    arg_view(&b, &p->z_in, p->has_z_in, 3);
    arg_view(&b, &p->z_out, p->has_z_out, 3);
    arg_mem(&b, dS);
    arg_mem(&b, D);
    arg_mem(&b, dz);
    arg_int(&b, flags_of(p));
    arg_int(&b, (int)p->h);
    arg_int(&b, (int)p->dv);
    arg_int(&b, nseg);
    arg_long(&b, nstate);
    if (b.err != CL_SUCCESS)
        return attn_cl_fail(b.err, "attn_linear: clSetKernelArg (segment scan)");
    if ((s = launch_1d(d, ks->combine, nstate, "attn_linear: segment scan launch")) != ATTN_OK)
        return s;
    const rec_io apply = { base | LF_STATE_IN | (p->normalize ? LF_Z_IN : 0), nseg,
                           NULL, NULL, NULL, dS, NULL, p->normalize ? dz : NULL, NULL };
    return launch_rec(d, p, ks->rec, c, aux, &apply);
}

attn_status attn_cl_linear(attn_device *dev, const attn_linear_problem *p)
{
    attn_cl_device *d = dev->impl;
    if (p->num_seqs == 0)
        return ATTN_OK;
    pthread_mutex_lock(&d->lock);
    attn_status s = ATTN_OK;
    lin_kernels ks = { NULL, NULL, NULL, NULL };
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
        if ((s = get_kernels(d, p, &c, &ks, &kernel_max)) != ATTN_OK)
            break;
        if ((size_t)(c.ks * c.dvs) <= kernel_max)
            break;
        release_kernels(d, &ks);
    }
    const int nseg = choose_segments(d, p, &c, dev->info.compute_units);
    const int64_t slots = p->num_seqs * nseg * p->h * p->dk;
    cl_mem aux = NULL, zs = NULL, dS = NULL, D = NULL;
    cl_int e1 = CL_SUCCESS, e2 = CL_SUCCESS, e3 = CL_SUCCESS;
    if (s == ATTN_OK)
        s = make_aux(d, p, &aux);
    if (s == ATTN_OK && (p->has_z_out || (nseg > 1 && p->normalize)))
        zs = scratch(d, slots, &e1);
    if (s == ATTN_OK && nseg > 1) {
        dS = scratch(d, slots * p->dv, &e2);
        D = scratch(d, slots, &e3);
    }
    if (s == ATTN_OK && (e1 != CL_SUCCESS || e2 != CL_SUCCESS || e3 != CL_SUCCESS))
        s = attn_cl_fail(e1 != CL_SUCCESS ? e1 : e2 != CL_SUCCESS ? e2 : e3,
                         "attn_linear: clCreateBuffer (scratch)");
    if (s == ATTN_OK)
        s = nseg > 1 ? run_segments(d, p, &ks, &c, aux, nseg, dS, D, zs)
                     : run_whole(d, p, &ks, &c, aux, zs);
    if (s == ATTN_OK) {
        cl_int err = d->cl->Finish(d->queue);
        if (err != CL_SUCCESS)
            s = attn_cl_fail(err, "attn_linear: clFinish");
    }
    cl_mem bufs[4] = { aux, zs, dS, D };
    for (int i = 0; i < 4; i++)
        if (bufs[i])
            d->cl->ReleaseMemObject(bufs[i]);
    release_kernels(d, &ks);
    pthread_mutex_unlock(&d->lock);
    return s;
}
