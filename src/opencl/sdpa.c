/* attn_sdpa on OpenCL: picks tile sizes from the device's limits, gets the
 * specialised program from the cache and launches opencl/sdpa.cl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ocl.h"
#include "args.h"
#include "../error.h"
#include "../gpu_sdpa_flags.h"

/* A work-group shape: tx x ty work-items of rm rows x rn keys, dims staged
 * dc and V rows kc at a time; qres: the block's Q stays in local memory;
 * pref: 1 the next K chunk, 2 also the next V chunk, 3 also the next Q
 * chunk (when restaged) is read into registers during the products (0 none). */
typedef struct sdpa_cfg { int tx, ty, rm, rn, dc, kc, qres, pref; } sdpa_cfg;

/* opencl/sdpa.cl's flag bit beyond the common ones (gpu_sdpa_flags.h). */
enum { F_VEC = 1 << 10 };

static int64_t rup4(int64_t n) { return (n + 3) / 4 * 4; }

/* The kernel's local memory (see LOCAL_LEN in opencl/sdpa.cl). */
static size_t local_bytes(const sdpa_cfg *c, int64_t dd, int64_t dv)
{
    const int64_t bq = c->ty * c->rm, bk = c->tx * c->rn;
    const int64_t dvp = (dv + c->tx - 1) / c->tx * c->tx;
    int64_t stage = (c->qres ? 0 : rup4(c->dc * bq)) + c->dc * bk;
    if (c->kc * dvp > stage)
        stage = c->kc * dvp;
    const int64_t floats = (c->qres ? rup4(dd * bq) : 0) + rup4(stage) + rup4(bk * (bq + 4)) +
                           rup4(bq * (c->tx % 4 == 0 ? c->tx + 4 : c->tx));
    return (size_t)floats * sizeof(float) + 2 * sizeof(int);
}

/* Completes a (tx, ty, rm, rn, qres) shape with the largest dim chunk DC and
 * key chunk KC that fit the device's local memory; 0 if nothing fits. */
static int fit_local(const attn_cl_device *d, sdpa_cfg *c, int64_t dd, int64_t dv)
{
    const size_t budget = d->local_mem > 512 ? (size_t)d->local_mem - 256 : 0;
    const int bk = c->tx * c->rn;
    for (int dc = dd < 32 ? (int)dd : 32; dc >= 1; dc /= 2)
        for (int kc = bk; kc >= 1; kc /= 2) {
            c->dc = dc;
            c->kc = kc;
            if (local_bytes(c, dd, dv) <= budget)
                return 1;
        }
    return 0;
}

/* ATTN_OPENCL_SDPA_<name>=0..max forces a structural choice; -1 when unset. */
static int env_choice(const char *name, int max)
{
    const char *e = getenv(name);
    return e && e[0] >= '0' && e[0] <= '0' + max && !e[1] ? e[0] - '0' : -1;
}

/* Work-group shapes from large to small; the first that the device's
 * limits (work-group size, work-item sizes, local memory) allow is used,
 * with the block's Q resident in local memory when it fits. Tuning:
 * ATTN_OPENCL_SDPA_TILE="tx,ty,rm,rn[,dc,kc]" overrides the shape,
 * ATTN_OPENCL_SDPA_QRES=0|1 and ATTN_OPENCL_SDPA_PREF=0..3 the choices. */
static int choose_cfg(const attn_cl_device *d, int64_t dd, int64_t dv, size_t kernel_max,
                      int use_env, sdpa_cfg *out)
{
    const int qres_env = env_choice("ATTN_OPENCL_SDPA_QRES", 1);
    const int pref_env = env_choice("ATTN_OPENCL_SDPA_PREF", 3);
    const int pref = pref_env >= 0 ? pref_env : 2;
    const char *env = getenv("ATTN_OPENCL_SDPA_TILE");
    if (env && *env && use_env) {
        /* Given chunks: Q resident only if asked for; else as for the table. */
        sdpa_cfg c = { 0, 0, 0, 0, 0, 0, qres_env > 0, pref };
        int n = sscanf(env, "%d,%d,%d,%d,%d,%d", &c.tx, &c.ty, &c.rm, &c.rn, &c.dc, &c.kc);
        if (n == 6 && (c.dc < 1 || c.kc < 1 || c.tx * c.rn % c.kc != 0))
            n = 4;   /* key chunks must tile the key tile: fitted instead */
        if ((n == 4 || n == 6) && c.tx > 0 && c.ty > 0 && c.rm > 0 && c.rn > 0) {
            if (n == 4) {
                c.qres = qres_env != 0;
                int ok = fit_local(d, &c, dd, dv);
                if (!ok && qres_env < 0) {
                    c.qres = 0;
                    ok = fit_local(d, &c, dd, dv);
                }
                if (!ok)
                    return 0;
            }
            *out = c;
            return 1;
        }
    }
    /* 8 x 16 of 4 x 4 first (64 rows x 32 keys): small enough for the
     * block's Q to stay in local memory at D = 128, the fastest on an NVIDIA
     * H200 (f32 causal B=1 H=32 S=4096: 14.8 TFLOP/s, against 11.7 for
     * 32 x 8, 10.2 for 8 x 32 and 12.0 for 16 x 16). Then 32 x 8 (16 O
     * accumulators per work-item: many groups per compute unit) and 8 x 32,
     * where a 32-wide warp spans 4 row groups and 8 key groups, so that its
     * float4 reads of Q, K and V rows touch 64-128 bytes each. */
    static const int shapes[][4] = {
        { 8, 16, 4, 4 }, { 32, 8, 4, 4 }, { 8, 32, 4, 4 }, { 16, 16, 4, 4 }, { 16, 8, 4, 4 }, { 8, 8, 4, 4 },
        { 8, 8, 2, 4 }, { 8, 4, 2, 2 }, { 4, 4, 2, 2 },
        { 2, 2, 2, 2 }, { 1, 1, 1, 1 },
    };
    /* First pass: at most 64 O accumulators per work-item (registers, with
     * the scores and prefetched chunks beside them); second: any. */
    for (int capped = 1; capped >= 0; capped--)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            sdpa_cfg c = { shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], 0, 0, 0,
                           pref };
            if ((size_t)(c.tx * c.ty) > d->max_wg || (size_t)(c.tx * c.ty) > kernel_max ||
                (size_t)c.tx > d->max_wi[0] || (size_t)c.ty > d->max_wi[1] ||
                (capped && c.rm * ((dv + c.tx - 1) / c.tx) > 64))
                continue;
            /* Q resident first, then not, as far as ATTN_OPENCL_SDPA_QRES allows. */
            for (c.qres = qres_env != 0; c.qres >= (qres_env > 0); c.qres--)
                if (fit_local(d, &c, dd, dv)) {
                    *out = c;
                    return 1;
                }
        }
    return 0;
}

/* Whether q, k and v start and step at multiples of four elements (rows,
 * heads, batches; unit innermost stride): the four-element loads of the
 * F_VEC path are then aligned (opencl/sdpa.cl ALIGNED). ATTN_OPENCL_SDPA_
 * ALIGNED=0 keeps vload4 (tuning, tests). */
static int aligned4(const attn_sdpa_problem *p)
{
    const attn_view *v[3] = { &p->q, &p->k, &p->v };
    const char *env = getenv("ATTN_OPENCL_SDPA_ALIGNED");
    if (env && *env == '0')
        return 0;
    for (int i = 0; i < 3; i++) {
        if (v[i]->stride[3] != 1 || (v[i]->offset / attn_dtype_size(v[i]->dtype)) % 4)
            return 0;
        for (int j = 0; j < 3; j++)
            if (v[i]->stride[j] % 4)
                return 0;
    }
    return p->d % 4 == 0 && p->dv % 4 == 0;
}

/* The kernel's flags (F_*) for a call with configuration c. */
static int sdpa_flags(const attn_sdpa_problem *p, const sdpa_cfg *c)
{
    int flags = attn_gpu_sdpa_flags(p);
    /* Four elements at a time: unit innermost strides, dims and chunk multiples of 4. */
    if (p->q.stride[3] == 1 && p->k.stride[3] == 1 && p->v.stride[3] == 1 &&
        p->d % 4 == 0 && p->dv % 4 == 0 && c->dc % 4 == 0)
        flags |= F_VEC;
    return flags;
}

/* Builds (or finds) the program for cfg and the call's flags (sdpa_flags)
 * and creates the kernel; *too_big is set when the compiled kernel cannot
 * run work-groups of that size. */
static attn_status get_kernel(attn_cl_device *d, const attn_sdpa_problem *p, const sdpa_cfg *c,
                              int flags, cl_kernel *out, size_t *kernel_max)
{
    /* In-tile offsets (rows of one tile times the row stride, plus a head
     * dim times the innermost stride) in int unless they could overflow. */
    const int64_t bq = c->ty * c->rm, bk = c->tx * c->rn, lim = INT32_MAX / 2;
    const int small = p->q.stride[1] < lim / bq && p->q.stride[3] < lim / p->d &&
                      p->k.stride[1] < lim / bk && p->k.stride[3] < lim / p->d &&
                      p->v.stride[1] < lim / bk && p->v.stride[3] < lim / p->dv;
    /* The program is built for the call's flags (FEATS): the code of every
     * other feature folds away, and with it the registers it held (on an
     * H200, f32, B = 1, H = 32, S = 4096, D = 128: 1.45x faster full, 1.29x
     * causal). ATTN_OPENCL_SDPA_FEATS=0 builds it for all of them. */
    const char *feats = getenv("ATTN_OPENCL_SDPA_FEATS");
    char opts[512];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DD=%lld -DDV=%lld -DIN_DT=%d -DTX=%d -DTY=%d "
             "-DRM=%d -DRN=%d -DDC=%d -DKC=%d -DQRES=%d -DPREF=%d -DIDX_T=%s -DALIGNED=%d "
             "-DFEATS=%d%s",
             (long long)p->d, (long long)p->dv, (int)p->q.dtype, c->tx, c->ty, c->rm, c->rn,
             c->dc, c->kc, c->qres, c->pref, small ? "int" : "long", aligned4(p),
             feats && strcmp(feats, "0") == 0 ? -1 : flags,
             d->is_cpu ? "" : " -DATTN_UNROLL");
    cl_program prog;
    attn_status s = attn_cl_program_get(d, ATTN_CL_SRC_SDPA, opts, &prog);
    if (s != ATTN_OK)
        return s;
    cl_int err;
    cl_kernel k = d->cl->CreateKernel(prog, "attn_sdpa", &err);
    if (!k || err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_sdpa: clCreateKernel");
    size_t wg = 0;
    err = d->cl->GetKernelWorkGroupInfo(k, d->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    if (err != CL_SUCCESS) {
        d->cl->ReleaseKernel(k);
        return attn_cl_fail(err, "attn_sdpa: clGetKernelWorkGroupInfo");
    }
    *kernel_max = wg;
    *out = k;
    return ATTN_OK;
}

/* alibi slopes and sink logits [2*hq] floats, then cu_seqlens_q/k
 * [2*(nseq+1)] ints, in one small read-only buffer. */
static attn_status make_aux(attn_cl_device *d, const attn_sdpa_problem *p, cl_mem *out)
{
    *out = NULL;
    const int varlen = p->cu_q != NULL;
    if (!p->alibi_slopes && !p->sink_logits && !varlen)
        return ATTN_OK;
    const size_t nf = 2 * (size_t)p->hq, ni = varlen ? 2 * ((size_t)p->num_seqs + 1) : 0;
    const size_t bytes = nf * sizeof(float) + ni * sizeof(int32_t);
    char *host = calloc(1, bytes);
    if (!host)
        return attn_fail(ATTN_ERR_OUT_OF_MEMORY, "attn_sdpa: out of memory");
    float *f = (float *)host;
    for (int64_t h = 0; h < p->hq; h++) {
        f[h] = p->alibi_slopes ? p->alibi_slopes[h] : 0.0f;
        f[p->hq + h] = p->sink_logits ? p->sink_logits[h] : 0.0f;
    }
    if (varlen) {
        int32_t *iv = (int32_t *)(host + nf * sizeof(float));
        memcpy(iv, p->cu_q, ((size_t)p->num_seqs + 1) * sizeof(int32_t));
        memcpy(iv + p->num_seqs + 1, p->cu_k, ((size_t)p->num_seqs + 1) * sizeof(int32_t));
    }
    cl_int err;
    *out = d->cl->CreateBuffer(d->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, host, &err);
    free(host);
    if (!*out || err != CL_SUCCESS) {
        *out = NULL;
        return attn_cl_fail(err, "attn_sdpa: clCreateBuffer (parameters)");
    }
    return ATTN_OK;
}

static attn_status launch(attn_cl_device *d, const attn_sdpa_problem *p, cl_kernel k,
                          const sdpa_cfg *c, int flags, cl_mem aux)
{
    attn_cl_args a = { d->cl, k, 0, CL_SUCCESS };
    arg_view(&a, &p->q, 1, 4);
    arg_view(&a, &p->k, 1, 4);
    arg_view(&a, &p->v, 1, 4);
    arg_view(&a, &p->out, 1, 4);
    arg_int(&a, (int)p->out.dtype);
    arg_view(&a, &p->lse, p->has_lse, 3);
    arg_view(&a, &p->mask, p->has_mask, 4);
    arg_int(&a, p->has_mask ? (int)p->mask.dtype : -1);
    arg_view(&a, &p->gate, p->has_gate, 4);
    arg_int(&a, p->has_gate ? (int)p->gate.dtype : -1);
    arg_view(&a, &p->block_mask, p->has_block_mask, 4);
    arg_mem(&a, aux);   /* as floats: alibi [hq], sinks [hq] */
    arg_mem(&a, aux);   /* as ints: cu_seqlens after 2*hq words */
    arg_int(&a, flags);
    arg_int(&a, (int)p->hq);
    arg_int(&a, (int)(p->hq / p->hkv));
    arg_long(&a, p->sq);
    arg_long(&a, p->sk);
    arg_int(&a, (int)p->num_seqs);
    arg_float(&a, p->scale);
    arg_float(&a, p->softcap);
    arg_float(&a, p->sigmoid_bias);
    arg_long(&a, p->window_left);
    arg_long(&a, p->window_right);
    arg_long(&a, p->sink_tokens);
    arg_long(&a, p->has_block_mask ? p->block_q : 1);
    arg_long(&a, p->has_block_mask ? p->block_k : 1);
    if (a.err != CL_SUCCESS)
        return attn_cl_fail(a.err, "attn_sdpa: clSetKernelArg");

    const size_t nqb = (size_t)((p->sq + c->ty * c->rm - 1) / (c->ty * c->rm));
    const size_t local[3] = { (size_t)c->tx, (size_t)c->ty, 1 };
    /* heads x query blocks (opencl/sdpa.cl orders the blocks) */
    const size_t global[3] = { (size_t)p->hq * (size_t)c->tx, nqb * (size_t)c->ty,
                               (size_t)p->num_seqs };
    cl_int err = d->cl->EnqueueNDRangeKernel(d->queue, k, 3, NULL, global, local, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_sdpa: clEnqueueNDRangeKernel");
    err = d->cl->Finish(d->queue);
    if (err != CL_SUCCESS)
        return attn_cl_fail(err, "attn_sdpa: clFinish");
    return ATTN_OK;
}

attn_status attn_cl_sdpa(attn_device *dev, const attn_sdpa_problem *p)
{
    attn_cl_device *d = dev->impl;
    if (p->sq == 0 || p->num_seqs == 0)
        return ATTN_OK;
    pthread_mutex_lock(&d->lock);
    attn_status s = ATTN_OK;
    cl_kernel k = NULL;
    sdpa_cfg c = { 0, 0, 0, 0, 0, 0, 0, 0 };
    size_t kernel_max = (size_t)-1;
    int flags = 0;
    /* The largest shape the device allows; if the compiled kernel cannot
     * run work-groups that large (registers), the next smaller one. */
    for (int tries = 0;; tries++) {
        if (tries > 8 || !choose_cfg(d, p->d, p->dv, kernel_max, tries == 0, &c)) {
            s = attn_fail(ATTN_ERR_DEVICE, "attn_sdpa: no work-group shape fits %s (local "
                          "memory %llu bytes, max work-group %zu, kernel max %zu) for head dims "
                          "%lld/%lld", dev->info.name, (unsigned long long)d->local_mem,
                          d->max_wg, kernel_max, (long long)p->d, (long long)p->dv);
            break;
        }
        flags = sdpa_flags(p, &c);
        if ((s = get_kernel(d, p, &c, flags, &k, &kernel_max)) != ATTN_OK)
            break;
        if ((size_t)(c.tx * c.ty) <= kernel_max)
            break;
        d->cl->ReleaseKernel(k);
        k = NULL;
    }
    cl_mem aux = NULL;
    if (s == ATTN_OK)
        s = make_aux(d, p, &aux);
    if (s == ATTN_OK)
        s = launch(d, p, k, &c, flags, aux);
    if (aux)
        d->cl->ReleaseMemObject(aux);
    if (k)
        d->cl->ReleaseKernel(k);
    pthread_mutex_unlock(&d->lock);
    return s;
}
