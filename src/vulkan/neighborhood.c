/* attn_neighborhood on Vulkan: picks the query tile from the device's
 * limits, writes the parameter words and the tile table, gets the
 * specialised pipeline and records one dispatch of vulkan/neighborhood.comp. */
#include <string.h>
#include "vk.h"
#include "args.h"
#include "../error.h"
#include "../gpu_neighborhood.h"

/* Parameter words shared with vulkan/neighborhood.comp. */
enum { P_Q = 0, P_K = 7, P_V = 14, P_O = 21, P_L = 28, P_OUT_DT = 34, P_HAS_LSE = 35,
       P_NT = 36, P_LEN = 41, P_KER = 44, P_DIL = 47, P_CAUSAL = 50,
       P_GROUP = 53, P_SCALE = 54, P_TILES = 64 };

/* Workgroups below which smaller tiles are preferred: Vulkan does not tell
 * the number of compute units; 512 is 4 per SM of a 128-SM GPU. */
#define NB_MIN_GROUPS 512

/* The tile for the largest power-of-two workgroup the device allows. */
static int choose_cfg(const attn_vk_device *d, const attn_neighborhood_problem *p,
                      attn_nb_tile *out)
{
    int wg = ATTN_NB_MAX_WG;
    while (wg > 1 && ((uint32_t)wg > d->limits.maxComputeWorkGroupInvocations ||
                      (uint32_t)wg > d->limits.maxComputeWorkGroupSize[0]))
        wg /= 2;
    return attn_nb_choose_tile(p, wg, NB_MIN_GROUPS, d->limits.maxComputeSharedMemorySize, out);
}

static attn_status write_params(attn_vk_device *d, const attn_neighborhood_problem *p,
                                const attn_nb_tile *c, int64_t nt[3])
{
    const size_t words = P_TILES + 2 * (size_t)attn_nb_tile_table(p, c, nt, NULL);
    attn_status s = attn_vk_host_reserve(d, &d->params, words * sizeof(int32_t));
    if (s != ATTN_OK)
        return s;
    int32_t *w = d->params.mapped;
    memset(w, 0, P_TILES * sizeof *w);
    if (!attn_vk_put_view(w + P_Q, &p->q, 1, 6) || !attn_vk_put_view(w + P_K, &p->k, 1, 6) ||
        !attn_vk_put_view(w + P_V, &p->v, 1, 6) || !attn_vk_put_view(w + P_O, &p->out, 1, 6) ||
        !attn_vk_put_view(w + P_L, &p->lse, p->has_lse, 5))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_neighborhood: a tensor spans more than "
                         "2^31 elements; the Vulkan backend indexes in 32 bits");
    w[P_OUT_DT] = (int32_t)p->out.dtype;
    w[P_HAS_LSE] = p->has_lse;
    for (int a = 0; a < 3; a++) {
        w[P_NT + a] = (int32_t)nt[a];
        w[P_LEN + a] = (int32_t)p->len[a];
        w[P_KER + a] = (int32_t)p->kernel[a];
        w[P_DIL + a] = (int32_t)p->dil[a];
        w[P_CAUSAL + a] = p->causal[a];
    }
    w[P_GROUP] = (int32_t)(p->hq / p->hkv);
    memcpy(&w[P_SCALE], &p->scale, sizeof(float));
    attn_nb_tile_table(p, c, nt, w + P_TILES);
    return ATTN_OK;
}

static attn_status record(attn_vk_device *d, const attn_neighborhood_problem *p,
                          const int64_t nt[3], VkPipeline pipe)
{
    const int64_t ntiles = nt[0] * nt[1] * nt[2];
    const uint32_t *maxg = d->limits.maxComputeWorkGroupCount;
    if (ntiles > (int64_t)maxg[0] || p->hq > (int64_t)maxg[1] || p->b > (int64_t)maxg[2])
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_neighborhood: a grid of %lld x %lld x %lld "
                         "workgroups is more than the device allows (%u x %u x %u)",
                         (long long)ntiles, (long long)p->hq, (long long)p->b, maxg[0], maxg[1],
                         maxg[2]);
    VkBuffer bufs[ATTN_VK_BINDINGS] = {
        attn_vk_handle(p->q.buffer), attn_vk_handle(p->k.buffer), attn_vk_handle(p->v.buffer),
        attn_vk_handle(p->out.buffer),
        p->has_lse ? attn_vk_handle(p->lse.buffer) : VK_NULL_HANDLE,
        VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE,
    };
    VkDescriptorSet set;
    attn_status s = attn_vk_descriptors_reset(d, 1);
    if (s == ATTN_OK)
        s = attn_vk_descriptor_set(d, bufs, &set);
    if (s == ATTN_OK)
        s = attn_vk_begin(d, "attn_neighborhood");
    if (s != ATTN_OK)
        return s;
    attn_vk_dispatch(d, pipe, set, NULL, 0, (uint32_t)ntiles, (uint32_t)p->hq, (uint32_t)p->b);
    return attn_vk_submit(d, "attn_neighborhood");
}

attn_status attn_vk_neighborhood(attn_device *dev, const attn_neighborhood_problem *p)
{
    attn_vk_device *d = dev->impl;
    attn_nb_tile c;
    if (!choose_cfg(d, p, &c))
        return attn_fail(ATTN_ERR_UNSUPPORTED, "attn_neighborhood: no query tile fits %s "
                         "(shared memory %u bytes) for head dims %lld/%lld", dev->info.name,
                         d->limits.maxComputeSharedMemorySize, (long long)p->d, (long long)p->dv);
    const int32_t spec[8] = { c.wg, c.t1, (int32_t)p->d, (int32_t)p->dv, (int32_t)p->q.dtype,
                              (int32_t)c.u2, (int32_t)p->kernel[2], c.t2 };
    pthread_mutex_lock(&d->lock);
    VkPipeline pipe;
    int64_t nt[3];
    attn_status s = attn_vk_pipeline_get(d, ATTN_VK_SHADER_NEIGHBORHOOD, spec, 8, &pipe);
    if (s == ATTN_OK)
        s = write_params(d, p, &c, nt);
    if (s == ATTN_OK)
        s = record(d, p, nt, pipe);
    pthread_mutex_unlock(&d->lock);
    return s;
}
