/* attn_block_select on Vulkan: the scoring dispatches (MoBA pooling and
 * scores, or XAttention shares) and the selection (vulkan/block_select.comp)
 * recorded in one command buffer with barriers between them and submitted
 * once; the u8 mask is written in its device buffer, so it feeds attn_sdpa
 * on the same device with no host round trip. */
#include <string.h>
#include "vk.h"
#include "args.h"
#include "../error.h"

enum { MODE_POOL_Q = 0, MODE_MOBA = 1, MODE_XATTN = 2, MODE_SELECT_XATTN = 3, MODE_POOL_K = 4,
       MODE_SELECT_MOBA = 5 };

#define BSEL_MAX_GROUP 128  /* invocations per block row (see the OpenCL backend) */
#define BSEL_ELEM_GROUP 64  /* invocations per workgroup of the elementwise modes */
#define BSEL_XROWS 8        /* XROWS of vulkan/block_select.comp: segment rows
                               scored together, partials kept per block */
/* Key elements one invocation reads (each for BSEL_XROWS antidiagonal sums)
 * in one XAttention dispatch, at least one chunk of BSEL_XROWS rows: longer
 * block rows are scored over several dispatches. Short dispatches stay
 * clear of GPU watchdogs, and of lavapipe's cap of 65535 loop iterations
 * per invocation (past it, loops silently stop). */
#define BSEL_DISPATCH_STEPS 4096

/* The push constants of vulkan/block_select.comp, in its order. */
typedef struct bsel_push {
    int32_t mode_causal;        /* mode | causal << 8 */
    int32_t q[5], k[5], m[5];   /* element offset, strides */
    int32_t Hq, group, Sq, Sk, D, bq, bk, nbq, nbk, s, top_k;
    int32_t count;
    float   scale, threshold;
    int32_t seg_first, seg_count;
} bsel_push;

typedef struct bsel_scratch { attn_vk_buffer shares, order, part, qbar, kbar; } bsel_scratch;

/* Largest power of two <= the device's limits and BSEL_MAX_GROUP, and no
 * larger than needed for `items` invocations. */
static int32_t row_group(const attn_vk_device *d, int64_t items)
{
    uint32_t lim = BSEL_MAX_GROUP;
    if (lim > d->limits.maxComputeWorkGroupInvocations)
        lim = d->limits.maxComputeWorkGroupInvocations;
    if (lim > d->limits.maxComputeWorkGroupSize[0])
        lim = d->limits.maxComputeWorkGroupSize[0];
    int32_t g = 1;
    while ((uint32_t)g * 2 <= lim && g < items)
        g *= 2;
    return g;
}

/* Records one dispatch of `groups` workgroups (spread over x and y). */
static attn_status dispatch(attn_vk_device *d, const attn_block_select_problem *p,
                            const bsel_scratch *sc, VkPipeline pipe, const bsel_push *pc,
                            int64_t groups)
{
    const VkBuffer bufs[ATTN_VK_BINDINGS] = {
        attn_vk_handle(p->q.buffer), attn_vk_handle(p->k.buffer),
        attn_vk_handle(p->mask.buffer), sc->shares.buffer, sc->order.buffer,
        sc->part.buffer, sc->qbar.buffer, sc->kbar.buffer };
    VkDescriptorSet set;
    attn_status s = attn_vk_descriptor_set(d, bufs, &set);
    if (s != ATTN_OK)
        return s;
    uint32_t gx, gy;
    if (!attn_vk_grid_xy(d, (uint64_t)groups, &gx, &gy))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_block_select: %lld workgroups are more "
                         "than one dispatch can cover on this device", (long long)groups);
    attn_vk_dispatch(d, pipe, set, pc, sizeof *pc, gx, gy, 1);
    attn_vk_barrier(d);
    return ATTN_OK;
}

/* XAttention: slices of each key block's cells (P of the shader), so that
 * rows of few key blocks still fill a workgroup. 1 for MoBA. */
static int64_t slices(const attn_block_select_problem *p)
{
    if (p->method != ATTN_BLOCK_SELECT_XATTN)
        return 1;
    const int64_t cells = p->block_k / p->stride, fill = BSEL_MAX_GROUP / p->nbk;
    return fill < 1 ? 1 : fill < cells ? fill : cells;
}

/* Segment rows of each block row that one XAttention dispatch scores: a
 * multiple of BSEL_XROWS. */
static int64_t segs_per_dispatch(const attn_block_select_problem *p, int32_t group, int64_t P)
{
    const int64_t slots_per_item = (p->nbk * P + group - 1) / group;
    const int64_t cells_per_slot = (p->block_k / p->stride + P - 1) / P;
    const int64_t steps_per_chunk = slots_per_item * cells_per_slot * p->stride * p->d;
    const int64_t n = BSEL_DISPATCH_STEPS / (steps_per_chunk > 0 ? steps_per_chunk : 1);
    return BSEL_XROWS * (n > 0 ? n : 1);
}

static attn_status record(attn_vk_device *d, const attn_block_select_problem *p,
                          const bsel_scratch *sc, bsel_push *pc)
{
    const int64_t P = slices(p);
    const int32_t rg = row_group(d, p->nbk * P);
    const int64_t segs = p->block_q / p->stride, chunk = segs_per_dispatch(p, rg, P);
    const int64_t xattn_dispatches = (segs + chunk - 1) / chunk;
    const int32_t eg = row_group(d, BSEL_ELEM_GROUP);
    const int32_t spec_rows[2] = { rg, (int32_t)p->q.dtype };
    const int32_t spec_elems[2] = { eg, (int32_t)p->q.dtype };
    VkPipeline rows_pipe, elems_pipe;
    attn_status s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_BLOCK_SELECT, spec_rows, 2, &rows_pipe);
    if (s == ATTN_OK)
        s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_BLOCK_SELECT, spec_elems, 2, &elems_pipe);
    if (s == ATTN_OK)
        s = attn_vk_descriptors_reset(d, 4 + (uint32_t)xattn_dispatches);
    if (s == ATTN_OK)
        s = attn_vk_begin(d, "attn_block_select");
    if (s != ATTN_OK)
        return s;
    const int64_t rows = p->b * p->hq * p->nbq;
    const int32_t causal = p->causal << 8 | (int32_t)P << 16;   /* and P */
    if (p->method == ATTN_BLOCK_SELECT_MOBA) {
        pc->mode_causal = MODE_POOL_Q | causal;
        pc->count = (int32_t)(rows * p->d);
        s = dispatch(d, p, sc, elems_pipe, pc, (pc->count + eg - 1) / eg);
        if (s == ATTN_OK) {
            pc->mode_causal = MODE_POOL_K | causal;
            pc->count = (int32_t)(p->b * p->hkv * p->nbk * p->d);
            s = dispatch(d, p, sc, elems_pipe, pc, (pc->count + eg - 1) / eg);
        }
        if (s == ATTN_OK) {
            pc->mode_causal = MODE_MOBA | causal;
            pc->count = (int32_t)(rows * p->nbk);
            s = dispatch(d, p, sc, elems_pipe, pc, (pc->count + eg - 1) / eg);
        }
    } else {
        pc->mode_causal = MODE_XATTN | causal;
        pc->count = (int32_t)rows;
        pc->seg_count = (int32_t)chunk;
        for (int64_t first = 0; first < segs && s == ATTN_OK; first += chunk) {
            pc->seg_first = (int32_t)first;
            s = dispatch(d, p, sc, rows_pipe, pc, rows);
        }
    }
    if (s == ATTN_OK) {
        pc->mode_causal = causal | (p->method == ATTN_BLOCK_SELECT_XATTN ? MODE_SELECT_XATTN :
                                                                           MODE_SELECT_MOBA);
        pc->count = (int32_t)rows;
        s = dispatch(d, p, sc, rows_pipe, pc, rows);
    }
    if (s != ATTN_OK) {
        d->vk.EndCommandBuffer(d->cmd);
        return s;
    }
    return attn_vk_submit(d, "attn_block_select");
}

static int fill_push(const attn_block_select_problem *p, bsel_push *pc)
{
    memset(pc, 0, sizeof *pc);
    if (!attn_vk_put_view(pc->q, &p->q, 1, 4) || !attn_vk_put_view(pc->k, &p->k, 1, 4) ||
        !attn_vk_put_view(pc->m, &p->mask, 1, 4))
        return 0;
    pc->Hq = (int32_t)p->hq;
    pc->group = (int32_t)(p->hq / p->hkv);
    pc->Sq = (int32_t)p->sq;
    pc->Sk = (int32_t)p->sk;
    pc->D = (int32_t)p->d;
    pc->bq = (int32_t)p->block_q;
    pc->bk = (int32_t)p->block_k;
    pc->nbq = (int32_t)p->nbq;
    pc->nbk = (int32_t)p->nbk;
    pc->s = (int32_t)p->stride;
    /* more than nbk never changes the outcome */
    pc->top_k = (int32_t)(p->top_k < p->nbk + 1 ? p->top_k : p->nbk + 1);
    pc->scale = p->scale;
    pc->threshold = p->threshold;
    return 1;
}

attn_status attn_vk_block_select(attn_device *dev, const attn_block_select_problem *p)
{
    attn_vk_device *d = dev->impl;
    const int64_t rows = p->b * p->hq * p->nbq;
    bsel_push pc;
    /* shares, order and part, and the pooled rows, are indexed in 32 bits */
    if (2 * BSEL_XROWS * rows * p->nbk * slices(p) >= INT32_MAX || rows * p->d >= INT32_MAX ||
        p->b * p->hkv * p->nbk * p->d >= INT32_MAX || p->sq + p->stride >= INT32_MAX ||
        p->sk + p->stride >= INT32_MAX || !fill_push(p, &pc))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_block_select: a tensor or the scratch "
                         "spans more than 2^31 elements; the Vulkan backend indexes in 32 bits");
    pthread_mutex_lock(&d->lock);
    bsel_scratch sc;
    memset(&sc, 0, sizeof sc);
    const VkDeviceSize cells = (VkDeviceSize)(rows * p->nbk);
    const int moba = p->method == ATTN_BLOCK_SELECT_MOBA;
    /* every binding gets a buffer; the ones a method does not use are small */
    attn_status s = attn_vk_buffer_make(d, cells * sizeof(float), 0, &sc.shares);
    if (s == ATTN_OK)
        s = attn_vk_buffer_make(d, cells * sizeof(int32_t), 0, &sc.order);
    if (s == ATTN_OK)
        s = attn_vk_buffer_make(d, moba ? 16 : 2 * BSEL_XROWS * cells * (VkDeviceSize)slices(p) * sizeof(float), 0, &sc.part);
    if (s == ATTN_OK)
        s = attn_vk_buffer_make(d, moba ? (VkDeviceSize)(rows * p->d) * sizeof(float) : 16, 0,
                                &sc.qbar);
    if (s == ATTN_OK)
        s = attn_vk_buffer_make(d, moba ? (VkDeviceSize)(p->b * p->hkv * p->nbk * p->d) *
                                          sizeof(float) : 16, 0, &sc.kbar);
    if (s == ATTN_OK)
        s = record(d, p, &sc, &pc);
    attn_vk_buffer_drop(d, &sc.shares);
    attn_vk_buffer_drop(d, &sc.order);
    attn_vk_buffer_drop(d, &sc.part);
    attn_vk_buffer_drop(d, &sc.qbar);
    attn_vk_buffer_drop(d, &sc.kbar);
    pthread_mutex_unlock(&d->lock);
    return s;
}
