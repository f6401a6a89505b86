/* attn_linear on Vulkan: vulkan/linear.comp, the recurrence of every kind,
 * for both algorithms of the API (they agree to f32 rounding). The shape
 * (invocations per state column, columns per workgroup, tokens per staged
 * block) comes from the device's subgroups, workgroup limits and shared
 * memory. Whole sequences: one dispatch over every (column slice, head,
 * sequence). Long sequences on a small grid: the chunk-parallel form, three
 * dispatches (chunk maps, scan over chunks, chunk outputs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vk.h"
#include "args.h"
#include "../error.h"

/* Parameter words and flag bits shared with vulkan/linear.comp. */
enum { P_Q = 0, P_K = 5, P_V = 10, P_O = 15, P_G = 20, P_B = 25, P_SI = 29, P_SO = 34,
       P_ZI = 39, P_ZO = 43, P_FLAGS = 47, P_LEN = 48, P_H = 49, P_DK = 50, P_DV = 51,
       P_KIND = 52, P_FEATURE = 53, P_IN_DT = 54, P_OUT_DT = 55, P_G_DT = 56, P_B_DT = 57,
       P_SCALE = 58, P_EPS = 59, P_AUX = 64 };
enum { F_VARLEN = 1, F_STATE_IN = 2, F_STATE_OUT = 4, F_Z_IN = 8, F_Z_OUT = 16,
       F_L2NORM = 32, F_G = 64, F_G_CHANNEL = 128, F_DECAY_PARAM = 256, F_NORMALIZE = 512 };

/* ks invocations per state column (each holding dkt rows), dvs columns per
 * workgroup, tb tokens staged per block. */
typedef struct lin_cfg { int ks, dvs, dkt, tb; } lin_cfg;

/* Rows an invocation keeps in registers before columns get split. */
#define LIN_ROWS_PER_INVOCATION 16
/* Workgroup size aimed at (columns x invocations per column). */
#define LIN_WORKGROUP 64
#define LIN_MAX_TB 16

static size_t shared_bytes(const lin_cfg *c)
{
    const size_t dkp = (size_t)c->dkt * (size_t)c->ks;
    return (size_t)c->tb * (3 * dkp + (size_t)c->dvs + 2) * sizeof(float);   /* qs ks as vs sc */
}

/* The subgroup build reduces a column's ks invocations with xor shuffles:
 * they must sit in one subgroup. ATTN_VULKAN_SUBGROUP=0 turns it off. */
static int max_ks(const attn_vk_device *d)
{
    const char *env = getenv("ATTN_VULKAN_SUBGROUP");
    if ((env && strcmp(env, "0") == 0) || !d->subgroup_shuffle || d->subgroup_min < 2)
        return 1;
    return d->subgroup_min < 32 ? (int)d->subgroup_min : 32;
}

/* Largest staged block (<= want) that fits the shared memory; 0 if none. */
static int fit_tb(const attn_vk_device *d, lin_cfg *c, int want)
{
    for (c->tb = want; c->tb >= 1; c->tb--)
        if (shared_bytes(c) <= d->limits.maxComputeSharedMemorySize)
            return 1;
    return 0;
}

static int fits_workgroup(const attn_vk_device *d, const lin_cfg *c)
{
    const uint32_t wg = (uint32_t)(c->ks * c->dvs);
    return wg <= d->limits.maxComputeWorkGroupInvocations &&
           wg <= d->limits.maxComputeWorkGroupSize[0];
}

/* ATTN_VULKAN_LINEAR_TILE="ks,dvs,tb" overrides the choice (tests, tuning):
 * ks a power of two the subgroup build allows. */
static int choose_cfg(const attn_vk_device *d, int64_t dk, int64_t dv, lin_cfg *out)
{
    const int kmax = max_ks(d);
    const char *env = getenv("ATTN_VULKAN_LINEAR_TILE");
    if (env && *env) {
        lin_cfg c = { 0, 0, 0, 0 };
        int tb = 0;
        if (sscanf(env, "%d,%d,%d", &c.ks, &c.dvs, &tb) == 3 && c.ks >= 1 && c.ks <= kmax &&
            (c.ks & (c.ks - 1)) == 0 && c.dvs >= 1 && tb >= 1 && tb <= 256) {
            c.dkt = (int)((dk + c.ks - 1) / c.ks);
            if (fits_workgroup(d, &c) && fit_tb(d, &c, tb)) {
                *out = c;
                return 1;
            }
        }
    }
    lin_cfg c = { 1, 0, 0, 0 };
    while (c.ks < kmax && (dk + c.ks - 1) / c.ks > LIN_ROWS_PER_INVOCATION)
        c.ks *= 2;
    c.dkt = (int)((dk + c.ks - 1) / c.ks);
    c.dvs = LIN_WORKGROUP / c.ks > 1 ? LIN_WORKGROUP / c.ks : 1;
    if (c.dvs > dv)
        c.dvs = (int)dv;
    while (c.dvs > 1 && !fits_workgroup(d, &c))
        c.dvs /= 2;
    if (!fits_workgroup(d, &c) || !fit_tb(d, &c, LIN_MAX_TB))
        return 0;
    *out = c;
    return 1;
}

static int32_t flags_of(const attn_linear_problem *p)
{
    int32_t f = 0;
    if (p->cu) f |= F_VARLEN;
    if (p->has_state_in) f |= F_STATE_IN;
    if (p->has_state_out) f |= F_STATE_OUT;
    if (p->has_z_in) f |= F_Z_IN;
    if (p->has_z_out) f |= F_Z_OUT;
    if (p->l2norm_qk) f |= F_L2NORM;
    if (p->has_g) f |= F_G;
    if (p->has_g && p->g_per_channel) f |= F_G_CHANNEL;
    if (p->decay) f |= F_DECAY_PARAM;
    if (p->normalize) f |= F_NORMALIZE;
    return f;
}

/* Writes the parameter words, then decay [H] and cu_seqlens [N+1]. z_in
 * is read from zin (a copy at offset 0 when it shares z_out's buffer). */
static attn_status write_params(attn_vk_device *d, const attn_linear_problem *p,
                                const attn_view *zin)
{
    const size_t naux = (size_t)p->h + (p->cu ? (size_t)p->num_seqs + 1 : 0);
    attn_status s = attn_vk_host_reserve(d, &d->params, (P_AUX + naux) * sizeof(int32_t));
    if (s != ATTN_OK)
        return s;
    int32_t *w = d->params.mapped;
    memset(w, 0, P_AUX * sizeof *w);
    int ok = attn_vk_put_view(w + P_Q, &p->q, 1, 4) && attn_vk_put_view(w + P_K, &p->k, 1, 4) &&
             attn_vk_put_view(w + P_V, &p->v, 1, 4) && attn_vk_put_view(w + P_O, &p->out, 1, 4) &&
             attn_vk_put_view(w + P_G, &p->g, p->has_g, p->g_per_channel ? 4 : 3) &&
             attn_vk_put_view(w + P_B, &p->beta, p->has_beta, 3) &&
             attn_vk_put_view(w + P_SI, &p->state_in, p->has_state_in, 4) &&
             attn_vk_put_view(w + P_SO, &p->state_out, p->has_state_out, 4) &&
             attn_vk_put_view(w + P_ZI, zin, p->has_z_in, 3) &&
             attn_vk_put_view(w + P_ZO, &p->z_out, p->has_z_out, 3) &&
             p->s < INT32_MAX / 2;
    if (!ok)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_linear: a tensor spans more than 2^31 "
                         "elements; the Vulkan backend indexes in 32 bits");
    w[P_FLAGS] = flags_of(p);
    w[P_LEN] = (int32_t)p->s;
    w[P_H] = (int32_t)p->h;
    w[P_DK] = (int32_t)p->dk;
    w[P_DV] = (int32_t)p->dv;
    w[P_KIND] = (int32_t)p->kind;
    w[P_FEATURE] = (int32_t)p->feature;
    w[P_IN_DT] = (int32_t)p->q.dtype;
    w[P_OUT_DT] = (int32_t)p->out.dtype;
    w[P_G_DT] = p->has_g ? (int32_t)p->g.dtype : 0;
    w[P_B_DT] = p->has_beta ? (int32_t)p->beta.dtype : 0;
    memcpy(&w[P_SCALE], &p->scale, sizeof(float));
    memcpy(&w[P_EPS], &p->norm_eps, sizeof(float));
    float *decay = (float *)(w + P_AUX);
    for (int64_t h = 0; h < p->h; h++)
        decay[h] = p->decay ? p->decay[h] : 1.0f;
    if (p->cu)
        memcpy(w + P_AUX + p->h, p->cu, ((size_t)p->num_seqs + 1) * sizeof(int32_t));
    return ATTN_OK;
}

static VkBuffer handle_or_null(const attn_view *v, int present)
{
    return present ? attn_vk_handle(v->buffer) : VK_NULL_HANDLE;
}

/* Bytes from a view's offset to the end of its last element. */
static VkDeviceSize view_bytes(const attn_view *v)
{
    int64_t last = 0;
    for (int i = 0; i < v->ndim; i++)
        last += (v->shape[i] - 1) * v->stride[i];
    return (VkDeviceSize)(last + 1) * attn_dtype_size(v->dtype);
}

/* The push constants of vulkan/linear.comp and vulkan/linear_scan.comp. */
typedef struct lin_push { int32_t phase, chunk, nch; } lin_push;
typedef struct scan_push { int32_t nch, nseq; } scan_push;
typedef struct scan_delta_push { int32_t nch; } scan_delta_push;

/* Columns per workgroup of vulkan/linear_scan_delta.comp: a divisor of 64
 * whose Dk x CW f32 block fits a quarter of the shared memory (up to 16). */
static int scan_delta_columns(const attn_vk_device *d, int64_t dk)
{
    int cw = 16;
    while (cw > 1 && (uint64_t)dk * (uint64_t)cw * sizeof(float) >
                     d->limits.maxComputeSharedMemorySize / 4)
        cw /= 2;
    return cw;
}
enum { PHASE_WHOLE = 0, PHASE_SUMS = 1, PHASE_OUT = 2 };

/* The grid limits of one dispatch, as an error. */
static attn_status check_grid(const attn_vk_device *d, uint64_t x, uint64_t y, uint64_t z)
{
    const uint32_t *maxg = d->limits.maxComputeWorkGroupCount;
    if (x <= maxg[0] && y <= maxg[1] && z <= maxg[2])
        return ATTN_OK;
    return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_linear: a grid of %llu x %llu x %llu "
                     "workgroups is more than the device allows (%u x %u x %u)",
                     (unsigned long long)x, (unsigned long long)y, (unsigned long long)z,
                     maxg[0], maxg[1], maxg[2]);
}

/* Records one dispatch with its own descriptor set and push constants. */
static attn_status dispatch(attn_vk_device *d, VkPipeline pipe,
                            const VkBuffer bufs[ATTN_VK_BINDINGS], const void *push,
                            uint32_t push_bytes, uint32_t x, uint32_t y, uint32_t z)
{
    VkDescriptorSet set;
    attn_status s = attn_vk_descriptor_set(d, bufs, &set);
    if (s != ATTN_OK)
        return s;
    attn_vk_dispatch(d, pipe, set, push, push_bytes, x, y, z);
    return ATTN_OK;
}

/* The bindings every pass of vulkan/linear.comp shares: 0-5 the inputs and
 * out; 6-9 (state and normaliser) are filled in per pass. */
static void input_bindings(const attn_linear_problem *p, VkBuffer bufs[ATTN_VK_BINDINGS])
{
    memset(bufs, 0, ATTN_VK_BINDINGS * sizeof *bufs);
    bufs[0] = attn_vk_handle(p->q.buffer);
    bufs[1] = attn_vk_handle(p->k.buffer);
    bufs[2] = attn_vk_handle(p->v.buffer);
    bufs[3] = attn_vk_handle(p->out.buffer);
    bufs[4] = handle_or_null(&p->g, p->has_g);
    bufs[5] = handle_or_null(&p->beta, p->has_beta);
}

/* Whole sequences, one workgroup per (column slice, head, sequence). z_in
 * is read from zcopy when that holds a copy (z_in shares z_out's buffer:
 * the workgroup writing z_out does not wait for the others to read it). */
static attn_status record_whole(attn_vk_device *d, const attn_linear_problem *p,
                                uint32_t slices, VkPipeline pipe, const attn_vk_buffer *zcopy)
{
    VkBuffer bufs[ATTN_VK_BINDINGS];
    input_bindings(p, bufs);
    bufs[6] = handle_or_null(&p->state_in, p->has_state_in);
    bufs[7] = handle_or_null(&p->state_out, p->has_state_out);
    bufs[8] = zcopy->buffer ? zcopy->buffer : handle_or_null(&p->z_in, p->has_z_in);
    bufs[9] = handle_or_null(&p->z_out, p->has_z_out);
    if (zcopy->buffer) {
        const VkBufferCopy region = { p->z_in.offset, 0, zcopy->bytes };
        d->vk.CmdCopyBuffer(d->cmd, attn_vk_handle(p->z_in.buffer), zcopy->buffer, 1, &region);
        attn_vk_barrier(d);
    }
    const lin_push pc = { PHASE_WHOLE, 0, 1 };
    return dispatch(d, pipe, bufs, &pc, sizeof pc, slices, (uint32_t)p->h,
                    (uint32_t)p->num_seqs);
}

/* The chunk-parallel form (vulkan/linear.comp, phases 1 and 2, around
 * vulkan/linear_scan.comp or, for the delta kinds, linear_scan_delta.comp):
 * U [N*nch,H,Dk,Dv] and DZ ([N*nch,H,Dk], or A [N*nch,H,Dk,Dk]) scratch. */
static attn_status record_chunked(attn_vk_device *d, const attn_linear_problem *p,
                                  int dvs, int chunk, int nch, VkPipeline pipe,
                                  VkPipeline scan, const attn_vk_buffer *U,
                                  const attn_vk_buffer *DZ)
{
    const int delta = p->kind >= ATTN_LINEAR_DELTA;
    const uint32_t groups = (uint32_t)(p->num_seqs * nch);
    const uint32_t slices = (uint32_t)((p->dv + dvs - 1) / dvs);
    /* The delta kinds' chunk sums also step A's Dk columns. */
    const uint32_t slices1 = (uint32_t)((p->dv + (delta ? p->dk : 0) + dvs - 1) / dvs);
    attn_status s = check_grid(d, slices1, (uint64_t)p->h, groups);
    if (s != ATTN_OK)
        return s;
    VkBuffer bufs[ATTN_VK_BINDINGS];
    input_bindings(p, bufs);
    bufs[7] = U->buffer;
    bufs[9] = DZ->buffer;
    const lin_push sums = { PHASE_SUMS, chunk, nch };
    s = dispatch(d, pipe, bufs, &sums, sizeof sums, slices1, (uint32_t)p->h, groups);
    if (s != ATTN_OK)
        return s;
    attn_vk_barrier(d);

    memset(bufs, 0, sizeof bufs);
    bufs[0] = U->buffer;
    bufs[1] = DZ->buffer;
    bufs[6] = handle_or_null(&p->state_in, p->has_state_in);
    bufs[7] = handle_or_null(&p->state_out, p->has_state_out);
    bufs[8] = handle_or_null(&p->z_in, p->has_z_in);
    bufs[9] = handle_or_null(&p->z_out, p->has_z_out);
    if (delta) {
        const int cw = scan_delta_columns(d, p->dk);
        const uint64_t gx = (uint64_t)((p->dv + cw - 1) / cw);
        if ((s = check_grid(d, gx, (uint64_t)p->h, (uint64_t)p->num_seqs)) != ATTN_OK)
            return s;
        const scan_delta_push sp = { nch };
        s = dispatch(d, scan, bufs, &sp, sizeof sp, (uint32_t)gx, (uint32_t)p->h,
                     (uint32_t)p->num_seqs);
    } else {
        const uint64_t elems = (uint64_t)p->num_seqs * (uint64_t)p->h * (uint64_t)p->dk *
                               (uint64_t)(p->dv + (p->normalize ? 1 : 0));
        const uint64_t wg = (elems + 63) / 64, maxx = d->limits.maxComputeWorkGroupCount[0];
        const uint64_t gx = wg < maxx ? wg : maxx, gy = (wg + gx - 1) / gx;
        if ((s = check_grid(d, gx, gy, 1)) != ATTN_OK)
            return s;
        const scan_push sp = { nch, (int32_t)p->num_seqs };
        s = dispatch(d, scan, bufs, &sp, sizeof sp, (uint32_t)gx, (uint32_t)gy, 1);
    }
    if (s != ATTN_OK)
        return s;
    attn_vk_barrier(d);

    input_bindings(p, bufs);
    bufs[6] = U->buffer;
    bufs[8] = DZ->buffer;
    const lin_push out = { PHASE_OUT, chunk, nch };
    return dispatch(d, pipe, bufs, &out, sizeof out, slices, (uint32_t)p->h, groups);
}

/* Tokens per chunk of the chunk-parallel form, or 0 for whole sequences.
 * It applies under the chunkwise algorithm (or AUTO past 16 tokens). It
 * does the recurrence's work twice (sums, then outputs; the delta kinds
 * also step the Dk x Dk map of each chunk and apply them in order), so it
 * is used where whole sequences leave a GPU idle: fewer than LIN_GROUPS / 2
 * workgroups (never by default on a software device: its few cores are
 * busy with whole sequences already). Chunks bring the grid to about LIN_GROUPS
 * (a full wave of 64-invocation workgroups on a large GPU), at least
 * LIN_MIN_CHUNK tokens each. ATTN_VULKAN_LINEAR_CHUNK=L forces chunks of L
 * tokens (0: never). The scratch must index in 32 bits. */
#define LIN_GROUPS 4096
#define LIN_MIN_CHUNK 64
static int chunk_len(const attn_device *dev, const attn_linear_problem *p, uint64_t slices)
{
    const attn_vk_device *d = dev->impl;
    if (p->algo == ATTN_LINEAR_ALGO_RECURRENT || p->s <= 16)
        return 0;
    const uint64_t grid = slices * (uint64_t)p->h * (uint64_t)p->num_seqs;
    const char *env = getenv("ATTN_VULKAN_LINEAR_CHUNK");
    int64_t chunk;
    if (env && *env) {
        chunk = atol(env);
    } else {
        if (grid >= LIN_GROUPS / 2 || dev->info.is_software)
            return 0;
        const int64_t nch = (int64_t)((LIN_GROUPS + grid - 1) / grid);
        chunk = (p->s + nch - 1) / nch;
        if (chunk < LIN_MIN_CHUNK)
            chunk = LIN_MIN_CHUNK;
    }
    if (chunk < 1 || chunk > (1 << 24) || p->s < 2 * chunk)
        return 0;
    const int64_t nch = (p->s + chunk - 1) / chunk;
    const int64_t dmax = p->dk > p->dv ? p->dk : p->dv;
    const int64_t elems = p->num_seqs * nch * p->h * p->dk * dmax;
    if (elems >= INT32_MAX / 2 ||
        (uint64_t)elems * sizeof(float) > d->limits.maxStorageBufferRange ||
        (uint64_t)(p->num_seqs * nch) > d->limits.maxComputeWorkGroupCount[2])
        return 0;
    return (int)chunk;
}

attn_status attn_vk_linear(attn_device *dev, const attn_linear_problem *p)
{
    attn_vk_device *d = dev->impl;
    if (p->num_seqs == 0)
        return ATTN_OK;
    lin_cfg c;
    if (!choose_cfg(d, p->dk, p->dv, &c))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_linear: no workgroup shape fits %s (shared "
                         "memory %u bytes) for Dk %lld", dev->info.name,
                         d->limits.maxComputeSharedMemorySize, (long long)p->dk);
    const int32_t spec[5] = { c.ks * c.dvs, c.dvs, c.ks, c.dkt, c.tb };
    const int shader = c.ks > 1 ? ATTN_VK_SHADER_LINEAR_SUBGROUP : ATTN_VK_SHADER_LINEAR;
    const uint64_t slices = (uint64_t)((p->dv + c.dvs - 1) / c.dvs);
    const int chunk = chunk_len(dev, p, slices);
    const int nch = chunk ? (int)((p->s + chunk - 1) / chunk) : 1;
    attn_status s = check_grid(d, slices, (uint64_t)p->h, (uint64_t)(p->num_seqs * nch));
    if (s != ATTN_OK)
        return s;
    attn_view zin = p->z_in;
    attn_vk_buffer zcopy, U, DZ;
    memset(&zcopy, 0, sizeof zcopy);
    memset(&U, 0, sizeof U);
    memset(&DZ, 0, sizeof DZ);
    const int copy_z = !chunk && p->has_z_in && p->has_z_out && p->z_in.buffer == p->z_out.buffer;
    pthread_mutex_lock(&d->lock);
    VkPipeline pipe, scan = VK_NULL_HANDLE;
    s = attn_vk_pipeline_get(d, shader, spec, 5, &pipe);
    const int delta = p->kind >= ATTN_LINEAR_DELTA;
    if (s == ATTN_OK && chunk && delta) {
        const int32_t scan_spec[2] = { (int32_t)p->dk, scan_delta_columns(d, p->dk) };
        s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_LINEAR_SCAN_DELTA, scan_spec, 2, &scan);
    } else if (s == ATTN_OK && chunk) {
        s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_LINEAR_SCAN, NULL, 0, &scan);
    }
    if (s == ATTN_OK && chunk) {
        const VkDeviceSize slots = (VkDeviceSize)(p->num_seqs * nch * p->h * p->dk);
        s = attn_vk_buffer_make(d, slots * (VkDeviceSize)p->dv * sizeof(float), 0, &U);
        if (s == ATTN_OK)
            s = attn_vk_buffer_make(d, slots * (VkDeviceSize)(delta ? p->dk : 1) * sizeof(float),
                                    0, &DZ);
    }
    if (s == ATTN_OK && copy_z) {
        s = attn_vk_buffer_make(d, view_bytes(&p->z_in), 0, &zcopy);
        zin.offset = 0;
    }
    if (s == ATTN_OK)
        s = write_params(d, p, &zin);
    if (s == ATTN_OK)
        s = attn_vk_descriptors_reset(d, 3);
    if (s == ATTN_OK)
        s = attn_vk_begin(d, "attn_linear");
    if (s == ATTN_OK) {
        s = chunk ? record_chunked(d, p, c.dvs, chunk, nch, pipe, scan, &U, &DZ)
                  : record_whole(d, p, (uint32_t)slices, pipe, &zcopy);
        if (s == ATTN_OK)
            s = attn_vk_submit(d, "attn_linear");
        else
            d->vk.EndCommandBuffer(d->cmd);
    }
    attn_vk_buffer_drop(d, &zcopy);
    attn_vk_buffer_drop(d, &U);
    attn_vk_buffer_drop(d, &DZ);
    pthread_mutex_unlock(&d->lock);
    return s;
}
