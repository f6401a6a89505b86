/* attn_merge on Vulkan: f32 scratch (row max, row weight sum, weighted
 * sum), one max and one accumulate dispatch per partial and one finishing
 * dispatch (vulkan/merge.comp), recorded in one command buffer with
 * barriers between them and submitted once. */
#include <string.h>
#include "vk.h"
#include "args.h"
#include "../error.h"

enum { MODE_MAX = 0, MODE_ACC = 1, MODE_FINISH = 2 };

/* The push constants of vulkan/merge.comp, in its order. */
typedef struct merge_push {
    int32_t mode, first, dt, has_lse;
    int32_t o[5];           /* element offset, strides [b, s, h, c] */
    int32_t l[4];           /* element offset, strides [b, h, s] */
    int32_t S, H, DV, rows;
} merge_push;

typedef struct scratch { attn_vk_buffer M, W, A; } scratch;

/* Records one dispatch of `count` invocations (64 per workgroup, the
 * workgroups spread over x and y to stay under the per-dimension limit). */
static attn_status dispatch(attn_vk_device *d, VkPipeline pipe, VkBuffer t, VkBuffer lse,
                            const scratch *sc, const merge_push *pc, int64_t count)
{
    const VkBuffer bufs[ATTN_VK_BINDINGS] = { t, lse, sc->M.buffer, sc->W.buffer, sc->A.buffer };
    VkDescriptorSet set;
    attn_status s = attn_vk_descriptor_set(d, bufs, &set);
    if (s != ATTN_OK)
        return s;
    uint32_t gx, gy;
    if (!attn_vk_grid_xy(d, (uint64_t)(count + 63) / 64, &gx, &gy))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_merge: %lld elements are more than one "
                         "dispatch can cover on this device", (long long)count);
    attn_vk_dispatch(d, pipe, set, pc, sizeof *pc, gx, gy, 1);
    attn_vk_barrier(d);
    return ATTN_OK;
}

static attn_status run(attn_vk_device *d, const attn_merge_problem *p, VkPipeline pipe,
                       const scratch *sc)
{
    const int64_t rows = p->b * p->s * p->h, elems = rows * (p->dv > 0 ? p->dv : 1);
    merge_push pc;
    memset(&pc, 0, sizeof pc);
    pc.S = (int32_t)p->s;
    pc.H = (int32_t)p->h;
    pc.DV = (int32_t)p->dv;
    pc.rows = (int32_t)rows;
    attn_status s = attn_vk_descriptors_reset(d, 2 * (uint32_t)p->n + 1);
    if (s == ATTN_OK)
        s = attn_vk_begin(d, "attn_merge");
    if (s != ATTN_OK)
        return s;
    for (int pass = MODE_MAX; pass <= MODE_ACC && s == ATTN_OK; pass++)
        for (int i = 0; i < p->n && s == ATTN_OK; i++) {
            pc.mode = pass;
            pc.first = i == 0;
            pc.dt = (int32_t)p->outs[i].dtype;
            if (!attn_vk_put_view(pc.o, &p->outs[i], 1, 4) ||
                !attn_vk_put_view(pc.l, &p->lses[i], 1, 3))
                s = attn_fail(ATTN_ERR_UNSUPPORTED, "attn_merge: a tensor spans more than 2^31 "
                              "elements; the Vulkan backend indexes in 32 bits");
            else
                s = dispatch(d, pipe, attn_vk_handle(p->outs[i].buffer),
                             attn_vk_handle(p->lses[i].buffer), sc, &pc,
                             pass == MODE_MAX ? rows : elems);
        }
    if (s == ATTN_OK) {
        pc.mode = MODE_FINISH;
        pc.first = 0;
        pc.dt = (int32_t)p->out.dtype;
        pc.has_lse = p->has_lse;
        if (!attn_vk_put_view(pc.o, &p->out, 1, 4) || !attn_vk_put_view(pc.l, &p->lse, p->has_lse, 3))
            s = attn_fail(ATTN_ERR_UNSUPPORTED, "attn_merge: a tensor spans more than 2^31 "
                          "elements; the Vulkan backend indexes in 32 bits");
        else
            s = dispatch(d, pipe, attn_vk_handle(p->out.buffer),
                         p->has_lse ? attn_vk_handle(p->lse.buffer) : VK_NULL_HANDLE, sc, &pc,
                         elems);
    }
    if (s != ATTN_OK) {
        d->vk.EndCommandBuffer(d->cmd);
        return s;
    }
    return attn_vk_submit(d, "attn_merge");
}

attn_status attn_vk_merge(attn_device *dev, const attn_merge_problem *p)
{
    attn_vk_device *d = dev->impl;
    const int64_t rows = p->b * p->s * p->h;
    if (rows == 0)
        return ATTN_OK;
    if (rows * (p->dv > 0 ? p->dv : 1) >= INT32_MAX)
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_merge: more than 2^31 output elements; "
                         "the Vulkan backend indexes in 32 bits");
    pthread_mutex_lock(&d->lock);
    VkPipeline pipe;
    scratch sc;
    memset(&sc, 0, sizeof sc);
    attn_status s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_MERGE, NULL, 0, &pipe);
    if (s == ATTN_OK)
        s = attn_vk_buffer_make(d, (VkDeviceSize)rows * sizeof(float), 0, &sc.M);
    if (s == ATTN_OK)
        s = attn_vk_buffer_make(d, (VkDeviceSize)rows * sizeof(float), 0, &sc.W);
    if (s == ATTN_OK)
        s = attn_vk_buffer_make(d, (VkDeviceSize)(rows * (p->dv > 0 ? p->dv : 1)) * sizeof(float),
                                0, &sc.A);
    if (s == ATTN_OK)
        s = run(d, p, pipe, &sc);
    attn_vk_buffer_drop(d, &sc.M);
    attn_vk_buffer_drop(d, &sc.W);
    attn_vk_buffer_drop(d, &sc.A);
    pthread_mutex_unlock(&d->lock);
    return s;
}
